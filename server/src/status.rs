//! Every error a client sees: a gRPC status code for its class, a message naming the
//! rule, and an `ErrorDetail` with a machine-readable reason (and the leader's address
//! when the answer is "ask the leader").

use lockmgr_core::{Limit, PathError, Rejection};
use lockmgr_io::NodeInfo;
use lockmgr_proto::{
    status_with_detail,
    v1::{ErrorDetail, ErrorReason},
};
use tonic::{Code, Status};

pub fn error(code: Code, reason: ErrorReason, message: impl Into<String>) -> Status {
    let detail = ErrorDetail { reason: reason.into(), ..ErrorDetail::default() };
    status_with_detail(code, message, &detail)
}

pub fn invalid(reason: ErrorReason, message: impl Into<String>) -> Status {
    error(Code::InvalidArgument, reason, message)
}

pub fn invalid_path(error: &PathError) -> Status {
    invalid(ErrorReason::InvalidPath, error.to_string())
}

/// `UNAVAILABLE`, with the leader's address if known.
pub fn not_leader(leader: Option<(u64, &NodeInfo)>) -> Status {
    let (reason, message) = match leader {
        Some((id, node)) => (
            ErrorReason::NotLeader,
            format!("this node is not the leader; node {id} at {} is", node.client_address),
        ),
        None => {
            (ErrorReason::NoLeader, "no leader is known (election in progress or no quorum)".into())
        }
    };
    let detail = ErrorDetail {
        reason: reason.into(),
        leader_address: leader.map(|(_, node)| node.client_address.clone()).unwrap_or_default(),
        leader_id: leader.map_or(0, |(id, _)| id),
        limit: 0,
    };
    status_with_detail(Code::Unavailable, message, &detail)
}

/// Every request to a member the cluster removed.
pub fn removed(node_id: u64) -> Status {
    error(
        Code::Unavailable,
        ErrorReason::MemberRemoved,
        format!("node {node_id} was removed from the cluster: ask another member"),
    )
}

pub fn shutting_down() -> Status {
    error(Code::Unavailable, ErrorReason::ShuttingDown, "this node is shutting down")
}

pub fn internal(message: impl std::fmt::Display) -> Status {
    error(Code::Internal, ErrorReason::Internal, message.to_string())
}

/// The status for a state machine's refusal.
pub fn rejection(rejection: &Rejection) -> Status {
    let message = rejection.to_string();
    match rejection {
        Rejection::LeaseNotFound { .. } => {
            error(Code::NotFound, ErrorReason::LeaseNotFound, message)
        }
        Rejection::LockNotHeld { .. } => error(Code::NotFound, ErrorReason::LockNotHeld, message),
        Rejection::StaleToken { .. } => {
            error(Code::FailedPrecondition, ErrorReason::StaleToken, message)
        }
        Rejection::ModeConflict { .. } => {
            error(Code::FailedPrecondition, ErrorReason::ModeConflict, message)
        }
        Rejection::RequestIdTooOld { .. } => {
            error(Code::FailedPrecondition, ErrorReason::RequestIdTooOld, message)
        }
        Rejection::LimitExceeded { limit, max } => {
            let reason = match limit {
                Limit::Locks => ErrorReason::TooManyLocks,
                Limit::WaitersPerPath => ErrorReason::TooManyWaiters,
                Limit::Leases => ErrorReason::TooManyLeases,
                Limit::LocksPerLease => ErrorReason::TooManyLocksPerLease,
            };
            let detail =
                ErrorDetail { reason: reason.into(), limit: *max, ..ErrorDetail::default() };
            status_with_detail(Code::ResourceExhausted, message, &detail)
        }
        Rejection::HolderIdTooLong { .. } => invalid(ErrorReason::InvalidHolderId, message),
        Rejection::WaitTimeoutTooLong { .. } => invalid(ErrorReason::InvalidWaitTimeout, message),
        Rejection::WaitTimedOut { .. } => {
            error(Code::DeadlineExceeded, ErrorReason::WaitTimeout, message)
        }
        Rejection::WaitCancelled { .. } => {
            error(Code::Aborted, ErrorReason::WaitAbandoned, message)
        }
        Rejection::RequestIdReused { .. } => invalid(ErrorReason::RequestIdReused, message),
        Rejection::InvalidPermits { .. } => invalid(ErrorReason::InvalidPermits, message),
        Rejection::PermitsMismatch { .. } => {
            error(Code::FailedPrecondition, ErrorReason::PermitsMismatch, message)
        }
        _ => internal(message),
    }
}
