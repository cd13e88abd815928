//! The wire protocol of lockmgr: package `lockmgr.v1`, generated from
//! `proto/lockmgr/v1/lockmgr.proto` by tonic (or by madsim's tonic under `--cfg madsim`).
//!
//! The server stubs (`v1::*_server`) and the peer transport (`raft`) are behind the
//! `server` feature: a client needs neither.
//!
//! Errors travel as gRPC statuses whose `details` hold a prost-encoded [`v1::ErrorDetail`];
//! [`error_detail`] reads it back.

/// Generated code for `lockmgr.v1`.
#[allow(
    clippy::pedantic,
    clippy::large_enum_variant,
    clippy::derive_partial_eq_without_eq,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("lockmgr.v1");
}

/// Generated code for `lockmgr.raft.v1`, the peer-to-peer Raft transport.
#[cfg(feature = "server")]
#[allow(clippy::pedantic, missing_debug_implementations)]
pub mod raft {
    tonic::include_proto!("lockmgr.raft.v1");
}

mod channels;

pub use channels::Channels;

use prost::Message as _;

/// The [`v1::ErrorDetail`] carried by a status from a lockmgr server, if any.
pub fn error_detail(status: &tonic::Status) -> Option<v1::ErrorDetail> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    v1::ErrorDetail::decode(details).ok()
}

/// A status with `code`, `message` and an [`v1::ErrorDetail`] in its details.
pub fn status_with_detail(
    code: tonic::Code,
    message: impl Into<String>,
    detail: &v1::ErrorDetail,
) -> tonic::Status {
    tonic::Status::with_details(code, message, detail.encode_to_vec().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_round_trips_through_a_status() {
        let detail = v1::ErrorDetail {
            reason: v1::ErrorReason::StaleToken.into(),
            leader_address: String::new(),
            leader_id: 0,
            limit: 0,
        };
        let status = status_with_detail(tonic::Code::FailedPrecondition, "stale token", &detail);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert_eq!(error_detail(&status), Some(detail));
        assert_eq!(error_detail(&tonic::Status::internal("x")), None);
    }
}
