//! What `apply` answers the proposer. Caller mistakes (stale token, unknown lease, a
//! limit reached) are typed replies, not failures of the state machine: the same command
//! gets the same rejection on every replica.

use serde::{Deserialize, Serialize};

use crate::{
    path::LockPath,
    types::{FencingToken, LeaseId, LockMode, RequestId, Revision},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reply {
    LeaseGranted {
        lease_id: LeaseId,
        ttl_ms: u64,
    },
    LeaseEnded {
        lease_id: LeaseId,
    },
    Checkpointed,
    Lock(LockOutcome),
    Unlocked {
        token: FencingToken,
    },
    /// `CancelWait` removed the waiter.
    WaitCancelled,
    /// `CancelWait` found no such waiter (it was granted or dropped first).
    NotWaiting,
    LockDelayEnded,
    Proclaimed {
        token: FencingToken,
    },
    Rejected(Rejection),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockOutcome {
    Granted {
        token: FencingToken,
        mode: LockMode,
    },
    /// In the path's queue; the grant (or the end of the wait) comes as a later event.
    Queued {
        queued_revision: Revision,
        position: usize,
    },
    /// A try-lock found the path taken, or a lock-delay in force.
    Busy {
        holders: Vec<HolderView>,
        lock_delay: bool,
    },
}

/// A current holder, as shown to a refused try-lock or an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderView {
    pub lease_id: LeaseId,
    pub holder_id: String,
    pub token: FencingToken,
    pub mode: LockMode,
}

/// A limit the state machine enforces (see [`crate::Limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    Locks,
    WaitersPerPath,
    Leases,
    LocksPerLease,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Locks => "locks_max",
            Limit::WaitersPerPath => "waiters_per_path_max",
            Limit::Leases => "leases_max",
            Limit::LocksPerLease => "locks_per_lease_max",
        }
    }
}

/// Why a command was refused. Each maps to one gRPC status code in the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("lease {lease_id} not found (never granted, revoked or expired)")]
    LeaseNotFound { lease_id: LeaseId },
    #[error("lease {lease_id} does not hold {path}")]
    LockNotHeld { path: LockPath, lease_id: LeaseId },
    #[error(
        "stale fencing token {token} for {path}: lease {lease_id} holds it with token {current}"
    )]
    StaleToken { path: LockPath, lease_id: LeaseId, token: FencingToken, current: FencingToken },
    #[error("lease {lease_id} already holds or waits for {path} in {held} mode")]
    ModeConflict { path: LockPath, lease_id: LeaseId, held: LockMode },
    #[error(
        "request id {request_id} of lease {lease_id} is older than the oldest one remembered \
         ({oldest_kept}); request ids must be unique and increasing per lease"
    )]
    RequestIdTooOld { lease_id: LeaseId, request_id: RequestId, oldest_kept: RequestId },
    #[error(
        "request id {request_id} of lease {lease_id} was already used for {first}; a retry \
         must repeat the same request, and a different request needs a new id"
    )]
    RequestIdReused { lease_id: LeaseId, request_id: RequestId, first: String },
    #[error("limit {} reached: at most {max}", limit.name())]
    LimitExceeded { limit: Limit, max: u64 },
    #[error("holder id is {len} bytes; the limit is {max} bytes")]
    HolderIdTooLong { len: usize, max: usize },
    #[error("wait timeout {wait_timeout_ms} ms exceeds the limit of {max_ms} ms")]
    WaitTimeoutTooLong { wait_timeout_ms: u64, max_ms: u64 },
    #[error("{}", permits_mismatch(path, *requested, *current))]
    PermitsMismatch { path: LockPath, requested: Option<u32>, current: Option<u32> },
    #[error("permits {permits} is not allowed: a semaphore has 1 to {max} permits")]
    InvalidPermits { permits: u32, max: u32 },
    #[error("timed out waiting for {path}")]
    WaitTimedOut { path: LockPath },
    #[error(
        "the wait for {path} was given up: no caller was attached to it (its callers went \
         away and no retry came in time); send a new request"
    )]
    WaitCancelled { path: LockPath },
}

fn permits_mismatch(path: &LockPath, requested: Option<u32>, current: Option<u32>) -> String {
    let what = |permits: Option<u32>| match permits {
        Some(permits) => format!("a semaphore of {permits} permits"),
        None => "a lock".to_owned(),
    };
    format!(
        "{path} is held or awaited as {}; this request asks for {}: every holder and waiter \
         of a path must ask for the same permits",
        what(current),
        what(requested)
    )
}
