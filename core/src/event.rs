//! What `apply` tells the world besides its reply. Lock events carry a revision and are
//! what watchers see; the others drive the leader's timers (lessor, wait time-outs,
//! lock-delays) and need no revision.

use serde::{Deserialize, Serialize};

use crate::{
    path::LockPath,
    types::{
        DequeueReason, FencingToken, LeaseEndReason, LeaseId, LockMode, ReleaseReason, Revision,
    },
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    Lock(WatchEvent),
    LeaseGranted {
        lease_id: LeaseId,
        ttl_ms: u64,
    },
    LeaseEnded {
        lease_id: LeaseId,
        reason: LeaseEndReason,
    },
    LeaseCheckpointed {
        lease_id: LeaseId,
        remaining_ttl_ms: Option<u64>,
    },
    LockDelayStarted {
        path: LockPath,
        delay_ms: u64,
    },
    LockDelayEnded {
        path: LockPath,
    },
    /// A blocking request took over the lease's wait for `path` (same place in the
    /// queue): its time-out runs again from now.
    WaitRenewed {
        path: LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
        wait_timeout_ms: u64,
    },
}

/// One change to one path, at one revision (revisions increase by one per event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub revision: Revision,
    pub path: LockPath,
    pub lease_id: LeaseId,
    pub holder_id: String,
    pub mode: LockMode,
    pub kind: WatchEventKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchEventKind {
    /// Granted; the fencing token is the event's revision. `queued_revision` names the
    /// wait that ended in this grant, if the request had queued.
    Acquired {
        queued_revision: Option<Revision>,
    },
    Released {
        token: FencingToken,
        reason: ReleaseReason,
    },
    Queued {
        wait_timeout_ms: u64,
    },
    /// Left the queue without a grant. `queued_revision` names the wait.
    Dequeued {
        queued_revision: Revision,
        reason: DequeueReason,
    },
    /// The holder of `token` changed its holder id (an election's value) to the event's.
    Proclaimed {
        token: FencingToken,
    },
}

impl Event {
    /// The watch event, if this is one.
    pub fn as_watch(&self) -> Option<&WatchEvent> {
        match self {
            Event::Lock(event) => Some(event),
            _ => None,
        }
    }
}
