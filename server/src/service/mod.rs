//! The public gRPC services, and the conversions between core's types and the wire's.

mod cluster;
mod election;
mod lease;
mod lock;
mod lock_stream;
mod watch;

pub use cluster::ClusterApi;
pub use election::ElectionApi;
pub use lease::LeaseApi;
pub use lock::LockApi;
pub use watch::WatchApi;

use lockmgr_core::{
    DequeueReason, HolderView, LockMode, LockPath, ReleaseReason, WatchEvent, WatchEventKind,
};
use lockmgr_proto::v1;
use openraft::ReadPolicy;
use tonic::Status;

use crate::{context::Ctx, status};

/// A request's mode and permits: `permits` > 0 asks for a semaphore (mode SEMAPHORE or
/// UNSPECIFIED), 0 for a lock.
pub fn mode_from_wire(mode: i32, permits: u32, permits_max: u32) -> Result<LockMode, Status> {
    let invalid_permits = |rule: &str| {
        Err(status::invalid(v1::ErrorReason::InvalidPermits, format!("permits {permits}: {rule}")))
    };
    match (v1::LockMode::try_from(mode), permits) {
        (Ok(v1::LockMode::Unspecified | v1::LockMode::Exclusive), 0) => Ok(LockMode::Exclusive),
        (Ok(v1::LockMode::Shared), 0) => Ok(LockMode::Shared),
        (Ok(v1::LockMode::Semaphore), 0) => {
            invalid_permits(&format!("mode SEMAPHORE needs 1 to {permits_max} permits"))
        }
        (Ok(v1::LockMode::Unspecified | v1::LockMode::Semaphore), permits) => {
            if permits > permits_max {
                return invalid_permits(&format!(
                    "a semaphore has at most {permits_max} permits (semaphore_permits_max)"
                ));
            }
            Ok(LockMode::Semaphore { permits })
        }
        (Ok(v1::LockMode::Exclusive | v1::LockMode::Shared), _) => invalid_permits(
            "permits ask for a semaphore: send mode SEMAPHORE (3) or leave the mode unset",
        ),
        (Err(_), _) => Err(status::invalid(
            v1::ErrorReason::InvalidMode,
            format!("lock mode {mode} is not EXCLUSIVE (1), SHARED (2) or SEMAPHORE (3)"),
        )),
    }
}

pub fn mode_to_wire(mode: LockMode) -> i32 {
    match mode {
        LockMode::Exclusive => v1::LockMode::Exclusive.into(),
        LockMode::Shared => v1::LockMode::Shared.into(),
        LockMode::Semaphore { .. } => v1::LockMode::Semaphore.into(),
    }
}

/// A mode's permits on the wire (0 for a lock).
pub fn permits_to_wire(mode: LockMode) -> u32 {
    mode.permits().unwrap_or(0)
}

pub fn parse_path(ctx: &Ctx, path: &str) -> Result<LockPath, Status> {
    LockPath::parse(path, ctx.config.limits.path_rules()).map_err(|e| status::invalid_path(&e))
}

pub fn holder_to_wire(holder: &HolderView, held_ms: u64) -> v1::Holder {
    v1::Holder {
        lease_id: holder.lease_id.0,
        holder_id: holder.holder_id.clone(),
        fencing_token: holder.token,
        mode: mode_to_wire(holder.mode),
        held_ms,
        permits: permits_to_wire(holder.mode),
    }
}

pub fn event_to_wire(event: &WatchEvent) -> v1::Event {
    let (kind, fencing_token, reason) = match event.kind {
        WatchEventKind::Acquired { .. } => (v1::EventKind::Acquired, event.revision, None),
        WatchEventKind::Released { token, reason } => {
            let reason = match reason {
                ReleaseReason::Released => v1::ReleaseReason::Released,
                ReleaseReason::Revoked => v1::ReleaseReason::Revoked,
                ReleaseReason::Expired => v1::ReleaseReason::Expired,
            };
            (v1::EventKind::Released, token, Some(reason))
        }
        WatchEventKind::Queued { .. } => (v1::EventKind::Queued, 0, None),
        WatchEventKind::Proclaimed { token } => (v1::EventKind::Proclaimed, token, None),
        WatchEventKind::Dequeued { reason, .. } => {
            (v1::EventKind::Dequeued, 0, Some(dequeue_reason(reason)))
        }
    };
    v1::Event {
        revision: event.revision,
        kind: kind.into(),
        path: event.path.to_string(),
        lease_id: event.lease_id.0,
        holder_id: event.holder_id.clone(),
        mode: mode_to_wire(event.mode),
        fencing_token,
        reason: reason.unwrap_or(v1::ReleaseReason::Unspecified).into(),
        permits: permits_to_wire(event.mode),
    }
}

fn dequeue_reason(reason: DequeueReason) -> v1::ReleaseReason {
    match reason {
        DequeueReason::WaitTimeout => v1::ReleaseReason::WaitTimeout,
        DequeueReason::Cancelled => v1::ReleaseReason::Cancelled,
        DequeueReason::Revoked => v1::ReleaseReason::Revoked,
        DequeueReason::Expired => v1::ReleaseReason::Expired,
    }
}

/// Waits until a read on this node is linearizable (read-index through the leader).
pub async fn read_barrier(ctx: &Ctx) -> Result<(), Status> {
    match ctx.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        Ok(_) => Ok(()),
        Err(_) => Err(status::not_leader(ctx.leader_info().as_ref().map(|(id, node)| (*id, node)))),
    }
}

/// A linearizable read is served by the leader; a serializable one by any node. An
/// unknown value is refused, as an unknown lock mode is, never guessed at.
pub fn wants_linearizable(consistency: i32) -> Result<bool, Status> {
    match v1::ReadConsistency::try_from(consistency) {
        Ok(v1::ReadConsistency::Linearizable) => Ok(true),
        Ok(v1::ReadConsistency::Serializable) => Ok(false),
        Err(_) => Err(status::invalid(
            v1::ErrorReason::InvalidArgument,
            format!("consistency {consistency} is not LINEARIZABLE (0) or SERIALIZABLE (1)"),
        )),
    }
}
