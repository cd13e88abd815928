//! The client history: every operation the workload invoked, when, and what it learned;
//! the leases it held and the keepalives acknowledged; the writes the fenced resource
//! accepted. Times are simulated microseconds since the start of the run.

use std::collections::BTreeMap;

use lockmgr_core::LockMode;

/// An operation on one path (a lease-wide operation, a revoke or an expiry, appears once on
/// each of the lease's paths).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `wait`: a blocking lock (else a try-lock). A blocking exclusive lock is sometimes an
    /// election's `Campaign`, and an unlock of an exclusive grant its `Resign`: the same
    /// operations on the lock table.
    Lock {
        mode: LockMode,
        wait: bool,
    },
    Unlock {
        token: u64,
    },
    /// An election's `Proclaim` by the holder of `token` (it changes the holder's value,
    /// not who holds).
    Proclaim {
        token: u64,
    },
    /// A linearizable read of the holders (`GetLock`, or `ListLocks` of the path).
    Get,
    /// The lease's `TimeToLive` (a linearizable read through the leader): does the lease
    /// hold this path?
    LeaseTtl,
    /// A linearizable `ValidateFence` of `token` (current, stale or never granted).
    Fence {
        token: u64,
    },
    Revoke,
    /// The lease expired (from the applied log: the leader's `ExpireLease`); `delays`:
    /// it held the path and its expiry started a lock-delay there.
    Expire {
        delays: bool,
    },
    /// A lock-delay on the path ended (from the applied log: the leader's `EndLockDelay`).
    EndLockDelay,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Granted {
        token: u64,
    },
    /// A try-lock found the path taken.
    Busy,
    /// A blocking lock's wait ended without a grant.
    WaitTimedOut,
    /// The lease did not exist (or ended while the lock waited).
    LeaseGone,
    /// The lease held no such grant (stale token or not held).
    NotHeld,
    Done,
    /// A retried revoke found the lease gone: ended by this request or before it.
    Ended,
    Holders(Vec<(i64, LockMode, u64)>),
    /// `TimeToLive`'s answer for one path: whether the lease holds it.
    LeaseHolds {
        holds: bool,
    },
    /// `ValidateFence`'s answer: whether the token is current, and the current tokens.
    Fence {
        valid: bool,
        current: Vec<u64>,
    },
    /// No answer, or one that does not say whether the operation took effect.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    pub client: usize,
    pub path: usize,
    pub lease: i64,
    pub kind: OpKind,
    pub outcome: Outcome,
    /// The request id a lock or unlock was sent (and retried) with; 0 for the others.
    pub request_id: u64,
    pub invoke_us: u64,
    /// `None` when the outcome is unknown: it may take effect any time after invocation.
    pub complete_us: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeaseRecord {
    /// The paths the lease locks (one, two or three).
    pub paths: Vec<usize>,
    pub ttl_ms: u64,
    pub grant_invoke_us: u64,
    /// When each acknowledged keepalive was sent (the deadline was reset after that).
    pub keepalive_sent_us: Vec<u64>,
}

impl LeaseRecord {
    /// The earliest the lease may expire: its TTL after the last acknowledged keepalive
    /// was sent (the leader reset the deadline after that) or after it was asked for.
    pub fn promised_us(&self) -> u64 {
        let renewed_us = self.keepalive_sent_us.iter().copied().max().unwrap_or(0);
        renewed_us.max(self.grant_invoke_us) + self.ttl_ms * 1_000
    }
}

/// A write the fenced resource accepted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Write {
    pub path: usize,
    pub token: u64,
    pub lease: i64,
    pub at_us: u64,
}

/// One watch stream as a watcher saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchRecord {
    pub watcher: usize,
    /// A path, or a prefix of paths.
    pub target: String,
    pub prefix: bool,
    /// 0: from whatever happens next.
    pub start_revision: u64,
    /// (revision, path, kind, lease) in the order received.
    pub events: Vec<(u64, String, i32, i64)>,
    /// The stream said it was compacted (the watcher must re-read).
    pub compacted: bool,
    /// An election's `Observe` stream of the path rather than a watch: its changes are
    /// recorded as the events behind them (a new leader `ACQUIRED`, a new value
    /// `PROCLAIMED`, nobody `RELEASED` with lease 0); a stream from now starts after the
    /// revision of its first answer (the leader as read), which is not recorded.
    pub observe: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    pub ops: Vec<Op>,
    pub leases: BTreeMap<i64, LeaseRecord>,
    /// Lease grants acknowledged to a client (lease id, when).
    pub granted_leases: Vec<(i64, u64)>,
    pub writes: Vec<Write>,
    pub rejected_writes: u64,
    pub watches: Vec<WatchRecord>,
    /// Requests sent on purpose with a request id the lease already used for another
    /// request, and what they were answered.
    pub misuses: Vec<Misuse>,
}

/// A request that reused another request's id: it must be refused, never answered with
/// the other request's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Misuse {
    pub lease: i64,
    pub request_id: u64,
    /// What the id was first used for, and what reused it.
    pub first: String,
    pub reused_for: String,
    /// `None`: refused as a reused id; otherwise what it was answered instead.
    pub wrong_answer: Option<String>,
}

impl History {
    /// Operations whose outcome is known.
    pub fn completed(&self) -> usize {
        self.ops.iter().filter(|op| op.complete_us.is_some()).count()
    }
}

/// A resource outside the cluster that accepts a write only with a token at least as high
/// as any it has seen, per path (what a storage system guarding itself with fencing does).
#[derive(Debug, Default)]
pub struct FencedResource {
    highest: BTreeMap<usize, u64>,
}

impl FencedResource {
    pub fn write(&mut self, history: &mut History, path: usize, token: u64, lease: i64) -> bool {
        let highest = self.highest.entry(path).or_default();
        if token < *highest {
            history.rejected_writes += 1;
            return false;
        }
        *highest = token;
        history.writes.push(Write { path, token, lease, at_us: crate::now_us() });
        true
    }
}
