//! Following the leader: a request that must be served by the leader and reaches a
//! follower is sent on to the leader once (marked, so it never bounces), over a cached
//! channel per leader address. A request already forwarded, or one that finds no
//! leader, gets `UNAVAILABLE` with the leader's address when known.

use std::time::Duration;

use lockmgr_proto::{
    Channels, status_with_detail,
    v1::{ErrorDetail, ErrorReason},
};
use tonic::{
    Code, Request, Status,
    metadata::{MetadataMap, MetadataValue},
    transport::Channel,
};

use crate::context::Ctx;

const FORWARDED: &str = "lockmgr-forwarded";
/// Request metadata a forwarded request carries on: trace context and the deadline.
const CARRIED: [&str; 3] = ["traceparent", "tracestate", "grpc-timeout"];

/// Channels to leaders, by client address.
#[derive(Debug)]
pub struct Forwarder(Channels);

impl Forwarder {
    pub fn new(connect_timeout: Duration) -> Forwarder {
        Forwarder(Channels::new(connect_timeout))
    }

    pub fn channel(&self, address: &str) -> Result<Channel, Status> {
        self.0.get(address).map_err(|e| {
            let detail = ErrorDetail {
                reason: ErrorReason::NotLeader.into(),
                leader_address: address.to_owned(),
                ..ErrorDetail::default()
            };
            let message = format!("cannot reach the leader at {address}: {e}");
            status_with_detail(Code::Unavailable, message, &detail)
        })
    }
}

/// What the client gets for a status from a call relayed to the leader: the leader's
/// own answer (it carries a detail) as it is; a failure of the link itself (the leader
/// stopped or stepped down mid-call, which tonic's client reports as `INTERNAL`,
/// `UNKNOWN` or `UNAVAILABLE` without detail) as `UNAVAILABLE` with the leader as this
/// node now knows it.
pub fn relayed(ctx: &Ctx, status: Status) -> Status {
    if lockmgr_proto::error_detail(&status).is_some() {
        return status;
    }
    leader_moved(ctx)
}

/// The answer of a call relayed to a leader this member no longer follows.
pub fn leader_moved(ctx: &Ctx) -> Status {
    let leader = ctx.leader_info().filter(|(id, _)| *id != ctx.node_id);
    crate::status::not_leader(leader.as_ref().map(|(id, node)| (*id, node)))
}

pub fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED)
}

/// A copy of `request` for the leader.
pub fn forwarded<T>(request: Request<T>) -> Request<T> {
    let metadata = request.metadata().clone();
    forwarded_with(&metadata, request.into_inner())
}

/// A request for the leader carrying `message`, with what `metadata` must pass on.
pub fn forwarded_with<T>(metadata: &MetadataMap, message: T) -> Request<T> {
    let mut onward = Request::new(message);
    for key in CARRIED {
        if let Some(value) = metadata.get(key) {
            onward.metadata_mut().insert(key, value.clone());
        }
    }
    onward.metadata_mut().insert(FORWARDED, MetadataValue::from_static("1"));
    onward
}

/// Serves the request here if this node leads; otherwise forwards it to the leader
/// with `$client::$method` and returns the leader's answer. A leader that dies, pauses
/// or steps down mid-call is not waited on: once this member learns of another leader
/// (within the proposal time-out) the call ends `UNAVAILABLE` / `NOT_LEADER` naming it,
/// and the client asks it (again with the same request id). The request is never sent
/// twice from here: whether it took effect at the old leader is the caller's to settle
/// (a `Revoke` repeated after it took effect would answer "not found"; found by the
/// simulator).
macro_rules! lead_or_forward {
    ($ctx:expr, $request:ident, $client:ident, $method:ident) => {
        match $ctx.route_waiting().await {
            $crate::context::Route::Here => $request,
            $crate::context::Route::Leader { id, node } => {
                if $crate::forward::is_forwarded(&$request) {
                    return Err($crate::status::not_leader(Some((id, &node))));
                }
                let channel = $ctx.forwarder.channel(&node.client_address)?;
                let limit = $ctx.config.server.grpc_message_bytes_max;
                let mut client = $client::new(channel)
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit);
                let answer = tokio::select! {
                    answer = client.$method($crate::forward::forwarded($request)) => answer,
                    moved = $ctx.leader_changed(id) => {
                        moved?;
                        return Err($crate::forward::leader_moved(&$ctx));
                    }
                };
                return match answer {
                    Ok(response) => Ok(response),
                    // The leader's own answer.
                    Err(status) if lockmgr_proto::error_detail(&status).is_some() => Err(status),
                    // The link failed (the leader stopped or stepped down): name the next
                    // leader once there is one.
                    Err(status) => {
                        let wait = $ctx.config.propose_timeout();
                        match tokio::time::timeout(wait, $ctx.leader_changed(id)).await {
                            Err(_) => Err($crate::forward::relayed(&$ctx, status)),
                            Ok(Err(stopped)) => Err(stopped),
                            Ok(Ok(())) => Err($crate::forward::leader_moved(&$ctx)),
                        }
                    }
                };
            }
            $crate::context::Route::NoLeader => return Err($crate::status::not_leader(None)),
        }
    };
}

pub(crate) use lead_or_forward;
