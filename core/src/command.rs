//! The replicated inputs: every change to the lock table is one of these, proposed
//! through Raft and applied in log order on every node. None of them carries a time:
//! expiry and wait time-outs are decided by the leader and arrive as commands.

use serde::{Deserialize, Serialize};

use crate::{
    path::LockPath,
    types::{FencingToken, LeaseId, LockMode, RequestId, Revision},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// A new lease; its TTL is clamped to the configured bounds.
    GrantLease {
        ttl_ms: u64,
    },
    /// Ends a lease at its holder's request: its locks are released, its waits dropped.
    RevokeLease {
        lease_id: LeaseId,
    },
    /// Ends a lease whose deadline passed on the leader's clock (proposed by the lessor).
    ExpireLease {
        lease_id: LeaseId,
    },
    /// Records remaining TTLs so that a new leader does not give lapsing leases a full
    /// TTL again (`None` clears a checkpoint after a keepalive).
    CheckpointLeases {
        checkpoints: Vec<LeaseCheckpoint>,
    },
    Lock(LockRequest),
    Unlock {
        path: LockPath,
        lease_id: LeaseId,
        token: FencingToken,
        request_id: RequestId,
    },
    /// Removes one waiter, named by the revision at which it queued, so that a late
    /// time-out never cancels a newer wait of the same lease, and by the request it
    /// serves (0: whichever), so that a cancel of a request that a later one took over
    /// ends nothing.
    CancelWait {
        path: LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
        request_id: RequestId,
        reason: CancelReason,
    },
    /// Ends a lock-delay: the path may be granted again.
    EndLockDelay {
        path: LockPath,
    },
    /// Replaces the holder id of a grant (an election's value: `Proclaim`), named by its
    /// token. Added last, so logs written before it still decode.
    Proclaim {
        path: LockPath,
        lease_id: LeaseId,
        token: FencingToken,
        value: String,
        request_id: RequestId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    pub path: LockPath,
    pub lease_id: LeaseId,
    pub mode: LockMode,
    /// 0 is a try-lock.
    pub wait_timeout_ms: u64,
    pub holder_id: String,
    pub request_id: RequestId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCheckpoint {
    pub lease_id: LeaseId,
    pub remaining_ttl_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelReason {
    WaitTimeout,
    Cancelled,
}

/// A one-line summary for logs (Raft requires entries to display).
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::GrantLease { ttl_ms } => write!(f, "grant-lease ttl={ttl_ms}ms"),
            Command::RevokeLease { lease_id } => write!(f, "revoke-lease {lease_id}"),
            Command::ExpireLease { lease_id } => write!(f, "expire-lease {lease_id}"),
            Command::CheckpointLeases { checkpoints } => {
                write!(f, "checkpoint-leases n={}", checkpoints.len())
            }
            Command::Lock(request) => write!(
                f,
                "lock {} lease={} mode={} wait={}ms",
                request.path, request.lease_id, request.mode, request.wait_timeout_ms
            ),
            Command::Unlock { path, lease_id, token, .. } => {
                write!(f, "unlock {path} lease={lease_id} token={token}")
            }
            Command::CancelWait { path, lease_id, queued_revision, .. } => {
                write!(f, "cancel-wait {path} lease={lease_id} queued={queued_revision}")
            }
            Command::EndLockDelay { path } => write!(f, "end-lock-delay {path}"),
            Command::Proclaim { path, lease_id, token, .. } => {
                write!(f, "proclaim {path} lease={lease_id} token={token}")
            }
        }
    }
}
