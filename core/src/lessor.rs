//! The leader's lease clock (etcd's lessor, without its clock reads): which lease
//! expires when, on the leader's monotonic clock, given as `now_ms` to every call.
//!
//! Calling order, on the node that leads:
//! 1. `promote(now_ms, state.lease_ttls())` once leadership is confirmed and the log
//!    of earlier terms is applied;
//! 2. `handle_event(now_ms, event)` for every event `apply` returns from then on;
//! 3. `handle_keepalive(now_ms, id)` per ping; if it says `needs_checkpoint_clear`,
//!    propose `CheckpointLeases { id: None }` (after any checkpoint polled earlier) and
//!    acknowledge the ping only once that is committed;
//! 4. at `poll_timeout()`: propose `ExpireLease` for each of `poll_expired(now_ms)` and
//!    one `CheckpointLeases` with `poll_checkpoints(now_ms)`;
//! 5. `demote()` when leadership is lost.
//!
//! Deadlines: never early, never forever. A new leader cannot know when a lease was
//! last kept alive, so it gives every lease a full TTL from its own `now` (never
//! earlier than any deadline promised), except leases an earlier leader checkpointed as
//! lapsing (less than half their TTL left): those get the checkpointed remainder. A
//! lease nobody keeps alive therefore still expires, provided some leader lives half a
//! TTL plus a checkpoint interval. A keepalive on a checkpointed lease must clear the
//! checkpoint through Raft before it is acknowledged, or a later leader would cut the
//! renewed lease short; healthy leases are never checkpointed, so their keepalives never
//! touch the log.

use std::collections::BTreeMap;

use crate::{
    command::LeaseCheckpoint, deadline_queue::DeadlineQueue, event::Event, types::LeaseId,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LessorConfig {
    pub checkpoint_interval_ms: u64,
    pub checkpoint_batch_max: usize,
    pub expire_batch_max: usize,
    /// After `poll_expired` returns a lease, it is returned again after this long if it
    /// still exists (the `ExpireLease` proposal was lost).
    pub expire_retry_ms: u64,
    /// How fast, in parts per million, any node's clock may run against real time. A
    /// lessor holds every lease this much longer than its TTL on its own clock, so that a
    /// fast clock (or a slow one before a failover) never frees a lock before the TTL
    /// has passed in real time. 0 trusts the clocks exactly.
    pub clock_drift_max_ppm: u64,
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            checkpoint_interval_ms: 1_000,
            checkpoint_batch_max: 10_000,
            expire_batch_max: 1_000,
            expire_retry_ms: 1_000,
            clock_drift_max_ppm: 0,
        }
    }
}

impl LessorConfig {
    /// How long, on a lessor's clock, a lease with `ttl_ms` is held after a renewal.
    fn hold_ms(&self, ttl_ms: u64) -> u64 {
        if crate::planted::planted(crate::planted::PlantedBug::IgnoreClockDrift) {
            return ttl_ms;
        }
        ttl_ms + (ttl_ms * self.clock_drift_max_ppm).div_ceil(1_000_000)
    }
}

/// A keepalive's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    pub ttl_ms: u64,
    /// The replicated state holds (or is about to hold) a checkpoint for this lease:
    /// clear it through Raft before acknowledging the keepalive.
    pub needs_checkpoint_clear: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeepAliveError {
    #[error("this node is not the leader")]
    NotPrimary,
    #[error("lease {0} not found")]
    NotFound(LeaseId),
    #[error("lease {0} has expired")]
    Expired(LeaseId),
}

#[derive(Clone, Debug)]
struct LeaseClock {
    ttl_ms: u64,
    /// The checkpoint the replicated state holds, if any.
    checkpointed_ms: Option<u64>,
    /// A checkpoint was polled and may not be applied yet.
    checkpoint_in_flight: bool,
    /// `poll_expired` returned it: keepalives are refused from then on.
    expiring: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Lessor {
    config: LessorConfig,
    primary: bool,
    leases: BTreeMap<LeaseId, LeaseClock>,
    deadlines: DeadlineQueue<LeaseId>,
    next_checkpoint_ms: u64,
}

impl Lessor {
    pub fn new(config: LessorConfig) -> Lessor {
        Lessor { config, ..Lessor::default() }
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// Becomes the leader's lessor. `leases` is every lease with its TTL and its
    /// checkpointed remaining TTL ([`crate::StateMachine::lease_ttls`]).
    pub fn promote(
        &mut self,
        now_ms: u64,
        leases: impl IntoIterator<Item = (LeaseId, u64, Option<u64>)>,
    ) {
        self.demote();
        self.primary = true;
        for (lease_id, ttl_ms, checkpointed_ms) in leases {
            let clock = LeaseClock {
                ttl_ms,
                checkpointed_ms,
                checkpoint_in_flight: false,
                expiring: false,
            };
            self.leases.insert(lease_id, clock);
            let hold_ms = checkpointed_ms.unwrap_or(self.config.hold_ms(ttl_ms));
            self.deadlines.insert(lease_id, now_ms + hold_ms);
        }
        self.next_checkpoint_ms = now_ms + self.config.checkpoint_interval_ms;
    }

    /// Forgets every deadline: another node decides expiry now.
    pub fn demote(&mut self) {
        self.primary = false;
        self.leases.clear();
        self.deadlines.clear();
    }

    /// Follows the applied state. Ignored unless primary.
    pub fn handle_event(&mut self, now_ms: u64, event: &Event) {
        if !self.primary {
            return;
        }
        match event {
            Event::LeaseGranted { lease_id, ttl_ms } => {
                let clock = LeaseClock {
                    ttl_ms: *ttl_ms,
                    checkpointed_ms: None,
                    checkpoint_in_flight: false,
                    expiring: false,
                };
                self.leases.insert(*lease_id, clock);
                self.deadlines.insert(*lease_id, now_ms + self.config.hold_ms(*ttl_ms));
            }
            Event::LeaseEnded { lease_id, .. } => {
                self.leases.remove(lease_id);
                self.deadlines.remove(lease_id);
            }
            Event::LeaseCheckpointed { lease_id, remaining_ttl_ms } => {
                if let Some(clock) = self.leases.get_mut(lease_id) {
                    clock.checkpointed_ms = *remaining_ttl_ms;
                    clock.checkpoint_in_flight = false;
                    // A clear commits a renewal that some lessor acknowledged once this
                    // commit is done, possibly an earlier term's lessor on this very node
                    // while this one was promoted from a state that still had the
                    // checkpoint. Its promise (at most now + TTL) must hold here too
                    // (found by the simulator, seed 171).
                    let renewed_ms = now_ms + self.config.hold_ms(clock.ttl_ms);
                    let shorter = self.deadlines.deadline(lease_id).is_some_and(|d| d < renewed_ms);
                    if remaining_ttl_ms.is_none() && !clock.expiring && shorter {
                        self.deadlines.insert(*lease_id, renewed_ms);
                    }
                }
            }
            _ => {}
        }
    }

    /// A keepalive: the lease's deadline becomes `now_ms + ttl`.
    pub fn handle_keepalive(
        &mut self,
        now_ms: u64,
        lease_id: LeaseId,
    ) -> Result<Renewal, KeepAliveError> {
        if !self.primary {
            return Err(KeepAliveError::NotPrimary);
        }
        let clock = self.leases.get_mut(&lease_id).ok_or(KeepAliveError::NotFound(lease_id))?;
        let deadline_ms = self.deadlines.deadline(&lease_id).expect("every lease has a deadline");
        if clock.expiring || deadline_ms <= now_ms {
            return Err(KeepAliveError::Expired(lease_id));
        }
        let hold_ms = if crate::planted::planted(crate::planted::PlantedBug::ExpireEarly) {
            clock.ttl_ms / 2
        } else {
            self.config.hold_ms(clock.ttl_ms)
        };
        self.deadlines.insert(lease_id, now_ms + hold_ms);
        let needs_checkpoint_clear = clock.checkpointed_ms.is_some() || clock.checkpoint_in_flight;
        Ok(Renewal { ttl_ms: clock.ttl_ms, needs_checkpoint_clear })
    }

    /// Leases whose deadline has passed: propose `ExpireLease` for each.
    pub fn poll_expired(&mut self, now_ms: u64) -> Vec<LeaseId> {
        if !self.primary {
            return Vec::new();
        }
        let retry_at_ms = now_ms + self.config.expire_retry_ms;
        let expired = self.deadlines.pop_due(now_ms, self.config.expire_batch_max, retry_at_ms);
        for lease_id in &expired {
            self.leases.get_mut(lease_id).expect("deadline of a known lease").expiring = true;
        }
        expired
    }

    /// Remaining TTLs of lapsing leases, once per checkpoint interval: propose them as
    /// one `CheckpointLeases`. Empty when there is nothing to record.
    pub fn poll_checkpoints(&mut self, now_ms: u64) -> Vec<LeaseCheckpoint> {
        if !self.primary || now_ms < self.next_checkpoint_ms {
            return Vec::new();
        }
        self.next_checkpoint_ms = now_ms + self.config.checkpoint_interval_ms;
        let interval_ms = self.config.checkpoint_interval_ms;
        let mut checkpoints = Vec::new();
        for (lease_id, clock) in &mut self.leases {
            if checkpoints.len() == self.config.checkpoint_batch_max {
                break;
            }
            let deadline_ms =
                self.deadlines.deadline(lease_id).expect("every lease has a deadline");
            let remaining_ms = deadline_ms.saturating_sub(now_ms);
            let lapsing = remaining_ms < self.config.hold_ms(clock.ttl_ms) / 2;
            let moved = clock.checkpointed_ms.is_none_or(|ms| ms >= remaining_ms + interval_ms);
            if lapsing && moved && !clock.expiring {
                clock.checkpoint_in_flight = true;
                checkpoints.push(LeaseCheckpoint {
                    lease_id: *lease_id,
                    remaining_ttl_ms: Some(remaining_ms),
                });
            }
        }
        checkpoints
    }

    /// When the driver must call `poll_expired` / `poll_checkpoints` again.
    pub fn poll_timeout(&self) -> Option<u64> {
        if !self.primary {
            return None;
        }
        let next_expiry = self.deadlines.next_deadline();
        let next_checkpoint = (!self.leases.is_empty()).then_some(self.next_checkpoint_ms);
        match (next_expiry, next_checkpoint) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The lease's remaining TTL, as promised to clients: the time left on this leader's
    /// clock less the drift allowance.
    pub fn remaining_ms(&self, now_ms: u64, lease_id: LeaseId) -> Option<u64> {
        let deadline_ms = self.deadlines.deadline(&lease_id)?;
        let expiring = self.leases.get(&lease_id).is_some_and(|clock| clock.expiring);
        let left_ms = deadline_ms.saturating_sub(now_ms);
        let promised_ms = left_ms * 1_000_000 / (1_000_000 + self.config.clock_drift_max_ppm);
        Some(if expiring { 0 } else { promised_ms })
    }

    pub fn lease_count(&self) -> usize {
        self.leases.len()
    }
}
