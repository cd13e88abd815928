//! The lock rules, applied: acquire (grant, queue or busy), unlock by token, cancel a
//! wait, end a lock-delay, and the FIFO hand-off that follows every release.
//!
//! A lease asking again for a path it already holds gets its grant back; one asking
//! again for a path it waits for keeps its place: a try-lock is answered busy and
//! leaves the wait alone, a blocking request takes the wait over (its request id and
//! time-out replace the earlier ones, so a cancel of the earlier request no longer
//! matches it).
//!
//! Transitions of a path: free -> held (grant) -> free (release); a request that cannot
//! be granted at once queues (wait > 0) or is answered busy (try-lock); every release,
//! dequeue or lock-delay end hands the path to the head of the queue while the head is
//! compatible with the holders, so a shared request never overtakes a queued exclusive
//! one.

use crate::{
    command::{CancelReason, LockRequest},
    dedup::{RequestKey, Seen},
    event::{Event, WatchEventKind},
    lock::{Grant, LockEntry, Waiter},
    machine::{StateMachine, emit},
    path::LockPath,
    planted::{PlantedBug, planted},
    reply::{Limit, LockOutcome, Rejection, Reply},
    types::{DequeueReason, FencingToken, LeaseId, LockMode, ReleaseReason, RequestId, Revision},
};

enum Decision {
    Grant,
    Queue,
    /// The lease already waits for the path, at this place in the queue.
    Rejoin(usize),
    Busy(LockOutcome),
    Answer(Reply),
}

impl StateMachine {
    pub(crate) fn acquire(&mut self, request: &LockRequest, events: &mut Vec<Event>) -> Reply {
        if let Err(rejection) = self.check_lock_request(request) {
            return Reply::Rejected(rejection);
        }
        let key = RequestKey::Lock { path: request.path.clone(), mode: request.mode };
        match self.seen(request.lease_id, request.request_id, &key) {
            Ok(()) => {}
            Err(reply) => return reply,
        }
        let reply = match self.decide(request) {
            Decision::Grant => self.grant_now(request, events),
            Decision::Queue => self.enqueue(request, events),
            Decision::Rejoin(position) => self.rejoin(request, position, events),
            Decision::Busy(outcome) => Reply::Lock(outcome),
            Decision::Answer(reply) => reply,
        };
        self.remember(request.lease_id, request.request_id, key, &reply);
        reply
    }

    pub(crate) fn unlock(
        &mut self,
        path: &LockPath,
        lease_id: LeaseId,
        token: FencingToken,
        request_id: RequestId,
        events: &mut Vec<Event>,
    ) -> Reply {
        let key = RequestKey::Unlock { path: path.clone(), token };
        if let Err(reply) = self.seen(lease_id, request_id, &key) {
            return reply;
        }
        let held = self.state.locks.get(path).and_then(|entry| entry.holder(lease_id));
        let reply = match held {
            None => Reply::Rejected(Rejection::LockNotHeld { path: path.clone(), lease_id }),
            Some(grant) if grant.token != token && !planted(PlantedBug::UnlockIgnoresToken) => {
                Reply::Rejected(Rejection::StaleToken {
                    path: path.clone(),
                    lease_id,
                    token,
                    current: grant.token,
                })
            }
            Some(_) => {
                self.release(path, lease_id, ReleaseReason::Released, events);
                self.hand_off(path, events);
                Reply::Unlocked { token }
            }
        };
        self.remember(lease_id, request_id, key, &reply);
        reply
    }

    /// Replaces the holder id (an election's value) of `lease_id`'s grant of `path`,
    /// named by its token; the grant, its token and the queue are untouched.
    pub(crate) fn proclaim(
        &mut self,
        path: &LockPath,
        lease_id: LeaseId,
        token: FencingToken,
        value: &str,
        request_id: RequestId,
        events: &mut Vec<Event>,
    ) -> Reply {
        let max = self.limits.holder_id_bytes_max;
        if value.len() > max {
            return Reply::Rejected(Rejection::HolderIdTooLong { len: value.len(), max });
        }
        let key = RequestKey::Proclaim { path: path.clone(), token, value: value.to_owned() };
        if let Err(reply) = self.seen(lease_id, request_id, &key) {
            return reply;
        }
        let state = &mut self.state;
        let grant = state
            .locks
            .get_mut(path)
            .and_then(|entry| entry.holders.iter_mut().find(|grant| grant.lease_id == lease_id));
        let reply = match grant {
            None => Reply::Rejected(Rejection::LockNotHeld { path: path.clone(), lease_id }),
            Some(grant) if grant.token != token => Reply::Rejected(Rejection::StaleToken {
                path: path.clone(),
                lease_id,
                token,
                current: grant.token,
            }),
            Some(grant) => {
                value.clone_into(&mut grant.holder_id);
                let who = (lease_id, value, grant.mode);
                emit(&mut state.revision, events, path, who, WatchEventKind::Proclaimed { token });
                if planted(PlantedBug::ElectionTwoLeaders) {
                    self.hand_off_past_holders(path, events);
                }
                Reply::Proclaimed { token }
            }
        };
        self.remember(lease_id, request_id, key, &reply);
        reply
    }

    /// The planted election bug: the queue is handed off as if the path had no holders.
    fn hand_off_past_holders(&mut self, path: &LockPath, events: &mut Vec<Event>) {
        let entry = self.state.locks.get_mut(path).expect("a proclaimed path has an entry");
        let kept = std::mem::take(&mut entry.holders);
        self.hand_off(path, events);
        self.state.locks.entry(path.clone()).or_default().holders.splice(0..0, kept);
    }

    /// Removes the waiter that queued at `queued_revision`, if it still serves
    /// `request_id` (0: whichever request): a cancel of a request that a later one took
    /// over ends nothing.
    pub(crate) fn cancel_wait(
        &mut self,
        path: &LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
        request_id: RequestId,
        reason: CancelReason,
        events: &mut Vec<Event>,
    ) -> Reply {
        let position = self.state.locks.get(path).and_then(|entry| {
            entry.waiters.iter().position(|waiter| {
                waiter.lease_id == lease_id
                    && waiter.queued_revision == queued_revision
                    && (request_id == 0 || waiter.request_id == request_id)
            })
        });
        let Some(position) = position else {
            return Reply::NotWaiting;
        };
        let (dequeue_reason, outcome) = match reason {
            CancelReason::WaitTimeout => {
                (DequeueReason::WaitTimeout, Rejection::WaitTimedOut { path: path.clone() })
            }
            CancelReason::Cancelled => {
                (DequeueReason::Cancelled, Rejection::WaitCancelled { path: path.clone() })
            }
        };
        let waiter = self.dequeue(path, position, dequeue_reason, events);
        if let Some(lease) = self.state.leases.get_mut(&lease_id) {
            lease.requests.resolve(waiter.request_id, Reply::Rejected(outcome));
        }
        self.hand_off(path, events);
        Reply::WaitCancelled
    }

    pub(crate) fn end_lock_delay(&mut self, path: &LockPath, events: &mut Vec<Event>) -> Reply {
        if let Some(entry) = self.state.locks.get_mut(path).filter(|entry| entry.delayed) {
            entry.delayed = false;
            events.push(Event::LockDelayEnded { path: path.clone() });
            self.hand_off(path, events);
        }
        Reply::LockDelayEnded
    }

    /// Removes `lease_id`'s grant of `path` and announces it. The caller hands off.
    pub(crate) fn release(
        &mut self,
        path: &LockPath,
        lease_id: LeaseId,
        reason: ReleaseReason,
        events: &mut Vec<Event>,
    ) {
        let state = &mut self.state;
        let entry = state.locks.get_mut(path).expect("released path has an entry");
        let index = entry.holders.iter().position(|grant| grant.lease_id == lease_id);
        let grant = entry.holders.remove(index.expect("released lease holds the path"));
        if let Some(lease) = state.leases.get_mut(&lease_id) {
            lease.held.remove(path);
        }
        let who = (grant.lease_id, grant.holder_id.as_str(), grant.mode);
        let kind = WatchEventKind::Released { token: grant.token, reason };
        emit(&mut state.revision, events, path, who, kind);
    }

    /// Removes the waiter at `position` of `path`'s queue and announces it.
    pub(crate) fn dequeue(
        &mut self,
        path: &LockPath,
        position: usize,
        reason: DequeueReason,
        events: &mut Vec<Event>,
    ) -> Waiter {
        let state = &mut self.state;
        let entry = state.locks.get_mut(path).expect("dequeued path has an entry");
        let waiter = entry.waiters.remove(position).expect("waiter position is in the queue");
        if let Some(lease) = state.leases.get_mut(&waiter.lease_id) {
            lease.waiting.remove(path);
        }
        let who = (waiter.lease_id, waiter.holder_id.as_str(), waiter.mode);
        let kind = WatchEventKind::Dequeued { queued_revision: waiter.queued_revision, reason };
        emit(&mut state.revision, events, path, who, kind);
        waiter
    }

    /// Grants the head of `path`'s queue for as long as it is compatible with the
    /// holders, then drops the entry if nothing is left in it.
    pub(crate) fn hand_off(&mut self, path: &LockPath, events: &mut Vec<Event>) {
        let state = &mut self.state;
        let Some(entry) = state.locks.get_mut(path) else {
            return;
        };
        while entry.front_grantable() {
            let waiter = entry.waiters.pop_front().expect("front_grantable implies a waiter");
            let who = (waiter.lease_id, waiter.holder_id.as_str(), waiter.mode);
            let kind = WatchEventKind::Acquired { queued_revision: Some(waiter.queued_revision) };
            let token = emit(&mut state.revision, events, path, who, kind);
            let granted = Reply::Lock(LockOutcome::Granted { token, mode: waiter.mode });
            match state.leases.get_mut(&waiter.lease_id) {
                Some(lease) => {
                    lease.waiting.remove(path);
                    lease.held.insert(path.clone());
                    lease.requests.resolve(waiter.request_id, granted);
                }
                None => assert!(planted(PlantedBug::GrantExpiredWaiter), "a waiter's lease exists"),
            }
            entry.holders.push(Grant {
                lease_id: waiter.lease_id,
                holder_id: waiter.holder_id,
                mode: waiter.mode,
                token,
            });
        }
        if entry.is_vacant() {
            state.locks.remove(path);
        }
    }

    fn check_lock_request(&self, request: &LockRequest) -> Result<(), Rejection> {
        let limits = &self.limits;
        if request.holder_id.len() > limits.holder_id_bytes_max {
            return Err(Rejection::HolderIdTooLong {
                len: request.holder_id.len(),
                max: limits.holder_id_bytes_max,
            });
        }
        if let Some(permits) = request.mode.permits()
            && !(1..=limits.semaphore_permits_max).contains(&permits)
        {
            return Err(Rejection::InvalidPermits { permits, max: limits.semaphore_permits_max });
        }
        if request.wait_timeout_ms > limits.wait_timeout_ms_max {
            return Err(Rejection::WaitTimeoutTooLong {
                wait_timeout_ms: request.wait_timeout_ms,
                max_ms: limits.wait_timeout_ms_max,
            });
        }
        Ok(())
    }

    /// `Ok` if the request is new; otherwise the reply it must get.
    fn seen(
        &self,
        lease_id: LeaseId,
        request_id: RequestId,
        key: &RequestKey,
    ) -> Result<(), Reply> {
        let Some(lease) = self.state.leases.get(&lease_id) else {
            return Err(Reply::Rejected(Rejection::LeaseNotFound { lease_id }));
        };
        match lease.requests.check(request_id, key) {
            Seen::New => Ok(()),
            Seen::Repeat(reply) => Err(reply),
            Seen::Reused { first } => Err(Reply::Rejected(Rejection::RequestIdReused {
                lease_id,
                request_id,
                first: first.to_string(),
            })),
            Seen::TooOld { oldest_kept } => Err(Reply::Rejected(Rejection::RequestIdTooOld {
                lease_id,
                request_id,
                oldest_kept,
            })),
        }
    }

    fn remember(
        &mut self,
        lease_id: LeaseId,
        request_id: RequestId,
        key: RequestKey,
        reply: &Reply,
    ) {
        let capacity = self.limits.request_window_per_lease;
        if let Some(lease) = self.state.leases.get_mut(&lease_id) {
            lease.requests.record(request_id, key, reply, capacity);
        }
    }

    fn decide(&self, request: &LockRequest) -> Decision {
        let lease = &self.state.leases[&request.lease_id];
        let entry = self.state.locks.get(&request.path);
        if let Some(decision) = entry.and_then(|entry| repeat_of_own_lock(entry, request)) {
            return decision;
        }
        if let Some(current) = entry.and_then(LockEntry::any_mode).map(LockMode::permits)
            && current != request.mode.permits()
        {
            return Decision::Answer(Reply::Rejected(Rejection::PermitsMismatch {
                path: request.path.clone(),
                requested: request.mode.permits(),
                current,
            }));
        }
        let limit = |limit: Limit, max: usize| {
            Decision::Answer(Reply::Rejected(Rejection::LimitExceeded { limit, max: max as u64 }))
        };
        if lease.lock_count() >= self.limits.locks_per_lease_max {
            return limit(Limit::LocksPerLease, self.limits.locks_per_lease_max);
        }
        match entry {
            None if self.state.locks.len() >= self.limits.locks_max => {
                limit(Limit::Locks, self.limits.locks_max)
            }
            None => Decision::Grant,
            Some(entry) if entry.grantable_now(request.mode) => Decision::Grant,
            Some(entry) if request.wait_timeout_ms == 0 => Decision::Busy(LockOutcome::Busy {
                holders: entry.holder_views(),
                lock_delay: entry.delayed,
            }),
            Some(entry) if entry.waiters.len() >= self.limits.waiters_per_path_max => {
                limit(Limit::WaitersPerPath, self.limits.waiters_per_path_max)
            }
            Some(_) => Decision::Queue,
        }
    }

    fn grant_now(&mut self, request: &LockRequest, events: &mut Vec<Event>) -> Reply {
        let state = &mut self.state;
        let who = (request.lease_id, request.holder_id.as_str(), request.mode);
        let kind = WatchEventKind::Acquired { queued_revision: None };
        let token = emit(&mut state.revision, events, &request.path, who, kind);
        state.locks.entry(request.path.clone()).or_default().holders.push(Grant {
            lease_id: request.lease_id,
            holder_id: request.holder_id.clone(),
            mode: request.mode,
            token,
        });
        let lease = state.leases.get_mut(&request.lease_id).expect("checked by decide");
        lease.held.insert(request.path.clone());
        Reply::Lock(LockOutcome::Granted { token, mode: request.mode })
    }

    /// The lease already waits at `position`: a try-lock is busy (the wait goes on), a
    /// blocking request takes the wait over with its own id and time-out.
    fn rejoin(&mut self, request: &LockRequest, position: usize, events: &mut Vec<Event>) -> Reply {
        let entry = self.state.locks.get_mut(&request.path).expect("the lease waits here");
        if request.wait_timeout_ms == 0 {
            return Reply::Lock(LockOutcome::Busy {
                holders: entry.holder_views(),
                lock_delay: entry.delayed,
            });
        }
        let waiter = &mut entry.waiters[position];
        waiter.request_id = request.request_id;
        waiter.wait_timeout_ms = request.wait_timeout_ms;
        let queued_revision = waiter.queued_revision;
        events.push(Event::WaitRenewed {
            path: request.path.clone(),
            lease_id: request.lease_id,
            queued_revision,
            wait_timeout_ms: request.wait_timeout_ms,
        });
        Reply::Lock(LockOutcome::Queued { queued_revision, position })
    }

    fn enqueue(&mut self, request: &LockRequest, events: &mut Vec<Event>) -> Reply {
        let state = &mut self.state;
        let who = (request.lease_id, request.holder_id.as_str(), request.mode);
        let kind = WatchEventKind::Queued { wait_timeout_ms: request.wait_timeout_ms };
        let queued_revision = emit(&mut state.revision, events, &request.path, who, kind);
        let entry = state.locks.get_mut(&request.path).expect("queued behind an entry");
        entry.waiters.push_back(Waiter {
            lease_id: request.lease_id,
            holder_id: request.holder_id.clone(),
            mode: request.mode,
            wait_timeout_ms: request.wait_timeout_ms,
            queued_revision,
            request_id: request.request_id,
        });
        let position = entry.waiters.len() - 1;
        let lease = state.leases.get_mut(&request.lease_id).expect("checked by decide");
        lease.waiting.insert(request.path.clone());
        Reply::Lock(LockOutcome::Queued { queued_revision, position })
    }
}

/// The same lease asking again for a path it holds gets the same grant back (never a
/// deadlock with itself); for a path it waits for, its place ([`StateMachine::rejoin`]);
/// in another mode, a refusal.
fn repeat_of_own_lock(entry: &LockEntry, request: &LockRequest) -> Option<Decision> {
    let (held_mode, decision) = if let Some(grant) = entry.holder(request.lease_id) {
        let granted = LockOutcome::Granted { token: grant.token, mode: grant.mode };
        (grant.mode, Decision::Answer(Reply::Lock(granted)))
    } else {
        let position = entry.waiter_position(request.lease_id)?;
        (entry.waiters[position].mode, Decision::Rejoin(position))
    };
    if held_mode != request.mode {
        return Some(Decision::Answer(Reply::Rejected(Rejection::ModeConflict {
            path: request.path.clone(),
            lease_id: request.lease_id,
            held: held_mode,
        })));
    }
    Some(decision)
}
