//! The replicated state machine: its inputs and outputs in one place.
//!
//! Input: a [`Command`], in Raft log order. Output: an [`Applied`] with the proposer's
//! [`Reply`] and the [`Event`]s the command caused (watch events with their revisions,
//! and the lease / lock-delay changes the leader's timers follow).
//!
//! `apply` reads no clock and no randomness: the same commands in the same order give the
//! same replies, events and snapshot bytes on every node. The rules live in
//! `lock_ops.rs` (locks, waits, lock-delay) and `lease_ops.rs` (leases, checkpoints);
//! the read side in `views.rs`; the whole-state checks in `invariants.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    command::Command,
    event::{Event, WatchEvent, WatchEventKind},
    lease::Lease,
    limits::Limits,
    lock::LockEntry,
    path::LockPath,
    reply::Reply,
    types::{LeaseEndReason, LeaseId, LockMode, Revision},
};

/// The result of applying one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub reply: Reply,
    pub events: Vec<Event>,
}

/// The whole replicated state (what a snapshot holds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub revision: Revision,
    /// The id the next lease gets; ids are never reused.
    pub next_lease_id: i64,
    pub leases: BTreeMap<LeaseId, Lease>,
    pub locks: BTreeMap<LockPath, LockEntry>,
}

/// The lock table, leases and fencing revision. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine {
    pub(crate) limits: Limits,
    pub(crate) state: State,
}

impl StateMachine {
    pub fn new(limits: Limits) -> StateMachine {
        StateMachine { limits, state: State { next_lease_id: 1, ..State::default() } }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Moves the revision (and so every later fencing token) `by` ahead: for a state
    /// restored from a backup while the cluster it came from may have handed out tokens
    /// after the backup was taken (etcd's `--bump-revision`). Not a command: it is done
    /// to a backup before any member starts from it, the same on every member.
    pub fn skip_revisions(&mut self, by: u64) {
        self.state.revision = self.state.revision.saturating_add(by);
    }

    /// Applies one committed command.
    pub fn apply(&mut self, command: &Command) -> Applied {
        let mut events = Vec::new();
        let reply = match command {
            Command::GrantLease { ttl_ms } => self.grant_lease(*ttl_ms, &mut events),
            Command::RevokeLease { lease_id } => {
                self.end_lease(*lease_id, LeaseEndReason::Revoked, &mut events)
            }
            Command::ExpireLease { lease_id } => {
                self.end_lease(*lease_id, LeaseEndReason::Expired, &mut events)
            }
            Command::CheckpointLeases { checkpoints } => {
                self.checkpoint_leases(checkpoints, &mut events)
            }
            Command::Lock(request) => self.acquire(request, &mut events),
            Command::Unlock { path, lease_id, token, request_id } => {
                self.unlock(path, *lease_id, *token, *request_id, &mut events)
            }
            Command::CancelWait { path, lease_id, queued_revision, request_id, reason } => self
                .cancel_wait(path, *lease_id, *queued_revision, *request_id, *reason, &mut events),
            Command::EndLockDelay { path } => self.end_lock_delay(path, &mut events),
            Command::Proclaim { path, lease_id, token, value, request_id } => {
                self.proclaim(path, *lease_id, *token, value, *request_id, &mut events)
            }
        };
        Applied { reply, events }
    }
}

/// Bumps the revision and records one watch event at it; returns the new revision.
/// A free function over the revision so callers can hold other parts of the state.
pub(crate) fn emit(
    revision: &mut Revision,
    events: &mut Vec<Event>,
    path: &LockPath,
    who: (LeaseId, &str, LockMode),
    kind: WatchEventKind,
) -> Revision {
    *revision += 1;
    let (lease_id, holder_id, mode) = who;
    events.push(Event::Lock(WatchEvent {
        revision: *revision,
        path: path.clone(),
        lease_id,
        holder_id: holder_id.to_owned(),
        mode,
        kind,
    }));
    *revision
}
