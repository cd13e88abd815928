//! core's lock semantics for one path, as the sequential specification the client history
//! is checked against: who holds the path (lease, mode, token), the highest token granted
//! on it, and which of the leases that use it have ended. Fencing tokens are global
//! revisions, so the model cannot predict them; it requires what core promises: a new
//! grant's token is above every earlier grant's on the path, and a holder keeps its token.
//!
//! A workload lease uses one to three paths; its revoke or expiry appears in each of their
//! histories (the workload and `resolve.rs` put it there), so paths can be checked one by
//! one: each path's history must be linearizable on its own, which every linearizable
//! history of the whole table is.
//!
//! Whether a lease has ended is not part of the state: it ended exactly when one of its
//! ending operations ([`ends_lease`]) was taken, so the search knows it from the set of
//! operations it has taken, and tells [`PathState::step`]. (Keeping the ended leases in
//! the state made every state, and every remembered one, grow with the whole history.)

use lockmgr_core::LockMode;

use crate::history::{Op, OpKind, Outcome};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathState {
    /// Sorted by lease. A token is `None` when the grant's answer was lost.
    holders: Vec<(i64, LockMode, Option<u64>)>,
    max_token: u64,
    /// A lock-delay is in force: nothing is granted until it ends.
    delayed: bool,
}

/// Whether `op`, when taken, ends its lease.
pub fn ends_lease(op: &Op) -> bool {
    matches!(
        (&op.kind, &op.outcome),
        (OpKind::Revoke | OpKind::Expire { .. }, Outcome::Done) | (OpKind::Revoke, Outcome::Ended)
    )
}

impl PathState {
    pub fn held_by(&self, lease: i64) -> Option<usize> {
        self.holders.iter().position(|(holder, ..)| *holder == lease)
    }

    fn compatible(&self, mode: LockMode) -> bool {
        mode.compatible_with(self.holders.iter().map(|(_, mode, _)| mode))
    }

    fn grant(&self, lease: i64, mode: LockMode, token: Option<u64>) -> PathState {
        let mut next = self.clone();
        next.holders.push((lease, mode, token));
        next.holders.sort_unstable();
        if let Some(token) = token {
            next.max_token = token;
        }
        next
    }

    fn end(&self, lease: i64) -> PathState {
        let mut next = self.clone();
        next.holders.retain(|(holder, ..)| *holder != lease);
        next
    }

    fn release(&self, at: usize) -> PathState {
        let mut next = self.clone();
        next.holders.remove(at);
        next
    }

    fn bind(&self, at: usize, token: u64) -> PathState {
        let mut next = self.clone();
        next.holders[at].2 = Some(token);
        next
    }

    /// The state `op` leads to from this one (none: it cannot happen here), `alive`
    /// saying whether its lease has not ended yet. Operations with an unknown outcome were
    /// settled from the applied log before (`resolve.rs`).
    pub fn step(&self, op: &Op, alive: bool) -> Option<PathState> {
        let lease = op.lease;
        let held = self.held_by(lease);
        match (&op.kind, &op.outcome) {
            (OpKind::Lock { mode, .. }, Outcome::Granted { token }) => match held {
                // The same lease asking again gets its grant back.
                Some(at) => match self.holders[at].2 {
                    Some(held) => (held == *token).then(|| self.clone()),
                    None => Some(self.bind(at, *token)),
                },
                None => {
                    (alive && !self.delayed && self.compatible(*mode) && *token > self.max_token)
                        .then(|| self.grant(lease, *mode, Some(*token)))
                }
            },
            // A shared try-lock is also refused behind a queued exclusive request, and
            // every try-lock during a lock-delay.
            // A shared or semaphore try-lock is also refused behind a queued request,
            // which the model does not follow.
            (OpKind::Lock { mode, wait: false }, Outcome::Busy) => (alive
                && held.is_none()
                && (self.delayed
                    || !self.compatible(*mode)
                    || (*mode != LockMode::Exclusive && !self.holders.is_empty())))
            .then(|| self.clone()),
            (OpKind::Proclaim { token }, Outcome::Done) => {
                let at = held?;
                match self.holders[at].2 {
                    Some(held) => (held == *token).then(|| self.clone()),
                    None => Some(self.bind(at, *token)),
                }
            }
            (OpKind::Proclaim { token }, Outcome::NotHeld) => {
                let holds_it = held.is_some_and(|at| self.holders[at].2 == Some(*token));
                (alive && !holds_it).then(|| self.clone())
            }
            (OpKind::Lock { wait: true, .. }, Outcome::WaitTimedOut) => {
                held.is_none().then(|| self.clone())
            }
            (OpKind::LeaseTtl, Outcome::LeaseHolds { holds }) => {
                (alive && held.is_some() == *holds).then(|| self.clone())
            }
            (
                OpKind::Lock { .. }
                | OpKind::Unlock { .. }
                | OpKind::Proclaim { .. }
                | OpKind::Revoke
                | OpKind::LeaseTtl,
                Outcome::LeaseGone,
            ) => (!alive).then(|| self.clone()),
            (OpKind::Unlock { token }, Outcome::Done) => {
                let at = held?;
                self.holders[at].2.is_none_or(|held| held == *token).then(|| self.release(at))
            }
            (OpKind::Unlock { token }, Outcome::NotHeld) => {
                let holds_it = held.is_some_and(|at| self.holders[at].2 == Some(*token));
                (alive && !holds_it).then(|| self.clone())
            }
            (OpKind::Revoke | OpKind::Expire { delays: false }, Outcome::Done) => {
                alive.then(|| self.end(lease))
            }
            // An expiry of a lease holding the path starts a lock-delay there. The grant it
            // held may be one no client was told of: a wait granted just before its lease
            // expired is answered "lease lost" (`docs/wire-contract.md`), so the model
            // need not know the holder.
            (OpKind::Expire { delays: true }, Outcome::Done) => alive.then(|| {
                let mut next = self.end(lease);
                next.delayed = true;
                next
            }),
            (OpKind::EndLockDelay, Outcome::Done) => {
                self.delayed.then(|| PathState { delayed: false, ..self.clone() })
            }
            (OpKind::Revoke, Outcome::Ended) => Some(self.end(lease)),
            (OpKind::Get, Outcome::Holders(listed)) => self.matches(listed),
            (OpKind::Fence { token }, Outcome::Fence { valid, current }) => {
                self.fence_matches(*token, *valid, current)
            }
            _ => None,
        }
    }

    /// A fence check: the current tokens are the holders' (a holder whose token is not
    /// known yet is bound when it is the only one), and the token is valid exactly when
    /// it is one of them.
    fn fence_matches(&self, token: u64, valid: bool, current: &[u64]) -> Option<PathState> {
        if valid != current.contains(&token) || current.len() != self.holders.len() {
            return None;
        }
        let known: Vec<u64> = self.holders.iter().filter_map(|(_, _, t)| *t).collect();
        if !known.iter().all(|t| current.contains(t)) {
            return None;
        }
        let unknown: Vec<usize> =
            (0..self.holders.len()).filter(|at| self.holders[*at].2.is_none()).collect();
        if let [at] = unknown[..] {
            let left = current.iter().copied().find(|t| !known.contains(t))?;
            return Some(self.bind(at, left));
        }
        Some(self.clone())
    }

    /// A read of the holders: the same leases and modes, tokens equal or bound now.
    fn matches(&self, listed: &[(i64, LockMode, u64)]) -> Option<PathState> {
        let mut listed = listed.to_vec();
        listed.sort_unstable();
        if listed.len() != self.holders.len() {
            return None;
        }
        let mut next = self.clone();
        for (held, seen) in next.holders.iter_mut().zip(&listed) {
            if held.0 != seen.0 || held.1 != seen.1 || held.2.is_some_and(|t| t != seen.2) {
                return None;
            }
            held.2 = Some(seen.2);
        }
        Some(next)
    }
}
