//! openraft's log storage on a [`Disk`]: entries keyed by big-endian index, and the
//! vote, committed and last-purged log ids beside them. Every append, truncate and purge
//! is one atomic, fsynced batch, acknowledged only once durable.

use std::{
    fmt::Debug,
    io,
    ops::{Bound, RangeBounds},
    sync::Arc,
};

use openraft::{
    OptionalSend, RaftLogReader,
    entry::RaftEntry,
    storage::{IOFlushed, LogState, RaftLogStorage},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    disk::{Disk, Op, Space},
    types::{Entry, LogId, TypeConfig, Vote},
};

pub(crate) const VOTE: &[u8] = b"vote";
pub(crate) const COMMITTED: &[u8] = b"committed";
pub(crate) const LAST_PURGED: &[u8] = b"last_purged";

/// Most entries read in one go (a range read beyond it is cut short; openraft asks again).
const READ_BATCH_MAX: usize = 4_096;

/// The Raft log on a disk. Cheap to clone: clones share the disk.
#[derive(Clone)]
pub struct LogStore {
    disk: Arc<dyn Disk>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    pub fn new(disk: Arc<dyn Disk>) -> LogStore {
        LogStore { disk }
    }

    fn meta<T: DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        self.disk.get(Space::Meta, key)?.map(|bytes| decode(&bytes)).transpose()
    }

    fn keys_in(&self, start: u64, end: Option<u64>) -> io::Result<Vec<Vec<u8>>> {
        let end = end.map(index_key);
        let mut keys = Vec::new();
        let mut from = index_key(start).to_vec();
        loop {
            let page =
                self.disk.scan(Space::Log, &from, end.as_ref().map(|e| &e[..]), READ_BATCH_MAX)?;
            let done = page.len() < READ_BATCH_MAX;
            if let Some((last, _)) = page.last() {
                let next = u64::from_be_bytes(last.as_slice().try_into().map_err(bad_key)?) + 1;
                from = index_key(next).to_vec();
            }
            keys.extend(page.into_iter().map(|(key, _)| key));
            if done {
                return Ok(keys);
            }
        }
    }
}

fn bad_key(_: std::array::TryFromSliceError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "log key is not an 8-byte index")
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(index) => *index,
        Bound::Excluded(index) => index + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(index) => Some(index + 1),
        Bound::Excluded(index) => Some(*index),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = bounds(&range);
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let end_key = end.map(index_key);
        let page = self.disk.scan(
            Space::Log,
            &index_key(start),
            end_key.as_ref().map(|e| &e[..]),
            READ_BATCH_MAX,
        )?;
        page.iter().map(|(_, value)| decode(value)).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.meta(LAST_PURGED)?;
        let last_entry = self.disk.last(Space::Log)?;
        let last_log_id = match last_entry {
            Some((_, value)) => Some(decode::<Entry>(&value)?.log_id()),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.disk.commit(vec![Op::Put(Space::Meta, VOTE.to_vec(), encode(vote)?)])
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.disk.commit(vec![Op::Put(Space::Meta, COMMITTED.to_vec(), encode(&committed)?)])
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        for entry in entries {
            let key = index_key(entry.index()).to_vec();
            ops.push(Op::Put(Space::Log, key, encode(&entry)?));
        }
        let result = self.disk.commit(ops);
        let failed = result.as_ref().err().map(|e| io::Error::new(e.kind(), e.to_string()));
        callback.io_completed(result);
        failed.map_or(Ok(()), Err)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |log_id| log_id.index() + 1);
        let keys = self.keys_in(from, None)?;
        self.disk.commit(keys.into_iter().map(|key| Op::Delete(Space::Log, key)).collect())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let keys = self.keys_in(0, Some(log_id.index() + 1))?;
        let mut ops: Vec<Op> = keys.into_iter().map(|key| Op::Delete(Space::Log, key)).collect();
        ops.push(Op::Put(Space::Meta, LAST_PURGED.to_vec(), encode(&log_id)?));
        self.disk.commit(ops)
    }
}
