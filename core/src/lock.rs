//! One path's entry in the lock table: its holders, its FIFO queue of waiters, and
//! whether a lock-delay is in force. The entry only answers questions; the state
//! machine makes the changes, so revisions and events stay in one place.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::{
    planted::{PlantedBug, planted},
    reply::HolderView,
    types::{FencingToken, LeaseId, LockMode, RequestId, Revision},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub lease_id: LeaseId,
    pub holder_id: String,
    pub mode: LockMode,
    pub token: FencingToken,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Waiter {
    pub lease_id: LeaseId,
    pub holder_id: String,
    pub mode: LockMode,
    pub wait_timeout_ms: u64,
    pub queued_revision: Revision,
    pub request_id: RequestId,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockEntry {
    pub holders: Vec<Grant>,
    pub waiters: VecDeque<Waiter>,
    pub delayed: bool,
}

impl LockEntry {
    /// Nothing to remember: the entry can leave the table.
    pub(crate) fn is_vacant(&self) -> bool {
        self.holders.is_empty() && self.waiters.is_empty() && !self.delayed
    }

    pub(crate) fn holder(&self, lease_id: LeaseId) -> Option<&Grant> {
        self.holders.iter().find(|grant| grant.lease_id == lease_id)
    }

    pub(crate) fn waiter_position(&self, lease_id: LeaseId) -> Option<usize> {
        self.waiters.iter().position(|waiter| waiter.lease_id == lease_id)
    }

    /// A new request may be granted at once only if nobody queued before it (FIFO, and
    /// no writer starvation) and it is compatible with every holder.
    pub(crate) fn grantable_now(&self, mode: LockMode) -> bool {
        !self.delayed && self.waiters.is_empty() && self.compatible(mode)
    }

    /// Whether the head of the queue may be granted.
    pub(crate) fn front_grantable(&self) -> bool {
        !self.delayed && self.waiters.front().is_some_and(|waiter| self.compatible(waiter.mode))
    }

    fn compatible(&self, mode: LockMode) -> bool {
        if let (LockMode::Semaphore { permits }, true) =
            (mode, planted(PlantedBug::SemaphoreAdmitsExtra))
        {
            let extra = LockMode::Semaphore { permits: permits.saturating_add(1) };
            return self.holders.iter().all(|grant| grant.mode == mode)
                && extra.compatible_with(self.holders.iter().map(|_| &extra));
        }
        mode.compatible_with(self.holders.iter().map(|grant| &grant.mode))
    }

    /// The mode of any holder or waiter (they all name the same permits), if any.
    pub(crate) fn any_mode(&self) -> Option<LockMode> {
        let holders = self.holders.iter().map(|grant| grant.mode);
        holders.chain(self.waiters.iter().map(|waiter| waiter.mode)).next()
    }

    pub(crate) fn holder_views(&self) -> Vec<HolderView> {
        self.holders
            .iter()
            .map(|grant| HolderView {
                lease_id: grant.lease_id,
                holder_id: grant.holder_id.clone(),
                token: grant.token,
                mode: grant.mode,
            })
            .collect()
    }
}
