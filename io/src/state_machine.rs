//! openraft's state machine: core's [`StateMachine`] in memory, behind one mutex with
//! the applied log id, the membership, and an [`ApplyObserver`] that learns of every
//! applied command under the same lock (so the server's timers, waiters and watchers
//! never miss or reorder an event). Snapshots are core's deterministic encoding, kept
//! on the disk atomically and streamed whole to members that lag behind the log.

use std::{
    fmt::Debug,
    io,
    sync::{Arc, Mutex, MutexGuard},
};

use futures_util::{Stream, StreamExt};
use lockmgr_core::{Applied, Command, Limits, StateMachine};
use openraft::{
    EntryPayload, OptionalSend,
    entry::RaftEntry,
    storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine},
};

use crate::{
    disk::{Disk, Op, Space},
    log_store::{decode, encode},
    types::{ApplyResult, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig},
};

const CURRENT: &[u8] = b"current";

/// Told of every change to the replicated state, under the replica's lock.
pub trait ApplyObserver: Send + 'static {
    /// `command`, at `log_index`, was applied.
    fn applied(
        &mut self,
        machine: &StateMachine,
        log_index: u64,
        command: &Command,
        applied: &Applied,
    );
    /// The whole state was replaced by a snapshot.
    fn restored(&mut self, machine: &StateMachine);
}

/// An observer that ignores everything (tests, tools).
#[derive(Debug, Default)]
pub struct NoObserver;

impl ApplyObserver for NoObserver {
    fn applied(&mut self, _: &StateMachine, _: u64, _: &Command, _: &Applied) {}
    fn restored(&mut self, _: &StateMachine) {}
}

/// The replicated state and what goes with it, behind one lock.
#[derive(Debug)]
pub struct Replica<O> {
    pub machine: StateMachine,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub observer: O,
}

/// The state machine handed to openraft. Cheap to clone; clones share the replica.
pub struct StateMachineStore<O> {
    replica: Arc<Mutex<Replica<O>>>,
    disk: Arc<dyn Disk>,
}

impl<O> Clone for StateMachineStore<O> {
    fn clone(&self) -> Self {
        StateMachineStore { replica: self.replica.clone(), disk: self.disk.clone() }
    }
}

impl<O> Debug for StateMachineStore<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore").finish_non_exhaustive()
    }
}

impl<O: ApplyObserver> StateMachineStore<O> {
    /// Opens the state machine from the disk's current snapshot (or empty).
    pub fn open(disk: Arc<dyn Disk>, limits: Limits, observer: O) -> io::Result<Self> {
        let (machine, last_applied, membership) = match load_snapshot(&*disk)? {
            Some((meta, data)) => {
                let machine = StateMachine::restore(limits, &data)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                (machine, meta.last_log_id, meta.last_membership)
            }
            None => (StateMachine::new(limits), None, StoredMembership::default()),
        };
        let mut replica = Replica { machine, last_applied, membership, observer };
        replica.observer.restored(&replica.machine);
        Ok(StateMachineStore { replica: Arc::new(Mutex::new(replica)), disk })
    }

    /// Locks the replica: for reads, and for the observer's state.
    pub fn lock(&self) -> MutexGuard<'_, Replica<O>> {
        self.replica.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply_entry(&self, entry: &crate::types::Entry) -> ApplyResult {
        let mut replica = self.lock();
        let replica = &mut *replica;
        let log_id = entry.log_id();
        let reply = match &entry.payload {
            EntryPayload::Blank => None,
            EntryPayload::Normal(command) => {
                let applied = replica.machine.apply(command);
                replica.observer.applied(&replica.machine, log_id.index(), command, &applied);
                Some(applied.reply)
            }
            EntryPayload::Membership(membership) => {
                replica.membership = StoredMembership::new(Some(log_id), membership.clone());
                None
            }
        };
        replica.last_applied = Some(log_id);
        ApplyResult { reply, revision: replica.machine.revision() }
    }
}

pub(crate) fn load_snapshot(disk: &dyn Disk) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    disk.get(Space::Snapshot, CURRENT)?.map(|bytes| decode(&bytes)).transpose()
}

/// The write that makes `data`, as of `meta`, the current snapshot.
pub(crate) fn snapshot_op(meta: &SnapshotMeta, data: &[u8]) -> io::Result<Op> {
    Ok(Op::Put(Space::Snapshot, CURRENT.to_vec(), encode(&(meta, data))?))
}

fn save_snapshot(disk: &dyn Disk, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
    disk.commit(vec![snapshot_op(meta, data)?])
}

impl<O: ApplyObserver> RaftSnapshotBuilder<TypeConfig> for StateMachineStore<O> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, data) = {
            let replica = self.lock();
            let meta = SnapshotMeta {
                last_log_id: replica.last_applied,
                last_membership: replica.membership.clone(),
            };
            (meta, replica.machine.snapshot())
        };
        save_snapshot(&*self.disk, &meta, &data)?;
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl<O: ApplyObserver> RaftStateMachine<TypeConfig> for StateMachineStore<O> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let replica = self.lock();
        Ok((replica.last_applied, replica.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let result = self.apply_entry(&entry);
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let limits = self.lock().machine.limits().clone();
        let machine = StateMachine::restore(limits, &snapshot)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        save_snapshot(&*self.disk, meta, &snapshot)?;
        let mut replica = self.lock();
        let replica = &mut *replica;
        replica.machine = machine;
        replica.last_applied = meta.last_log_id;
        replica.membership = meta.last_membership.clone();
        replica.observer.restored(&replica.machine);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(load_snapshot(&*self.disk)?.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
