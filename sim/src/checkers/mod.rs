//! The checkers, one invariant per file (DESIGN.md section 4). The first three watch the
//! nodes while the run goes on (`observe.rs` feeds them); the others read the finished
//! history and the applied log; `liveness.rs` probes the healed cluster. All but the
//! liveness probe also run on the chaos suite's real-process histories.

pub mod election_safety;
pub mod fenced_resource;
pub mod fencing;
pub mod lease_safety;
pub mod linearizability;
#[cfg(madsim)]
pub mod liveness;
pub mod lock_model;
pub mod lost_ack;
pub mod mutual_exclusion;
pub mod raft_progress;
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
