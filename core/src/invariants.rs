//! Whole-state checks: what must hold after every transition. Too costly to run on every
//! apply in production (they walk everything); tests and the simulator run them after
//! each step, and a restored snapshot must pass them before it is used.

use std::collections::BTreeSet;

use crate::{machine::StateMachine, types::LockMode};

/// A broken invariant, described.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state machine invariant broken: {0}")]
pub struct InvariantViolation(pub String);

impl StateMachine {
    /// Checks every invariant of the lock table and leases.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let fail = |message: String| Err(InvariantViolation(message));
        let state = &self.state;
        let mut tokens = BTreeSet::new();
        let (mut held, mut waiting) = (0, 0);
        for (path, entry) in &state.locks {
            if entry.is_vacant() {
                return fail(format!("{path} has an empty entry"));
            }
            let exclusive = entry.holders.iter().filter(|g| g.mode == LockMode::Exclusive).count();
            if exclusive > 0 && entry.holders.len() > 1 {
                return fail(format!("{path} has an exclusive grant beside another grant"));
            }
            let mut kinds = entry.holders.iter().map(|g| g.mode.permits());
            let kinds = kinds.by_ref().chain(entry.waiters.iter().map(|w| w.mode.permits()));
            let kinds: BTreeSet<Option<u32>> = kinds.collect();
            if kinds.len() > 1 {
                return fail(format!("{path} mixes locks and semaphores of other permits"));
            }
            if let Some(Some(permits)) = kinds.first()
                && entry.holders.len() > *permits as usize
            {
                return fail(format!("{path} has more holders than its {permits} permits"));
            }
            if entry.front_grantable() {
                return fail(format!("{path} has a grantable waiter at the head of its queue"));
            }
            let mut leases_here = BTreeSet::new();
            for grant in &entry.holders {
                if grant.token == 0 || grant.token > state.revision || !tokens.insert(grant.token) {
                    return fail(format!(
                        "{path} has token {} reused or from the future",
                        grant.token
                    ));
                }
                let owned =
                    state.leases.get(&grant.lease_id).is_some_and(|l| l.held.contains(path));
                if !owned || !leases_here.insert(grant.lease_id) {
                    return fail(format!(
                        "{path} grant of lease {} is not its lease's",
                        grant.lease_id
                    ));
                }
                held += 1;
            }
            let mut previous = 0;
            for waiter in &entry.waiters {
                if waiter.queued_revision <= previous || waiter.queued_revision > state.revision {
                    return fail(format!("{path} queue is not in revision order"));
                }
                previous = waiter.queued_revision;
                let owned =
                    state.leases.get(&waiter.lease_id).is_some_and(|l| l.waiting.contains(path));
                if !owned || !leases_here.insert(waiter.lease_id) {
                    return fail(format!(
                        "{path} waiter of lease {} is not its lease's",
                        waiter.lease_id
                    ));
                }
                waiting += 1;
            }
        }
        for (lease_id, lease) in &state.leases {
            if lease_id.0 <= 0 || lease_id.0 >= state.next_lease_id {
                return fail(format!("lease id {lease_id} was never handed out"));
            }
            if lease.remaining_ttl_ms.is_some_and(|ms| ms > lease.ttl_ms) {
                return fail(format!("lease {lease_id} checkpoint exceeds its TTL"));
            }
            if !lease.held.is_disjoint(&lease.waiting) {
                return fail(format!("lease {lease_id} both holds and waits for a path"));
            }
            held -= lease.held.len() as i64;
            waiting -= lease.waiting.len() as i64;
        }
        if held != 0 || waiting != 0 {
            return fail("a lease lists a path that does not list the lease".into());
        }
        Ok(())
    }
}
