//! An in-memory [`Disk`] for tests: everything is "durable" at once, and commits can be
//! made to fail from some point on, as a dying disk's fsync would.

use std::{
    collections::BTreeMap,
    io,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::disk::{Disk, KeyValue, Op, Space};

type Spaces = BTreeMap<Space, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
pub struct MemDisk {
    spaces: Mutex<Spaces>,
    failing: AtomicBool,
}

impl MemDisk {
    /// From now on every commit fails with an I/O error.
    pub fn fail_commits(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    fn spaces(&self) -> std::sync::MutexGuard<'_, Spaces> {
        self.spaces.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Disk for MemDisk {
    fn get(&self, space: Space, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.spaces().get(&space).and_then(|s| s.get(key).cloned()))
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<KeyValue>> {
        let spaces = self.spaces();
        let Some(entries) = spaces.get(&space) else { return Ok(Vec::new()) };
        let in_range = |key: &Vec<u8>| end.is_none_or(|end| key.as_slice() < end);
        Ok(entries
            .range(start.to_vec()..)
            .take_while(|(key, _)| in_range(key))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, space: Space) -> io::Result<Option<KeyValue>> {
        Ok(self
            .spaces()
            .get(&space)
            .and_then(|s| s.last_key_value())
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        let mut spaces = self.spaces();
        for op in ops {
            match op {
                Op::Put(space, key, value) => {
                    spaces.entry(space).or_default().insert(key, value);
                }
                Op::Delete(space, key) => {
                    spaces.entry(space).or_default().remove(&key);
                }
            }
        }
        Ok(())
    }
}
