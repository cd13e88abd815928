//! A set of keys, each with one deadline, popped in deadline order. The leader's lessor
//! and timers are built on it; it knows nothing of clocks, only of the `now_ms` it is
//! given.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
pub(crate) struct DeadlineQueue<K: Ord + Clone> {
    by_key: BTreeMap<K, u64>,
    by_deadline: BTreeSet<(u64, K)>,
}

impl<K: Ord + Clone> Default for DeadlineQueue<K> {
    fn default() -> Self {
        DeadlineQueue { by_key: BTreeMap::new(), by_deadline: BTreeSet::new() }
    }
}

impl<K: Ord + Clone> DeadlineQueue<K> {
    /// Sets (or moves) `key`'s deadline.
    pub(crate) fn insert(&mut self, key: K, deadline_ms: u64) {
        if let Some(old) = self.by_key.insert(key.clone(), deadline_ms) {
            self.by_deadline.remove(&(old, key.clone()));
        }
        self.by_deadline.insert((deadline_ms, key));
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<u64> {
        let deadline_ms = self.by_key.remove(key)?;
        self.by_deadline.remove(&(deadline_ms, key.clone()));
        Some(deadline_ms)
    }

    pub(crate) fn deadline(&self, key: &K) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.by_deadline.first().map(|(deadline_ms, _)| *deadline_ms)
    }

    /// Up to `max` keys whose deadline is at or before `now_ms`, earliest first; each
    /// is moved to `retry_at_ms` so it comes back if nothing removes it meanwhile.
    pub(crate) fn pop_due(&mut self, now_ms: u64, max: usize, retry_at_ms: u64) -> Vec<K> {
        let due: Vec<K> = self
            .by_deadline
            .iter()
            .take_while(|(deadline_ms, _)| *deadline_ms <= now_ms)
            .take(max)
            .map(|(_, key)| key.clone())
            .collect();
        for key in &due {
            self.insert(key.clone(), retry_at_ms);
        }
        due
    }

    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.by_deadline.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_retries() {
        let mut queue = DeadlineQueue::default();
        queue.insert("b", 20);
        queue.insert("a", 10);
        queue.insert("c", 30);
        queue.insert("c", 5);
        assert_eq!(queue.next_deadline(), Some(5));
        assert_eq!(queue.pop_due(20, 2, 100), vec!["c", "a"]);
        assert_eq!(queue.pop_due(20, 10, 100), vec!["b"]);
        assert_eq!(queue.pop_due(99, 10, 200), Vec::<&str>::new());
        assert_eq!(queue.remove(&"a"), Some(100));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop_due(100, 10, 200), vec!["b", "c"]);
    }
}
