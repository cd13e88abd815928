//! openraft's log storage on a [`Disk`]: entries keyed by big-endian index, and the
//! vote, committed and last-purged log ids beside them.
//!
//! The commit path (Raft thesis 10.2.1, as etcd does it): `append` writes its entries as
//! one atomic batch, visible to readers at once, and returns; the [`LogWriter`] then
//! group-commits: one fsync for every append queued while the previous one ran, after
//! which it calls each append's `IOFlushed` callback. So the leader replicates while its
//! own fsync runs, and under load many appends share one fsync. The committed log id goes
//! through the same writer: it is written at once and `save_committed` returns when the
//! writer's next fsync covers it, so it shares that fsync with the appends queued beside
//! it (on a follower the commit index arrives with the next entries, so both ride one
//! fsync). It is not left unsynced: a member restarted with a committed index older than
//! what it had applied re-applies the gap through the leader, and with no committed index
//! at all the simulator fails state machine safety (`docs/invariants.md`, "Gaps"), which
//! is not understood yet. The vote, truncations and purges stay synced writes.

use std::{
    fmt::Debug,
    io,
    ops::{Bound, RangeBounds},
    sync::Arc,
};

use lockmgr_core::planted::{PlantedBug, planted};
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

/// The Raft log on a disk. Cheap to clone: clones share the disk and the log writer.
#[derive(Clone)]
pub struct LogStore {
    disk: Arc<dyn Disk>,
    writer: Arc<std::sync::OnceLock<LogWriter>>,
}

/// Writes waiting for the fsync that makes them durable: an append's callback, or a
/// caller that waits.
enum Flush {
    Append(IOFlushed<TypeConfig>),
    Wait(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl Flush {
    fn done(self, result: io::Result<()>) {
        match self {
            Flush::Append(flushed) => flushed.io_completed(result),
            Flush::Wait(waiter) => {
                let _ = waiter.send(result);
            }
        }
    }
}

type Flushes = tokio::sync::mpsc::UnboundedSender<Flush>;

/// The group commit: a task that fsyncs once for every append queued meanwhile, then
/// acknowledges each (in production the fsync runs on a blocking thread, so the runtime
/// goes on serving; in simulation, where a sync takes no time, inline).
#[derive(Debug)]
struct LogWriter {
    flushes: Flushes,
}

impl LogWriter {
    fn start(disk: Arc<dyn Disk>) -> LogWriter {
        let (flushes, mut waiting) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch: Vec<Flush> = vec![first];
                while let Ok(next) = waiting.try_recv() {
                    batch.push(next);
                }
                if planted(PlantedBug::LogAckBeforeFsync) {
                    // The bug: acknowledged first, made durable a moment later.
                    batch.drain(..).for_each(|flush| flush.done(Ok(())));
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                let result = sync(&disk).await;
                for flush in batch {
                    flush.done(result.as_ref().copied().map_err(copy_error));
                }
            }
        });
        LogWriter { flushes }
    }
}

#[cfg(not(madsim))]
async fn sync(disk: &Arc<dyn Disk>) -> io::Result<()> {
    let disk = disk.clone();
    match tokio::task::spawn_blocking(move || disk.sync()).await {
        Ok(result) => result,
        Err(error) => Err(io::Error::other(format!("the fsync thread failed: {error}"))),
    }
}

#[cfg(madsim)]
async fn sync(disk: &Arc<dyn Disk>) -> io::Result<()> {
    disk.sync()
}

fn copy_error(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), error.to_string())
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
        LogStore { disk, writer: Arc::default() }
    }

    /// The log writer, started on first use (inside the runtime).
    fn writer(&self) -> &LogWriter {
        self.writer.get_or_init(|| LogWriter::start(self.disk.clone()))
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

    /// Durable when it returns, through the log writer's group commit (module docs).
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.disk.write(vec![Op::Put(Space::Meta, COMMITTED.to_vec(), encode(&committed)?)])?;
        let (done, synced) = tokio::sync::oneshot::channel();
        if self.writer().flushes.send(Flush::Wait(done)).is_err() {
            return Err(io::Error::other("the log writer stopped"));
        }
        synced.await.map_err(|_| io::Error::other("the log writer stopped"))?
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
        self.disk.write(ops)?;
        // Acknowledged by the log writer once an fsync covers it.
        if let Err(unsent) = self.writer().flushes.send(Flush::Append(callback)) {
            unsent.0.done(Err(io::Error::other("the log writer stopped")));
        }
        Ok(())
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
