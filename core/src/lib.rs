//! lockmgr's core: the pure, deterministic lock/lease/fencing state machine.
//!
//! No I/O, no clock, no randomness, no threads: the replicated part is
//! [`StateMachine::apply`] (`machine.rs`: a [`Command`] in, an [`Applied`] reply and
//! events out). The leader-side clocks are separate pure types driven by a `now_ms`
//! argument: the [`Lessor`] (lease deadlines, keepalives, checkpoints) and the [`Timers`]
//! (wait time-outs, lock-delays). Each rule lives in a small module of its own:
//!
//! - `path.rs`: which paths are valid, and the rule a bad one breaks;
//! - `lock_ops.rs`: grants, FIFO queues, shared/exclusive, try-lock, unlock by token;
//! - `lease_ops.rs`: lease grant, revoke, expiry, checkpoints;
//! - `dedup.rs`: exactly-once retries by `(lease_id, request_id)`;
//! - `snapshot.rs`: the deterministic, versioned snapshot encoding;
//! - `invariants.rs`: what must hold after every transition.

mod command;
mod deadline_queue;
mod dedup;
mod event;
mod invariants;
mod lease;
mod lease_ops;
mod lessor;
mod limits;
mod lock;
mod lock_ops;
mod machine;
mod path;
pub mod planted;
mod reply;
mod snapshot;
mod timers;
mod types;
mod views;

pub use command::{CancelReason, Command, LeaseCheckpoint, LockRequest};
pub use event::{Event, WatchEvent, WatchEventKind};
pub use invariants::InvariantViolation;
pub use lessor::{KeepAliveError, Lessor, LessorConfig, Renewal};
pub use limits::{LOCK_DELAY_MS_CEILING, Limits, LimitsError};
pub use machine::{Applied, StateMachine};
pub use path::{LockPath, PathError, PathRules, check_prefix};
pub use reply::{HolderView, Limit, LockOutcome, Rejection, Reply};
pub use snapshot::SnapshotError;
pub use timers::{Timers, TimersConfig};
pub use types::{
    DequeueReason, FencingToken, LeaseEndReason, LeaseId, LockMode, ReleaseReason, RequestId,
    Revision,
};
pub use views::{FenceCheck, LeaseView, LockView, WaiterView};
