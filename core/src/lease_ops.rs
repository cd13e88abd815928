//! The lease rules, applied: grant (TTL clamped), end by revoke or expiry (every lock
//! released, every wait dropped, in one command), and remaining-TTL checkpoints.

use std::collections::BTreeSet;

use crate::{
    command::LeaseCheckpoint,
    event::Event,
    lease::Lease,
    machine::StateMachine,
    reply::{Limit, Rejection, Reply},
    types::{LeaseEndReason, LeaseId},
};

impl StateMachine {
    pub(crate) fn grant_lease(&mut self, ttl_ms: u64, events: &mut Vec<Event>) -> Reply {
        if self.state.leases.len() >= self.limits.leases_max {
            let max = self.limits.leases_max as u64;
            return Reply::Rejected(Rejection::LimitExceeded { limit: Limit::Leases, max });
        }
        let ttl_ms = self.limits.clamp_ttl_ms(ttl_ms);
        let lease_id = LeaseId(self.state.next_lease_id);
        self.state.next_lease_id += 1;
        self.state.leases.insert(lease_id, Lease::new(ttl_ms));
        events.push(Event::LeaseGranted { lease_id, ttl_ms });
        Reply::LeaseGranted { lease_id, ttl_ms }
    }

    pub(crate) fn end_lease(
        &mut self,
        lease_id: LeaseId,
        reason: LeaseEndReason,
        events: &mut Vec<Event>,
    ) -> Reply {
        let Some(lease) = self.state.leases.get(&lease_id) else {
            return Reply::Rejected(Rejection::LeaseNotFound { lease_id });
        };
        let held = lease.held.clone();
        let waiting = lease.waiting.clone();
        let delay_ms = self.limits.lock_delay_ms;
        for path in &held {
            self.release(path, lease_id, reason.release_reason(), events);
            if reason == LeaseEndReason::Expired && delay_ms > 0 {
                let entry = self.state.locks.get_mut(path).expect("released path has an entry");
                if !entry.delayed {
                    entry.delayed = true;
                    events.push(Event::LockDelayStarted { path: path.clone(), delay_ms });
                }
            }
        }
        let keep_waits = reason == LeaseEndReason::Expired
            && crate::planted::planted(crate::planted::PlantedBug::GrantExpiredWaiter);
        for path in waiting.iter().filter(|_| !keep_waits) {
            let position = self.state.locks[path]
                .waiter_position(lease_id)
                .expect("a lease's waiting path queues it");
            self.dequeue(path, position, reason.dequeue_reason(), events);
        }
        self.state.leases.remove(&lease_id);
        let touched: BTreeSet<_> = held.union(&waiting).cloned().collect();
        for path in &touched {
            self.hand_off(path, events);
        }
        events.push(Event::LeaseEnded { lease_id, reason });
        Reply::LeaseEnded { lease_id }
    }

    pub(crate) fn checkpoint_leases(
        &mut self,
        checkpoints: &[LeaseCheckpoint],
        events: &mut Vec<Event>,
    ) -> Reply {
        for checkpoint in checkpoints {
            let Some(lease) = self.state.leases.get_mut(&checkpoint.lease_id) else {
                continue;
            };
            let remaining_ttl_ms = checkpoint.remaining_ttl_ms.map(|ms| ms.min(lease.ttl_ms));
            lease.remaining_ttl_ms = remaining_ttl_ms;
            events
                .push(Event::LeaseCheckpointed { lease_id: checkpoint.lease_id, remaining_ttl_ms });
        }
        Reply::Checkpointed
    }
}
