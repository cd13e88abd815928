//! The checkers, one invariant per file (`docs/invariants.md`). Election safety, Raft
//! progress and state machine safety watch the nodes while a run goes on (the
//! simulator's `observe.rs` feeds them); the others read the finished history and the
//! applied log, in the simulator and on the chaos suite's real-process histories alike.
//! Liveness after healing is a probe of a live cluster, so each harness has its own
//! (`sim/src/liveness.rs`, `chaos/src/check.rs`).

pub mod election_safety;
pub mod fenced_resource;
pub mod fencing;
pub mod lease_safety;
pub mod linearizability;
pub mod lock_model;
pub mod lost_ack;
pub mod mutual_exclusion;
pub mod raft_progress;
pub mod request_ids;
pub mod state_machine_safety;
pub mod watch_consistency;

/// A broken invariant: which checker saw it, and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub checker: &'static str,
    pub message: String,
}

impl Violation {
    pub fn new(checker: &'static str, message: impl Into<String>) -> Violation {
        Violation { checker, message: message.into() }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.checker, self.message)
    }
}
