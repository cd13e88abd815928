//! The wire protocol of lockmgr: package `lockmgr.v1`, generated from
//! `proto/lockmgr/v1/lockmgr.proto` by tonic (or by madsim's tonic under `--cfg madsim`).
//!
//! The server stubs (`v1::*_server`) and the peer transport (`raft`) are behind the
//! `server` feature: a client needs neither.
//!
//! Errors travel as gRPC statuses whose `details` (`grpc-status-details-bin`) hold a
//! `google.rpc.Status`, the gRPC convention every language's rich-error helpers read
//! (`grpc_status.rpc_status.from_call` in Python, `status.FromError(err).Details()` in
//! Go), with the [`v1::ErrorDetail`] as its one `google.protobuf.Any` detail;
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

/// The type URL of an [`v1::ErrorDetail`] packed in a `google.protobuf.Any`.
pub const ERROR_DETAIL_TYPE_URL: &str = "type.googleapis.com/lockmgr.v1.ErrorDetail";

/// `google.rpc.Status` (google/rpc/status.proto), as the gRPC convention puts it in
/// `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// The [`v1::ErrorDetail`] carried by a status from a lockmgr server, if any.
pub fn error_detail(status: &tonic::Status) -> Option<v1::ErrorDetail> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    RpcStatus::decode(details)
        .ok()?
        .details
        .into_iter()
        .find(|any| any.type_url == ERROR_DETAIL_TYPE_URL)
        .and_then(|any| v1::ErrorDetail::decode(any.value.as_slice()).ok())
}

/// A status with `code`, `message` and an [`v1::ErrorDetail`] in its details.
pub fn status_with_detail(
    code: tonic::Code,
    message: impl Into<String>,
    detail: &v1::ErrorDetail,
) -> tonic::Status {
    let message = message.into();
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![ProtoAny {
            type_url: ERROR_DETAIL_TYPE_URL.into(),
            value: detail.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(code, message, details.encode_to_vec().into())
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
        // The details are a google.rpc.Status with the same code and message.
        let rpc = RpcStatus::decode(status.details()).unwrap();
        assert_eq!((rpc.code, rpc.message.as_str()), (9, "stale token"));
    }
}
