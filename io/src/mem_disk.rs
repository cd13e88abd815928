//! An in-memory [`Disk`] for tests: everything is "durable" at once, and commits can be
//! made to fail from some point on, as a dying disk's fsync would. Its key spaces
//! ([`MemSpaces`]) are also the simulator's disk's storage.

use std::{
    collections::BTreeMap,
    io,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::disk::{Disk, KeyValue, Op, Space};

/// Ordered key spaces in memory, with [`Disk`]'s read operations and batch application.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemSpaces(BTreeMap<Space, BTreeMap<Vec<u8>, Vec<u8>>>);

impl MemSpaces {
    pub fn get(&self, space: Space, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(&space).and_then(|s| s.get(key).cloned())
    }

    /// Up to `limit` entries with `start <= key < end` (no end: to the last key), in order.
    pub fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Vec<KeyValue> {
        let Some(entries) = self.0.get(&space) else { return Vec::new() };
        let in_range = |key: &Vec<u8>| end.is_none_or(|end| key.as_slice() < end);
        entries
            .range(start.to_vec()..)
            .take_while(|(key, _)| in_range(key))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn last(&self, space: Space) -> Option<KeyValue> {
        self.0.get(&space).and_then(|s| s.last_key_value()).map(|(k, v)| (k.clone(), v.clone()))
    }

    pub fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put(space, key, value) => {
                    self.0.entry(*space).or_default().insert(key.clone(), value.clone());
                }
                Op::Delete(space, key) => {
                    self.0.entry(*space).or_default().remove(key);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct MemDisk {
    spaces: Mutex<MemSpaces>,
    failing: AtomicBool,
}

impl MemDisk {
    /// From now on every commit fails with an I/O error.
    pub fn fail_commits(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    fn spaces(&self) -> std::sync::MutexGuard<'_, MemSpaces> {
        self.spaces.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Disk for MemDisk {
    fn get(&self, space: Space, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.spaces().get(space, key))
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<KeyValue>> {
        Ok(self.spaces().scan(space, start, end, limit))
    }

    fn last(&self, space: Space) -> io::Result<Option<KeyValue>> {
        Ok(self.spaces().last(space))
    }

    fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.spaces().apply(&ops);
        Ok(())
    }
}
