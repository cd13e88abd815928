//! The client's errors: the server's answer (a status with a machine-readable reason),
//! or no answer at all.

use lockmgr_proto::v1::ErrorReason;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cluster answered with an error.
    #[error("{}: {}", .0.code(), .0.message())]
    Rpc(Status),
    /// No member could be reached (or none had a leader) within the retry budget.
    #[error("no lockmgr member answered ({last})")]
    Unavailable { last: String },
    /// The session's lease expired or was revoked.
    #[error("session lost: lease {0} is gone")]
    SessionLost(i64),
    /// A configuration or argument the client refuses before asking.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The gRPC code, if the cluster answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Rpc(status) => Some(status.code()),
            _ => None,
        }
    }

    /// The server's machine-readable reason, if it gave one.
    pub fn reason(&self) -> Option<ErrorReason> {
        match self {
            Error::Rpc(status) => lockmgr_proto::error_detail(status)
                .and_then(|detail| ErrorReason::try_from(detail.reason).ok()),
            _ => None,
        }
    }
}
