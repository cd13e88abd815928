//! The storage seam: a tiny ordered key-value store with atomic, durable batches. The
//! Raft log, vote and snapshots are written through it; production uses fjall
//! ([`FjallDisk`]), the simulator an in-memory disk with a crash model.

use std::{io, path::Path};

/// The separate key spaces lockmgr keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// Raft log entries, keyed by big-endian index.
    Log,
    /// The vote, the committed log id, the last purged log id.
    Meta,
    /// The current state-machine snapshot.
    Snapshot,
}

impl Space {
    pub const ALL: [Space; 3] = [Space::Log, Space::Meta, Space::Snapshot];

    pub fn name(self) -> &'static str {
        match self {
            Space::Log => "raft_log",
            Space::Meta => "raft_meta",
            Space::Snapshot => "snapshot",
        }
    }
}

/// One change in an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Space, Vec<u8>, Vec<u8>),
    Delete(Space, Vec<u8>),
}

pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An ordered key-value store. `commit` must be atomic (all or nothing after a crash)
/// and durable (fsynced) before it returns `Ok`; an error from it is fatal to the node.
pub trait Disk: Send + Sync + 'static {
    fn get(&self, space: Space, key: &[u8]) -> io::Result<Option<Vec<u8>>>;

    /// Up to `limit` entries with `start <= key < end` (no end: to the last key), in order.
    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<KeyValue>>;

    /// The entry with the greatest key.
    fn last(&self, space: Space) -> io::Result<Option<KeyValue>>;

    fn commit(&self, ops: Vec<Op>) -> io::Result<()>;

    /// Applies `ops` atomically, visible to reads at once but durable only once a later
    /// [`Disk::sync`] (or [`Disk::commit`]) returns: writes become durable in the order
    /// they were made, so a crash keeps a prefix of them.
    fn write(&self, ops: Vec<Op>) -> io::Result<()> {
        self.commit(ops)
    }

    /// Makes every write made before the call durable (one fsync for all of them).
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The production disk: one fjall database, one keyspace per [`Space`], every batch
/// persisted with `PersistMode::SyncData` (fdatasync: the data and what is needed to
/// read it back, as etcd's WAL does).
pub struct FjallDisk {
    db: fjall::Database,
    spaces: [fjall::Keyspace; 3],
}

impl std::fmt::Debug for FjallDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallDisk").finish_non_exhaustive()
    }
}

impl FjallDisk {
    pub fn open(dir: &Path) -> io::Result<FjallDisk> {
        let db = fjall::Database::builder(dir).open().map_err(to_io)?;
        let open = |space: Space| {
            db.keyspace(space.name(), fjall::KeyspaceCreateOptions::default).map_err(to_io)
        };
        let spaces = [open(Space::Log)?, open(Space::Meta)?, open(Space::Snapshot)?];
        Ok(FjallDisk { db, spaces })
    }

    fn space(&self, space: Space) -> &fjall::Keyspace {
        &self.spaces[space as usize]
    }
}

fn to_io(error: fjall::Error) -> io::Error {
    match error {
        fjall::Error::Io(error) => error,
        other => io::Error::other(other.to_string()),
    }
}

fn pair(guard: fjall::Guard) -> io::Result<KeyValue> {
    let (key, value) = guard.into_inner().map_err(to_io)?;
    Ok((key.to_vec(), value.to_vec()))
}

impl Disk for FjallDisk {
    fn get(&self, space: Space, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.space(space).get(key).map_err(to_io)?.map(|value| value.to_vec()))
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<KeyValue>> {
        let keyspace = self.space(space);
        let iter = match end {
            Some(end) => keyspace.range(start..end),
            None => keyspace.range(start..),
        };
        iter.take(limit).map(pair).collect()
    }

    fn last(&self, space: Space) -> io::Result<Option<KeyValue>> {
        self.space(space).last_key_value().map(pair).transpose()
    }

    fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        let mut batch = self.db.batch().durability(Some(fjall::PersistMode::SyncData));
        for op in ops {
            match op {
                Op::Put(space, key, value) => batch.insert(self.space(space), key, value),
                Op::Delete(space, key) => batch.remove(self.space(space), key),
            }
        }
        batch.commit().map_err(to_io)
    }

    fn write(&self, ops: Vec<Op>) -> io::Result<()> {
        let mut batch = self.db.batch().durability(None);
        for op in ops {
            match op {
                Op::Put(space, key, value) => batch.insert(self.space(space), key, value),
                Op::Delete(space, key) => batch.remove(self.space(space), key),
            }
        }
        batch.commit().map_err(to_io)
    }

    fn sync(&self) -> io::Result<()> {
        self.db.persist(fjall::PersistMode::SyncData).map_err(to_io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_visible_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let disk = FjallDisk::open(dir.path()).unwrap();
            disk.commit(vec![
                Op::Put(Space::Log, vec![1], b"one".to_vec()),
                Op::Put(Space::Log, vec![2], b"two".to_vec()),
                Op::Put(Space::Log, vec![3], b"three".to_vec()),
                Op::Put(Space::Meta, b"vote".to_vec(), b"v".to_vec()),
            ])
            .unwrap();
            disk.commit(vec![Op::Delete(Space::Log, vec![1])]).unwrap();
        }
        let disk = FjallDisk::open(dir.path()).unwrap();
        assert_eq!(disk.get(Space::Meta, b"vote").unwrap(), Some(b"v".to_vec()));
        assert_eq!(disk.get(Space::Log, &[1]).unwrap(), None);
        let all = disk.scan(Space::Log, &[0], None, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(disk.scan(Space::Log, &[0], Some(&[3]), 10).unwrap().len(), 1);
        assert_eq!(disk.last(Space::Log).unwrap().unwrap().0, vec![3]);
        assert_eq!(disk.last(Space::Snapshot).unwrap(), None);
    }
}
