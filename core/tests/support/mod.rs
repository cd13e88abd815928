//! Helpers shared by the core tests: terse constructors for commands and a state
//! machine that checks every invariant after every command.
#![allow(dead_code, clippy::needless_pass_by_value)]

use lockmgr_core::{
    Applied, Command, Event, LeaseId, Limits, LockMode, LockOutcome, LockPath, LockRequest,
    PathRules, Reply, StateMachine, WatchEvent, WatchEventKind,
};

pub fn path(path: &str) -> LockPath {
    LockPath::parse(path, PathRules::DEFAULT).unwrap()
}

/// A state machine whose every `apply` is followed by an invariant check.
pub struct Checked(pub StateMachine);

impl Checked {
    pub fn new() -> Checked {
        Checked(StateMachine::new(Limits::default()))
    }

    pub fn with(limits: Limits) -> Checked {
        Checked(StateMachine::new(limits))
    }

    pub fn apply(&mut self, command: Command) -> Applied {
        let applied = self.0.apply(&command);
        self.0.check_invariants().unwrap();
        applied
    }

    pub fn lease(&mut self, ttl_ms: u64) -> LeaseId {
        match self.apply(Command::GrantLease { ttl_ms }).reply {
            Reply::LeaseGranted { lease_id, .. } => lease_id,
            other => panic!("grant failed: {other:?}"),
        }
    }

    pub fn lock(
        &mut self,
        path_: &str,
        lease_id: LeaseId,
        mode: LockMode,
        wait_ms: u64,
    ) -> Applied {
        self.apply(lock_command(path_, lease_id, mode, wait_ms, 0))
    }

    /// Locks and expects a grant; returns the token.
    pub fn grant(&mut self, path_: &str, lease_id: LeaseId, mode: LockMode) -> u64 {
        match self.lock(path_, lease_id, mode, 0).reply {
            Reply::Lock(LockOutcome::Granted { token, .. }) => token,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    pub fn unlock(&mut self, path_: &str, lease_id: LeaseId, token: u64) -> Applied {
        self.apply(Command::Unlock { path: path(path_), lease_id, token, request_id: 0 })
    }
}

pub fn lock_command(
    path_: &str,
    lease_id: LeaseId,
    mode: LockMode,
    wait_timeout_ms: u64,
    request_id: u64,
) -> Command {
    Command::Lock(LockRequest {
        path: path(path_),
        lease_id,
        mode,
        wait_timeout_ms,
        holder_id: format!("holder-{}", lease_id.0),
        request_id,
    })
}

/// The watch events of an `Applied`, as (revision, path, lease, kind).
pub fn watch(applied: &Applied) -> Vec<(u64, String, i64, WatchEventKind)> {
    applied
        .events
        .iter()
        .filter_map(Event::as_watch)
        .map(|WatchEvent { revision, path, lease_id, kind, .. }| {
            (*revision, path.to_string(), lease_id.0, *kind)
        })
        .collect()
}
