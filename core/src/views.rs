//! The read side of the state machine: what `GetLock`, `ListLocks`, `ValidateFence`,
//! `TimeToLive` and `List` show, and what a new leader needs to re-arm its timers.

use std::ops::Bound;

use crate::{
    lock::LockEntry,
    machine::StateMachine,
    path::LockPath,
    planted::{PlantedBug, planted},
    reply::HolderView,
    reply::Reply,
    types::{FencingToken, LeaseId, LockMode, RequestId, Revision},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockView {
    pub path: LockPath,
    pub holders: Vec<HolderView>,
    pub waiters: Vec<WaiterView>,
    pub lock_delay: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaiterView {
    pub lease_id: LeaseId,
    pub holder_id: String,
    pub mode: LockMode,
    pub wait_timeout_ms: u64,
    pub queued_revision: Revision,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseView {
    pub lease_id: LeaseId,
    pub ttl_ms: u64,
    /// The last checkpointed remaining TTL, if any.
    pub remaining_ttl_ms: Option<u64>,
    pub held: Vec<LockPath>,
    pub waiting: Vec<LockPath>,
}

/// `ValidateFence`'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceCheck {
    pub valid: bool,
    /// The current holders' tokens, highest first.
    pub current_tokens: Vec<FencingToken>,
}

impl StateMachine {
    /// The revision of the last event (0 before any).
    pub fn revision(&self) -> Revision {
        self.state.revision
    }

    pub fn lock_count(&self) -> usize {
        self.state.locks.len()
    }

    pub fn lease_count(&self) -> usize {
        self.state.leases.len()
    }

    pub fn lock(&self, path: &LockPath) -> Option<LockView> {
        let mut view = self.state.locks.get(path).map(|entry| lock_view(path, entry));
        if planted(PlantedBug::ViewDropsCoHolders)
            && let Some(view) = &mut view
        {
            view.holders.truncate(1);
        }
        view
    }

    /// Up to `limit` locks at or below `prefix`, in path order, after `after`.
    pub fn locks(&self, prefix: &str, after: Option<&LockPath>, limit: usize) -> Vec<LockView> {
        let start = match after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Included(prefix),
        };
        let stem = prefix.strip_suffix('/').unwrap_or(prefix);
        self.state
            .locks
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(path, _)| path.as_str().starts_with(stem))
            .filter(|(path, _)| path.is_under(prefix))
            .take(limit)
            .map(|(path, entry)| lock_view(path, entry))
            .collect()
    }

    pub fn validate_fence(&self, path: &LockPath, token: FencingToken) -> FenceCheck {
        let mut current_tokens: Vec<_> = self
            .state
            .locks
            .get(path)
            .map(|entry| entry.holders.iter().map(|grant| grant.token).collect())
            .unwrap_or_default();
        current_tokens.sort_unstable_by(|a, b| b.cmp(a));
        let mut valid = current_tokens.contains(&token);
        if planted(PlantedBug::FenceAcceptsStale) {
            valid = current_tokens.first().is_some_and(|current| token <= *current);
        }
        FenceCheck { valid, current_tokens }
    }

    pub fn lease(&self, lease_id: LeaseId) -> Option<LeaseView> {
        self.state.leases.get(&lease_id).map(|lease| LeaseView {
            lease_id,
            ttl_ms: lease.ttl_ms,
            remaining_ttl_ms: lease.remaining_ttl_ms,
            held: lease.held.iter().cloned().collect(),
            waiting: lease.waiting.iter().cloned().collect(),
        })
    }

    /// The reply remembered for a lease's request id (a queued request's reply is its
    /// final outcome once the wait ended), if the lease and the id are remembered.
    pub fn remembered_reply(&self, lease_id: LeaseId, request_id: RequestId) -> Option<Reply> {
        self.state.leases.get(&lease_id)?.requests.reply(request_id).cloned()
    }

    /// Up to `limit` leases with ids above `after`, in id order.
    pub fn leases(&self, after: Option<LeaseId>, limit: usize) -> Vec<LeaseView> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.state
            .leases
            .range((start, Bound::Unbounded))
            .take(limit)
            .filter_map(|(id, _)| self.lease(*id))
            .collect()
    }

    /// Every lease with the TTL a new leader must give it: the checkpointed remaining
    /// TTL if there is one, else the full TTL (see [`crate::Lessor::promote`]).
    pub fn lease_ttls(&self) -> impl Iterator<Item = (LeaseId, u64, Option<u64>)> + '_ {
        let leases = self.state.leases.iter();
        leases.map(|(id, lease)| (*id, lease.ttl_ms, lease.remaining_ttl_ms))
    }

    /// Every waiter, for a new leader to arm its wait time-outs.
    pub fn waiters(&self) -> impl Iterator<Item = (&LockPath, WaiterView)> + '_ {
        self.state.locks.iter().flat_map(|(path, entry)| {
            entry.waiters.iter().map(move |waiter| (path, waiter_view(waiter)))
        })
    }

    /// Every path under a lock-delay, for a new leader to arm its ends.
    pub fn delayed_paths(&self) -> impl Iterator<Item = &LockPath> + '_ {
        self.state.locks.iter().filter(|(_, entry)| entry.delayed).map(|(path, _)| path)
    }
}

fn lock_view(path: &LockPath, entry: &LockEntry) -> LockView {
    LockView {
        path: path.clone(),
        holders: entry.holder_views(),
        waiters: entry.waiters.iter().map(waiter_view).collect(),
        lock_delay: entry.delayed,
    }
}

fn waiter_view(waiter: &crate::lock::Waiter) -> WaiterView {
    WaiterView {
        lease_id: waiter.lease_id,
        holder_id: waiter.holder_id.clone(),
        mode: waiter.mode,
        wait_timeout_ms: waiter.wait_timeout_ms,
        queued_revision: waiter.queued_revision,
    }
}
