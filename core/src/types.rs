//! The small vocabulary every other module speaks: lease ids, lock modes, and the
//! reasons a grant or a wait ends.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The global revision: bumped once per watch event. A grant's fencing token is the
/// revision at which it was granted, so tokens are unique and strictly increasing.
pub type Revision = u64;

/// A grant's fencing token (the [`Revision`] of the grant).
pub type FencingToken = u64;

/// A lease-scoped request id for exactly-once retries; `0` means "no de-duplication".
pub type RequestId = u64;

/// A lease's id: assigned by the state machine in increasing order, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockMode {
    /// One holder, nobody else.
    Exclusive,
    /// Any number of shared holders, no exclusive one.
    Shared,
    /// A counting semaphore: up to `permits` holders at once, each with its own grant
    /// and token. Every holder and waiter of a path names the same `permits`.
    Semaphore { permits: u32 },
}

impl LockMode {
    /// Whether a request in `self` mode may join the current `holders`.
    pub fn compatible_with<'a>(self, mut holders: impl Iterator<Item = &'a LockMode>) -> bool {
        match self {
            LockMode::Exclusive => holders.next().is_none(),
            LockMode::Shared => holders.all(|held| *held == LockMode::Shared),
            LockMode::Semaphore { permits } => {
                let mut count = 0_u64;
                holders.all(|held| {
                    count += 1;
                    *held == self
                }) && count < u64::from(permits)
            }
        }
    }

    /// A semaphore's permits; `None` for a lock.
    pub fn permits(self) -> Option<u32> {
        match self {
            LockMode::Semaphore { permits } => Some(permits),
            LockMode::Exclusive | LockMode::Shared => None,
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockMode::Exclusive => f.write_str("exclusive"),
            LockMode::Shared => f.write_str("shared"),
            LockMode::Semaphore { permits } => write!(f, "semaphore({permits})"),
        }
    }
}

/// Why a grant ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReleaseReason {
    /// `Unlock` by its holder.
    Released,
    /// Its lease was revoked.
    Revoked,
    /// Its lease expired.
    Expired,
}

/// Why a waiter left the queue without being granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DequeueReason {
    /// Its wait time-out passed (the leader proposed `CancelWait`).
    WaitTimeout,
    /// Its caller went away (the leader proposed `CancelWait`).
    Cancelled,
    /// Its lease was revoked.
    Revoked,
    /// Its lease expired.
    Expired,
}

/// Why a lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LeaseEndReason {
    Revoked,
    Expired,
}

impl LeaseEndReason {
    pub(crate) fn release_reason(self) -> ReleaseReason {
        match self {
            LeaseEndReason::Revoked => ReleaseReason::Revoked,
            LeaseEndReason::Expired => ReleaseReason::Expired,
        }
    }

    pub(crate) fn dequeue_reason(self) -> DequeueReason {
        match self {
            LeaseEndReason::Revoked => DequeueReason::Revoked,
            LeaseEndReason::Expired => DequeueReason::Expired,
        }
    }
}
