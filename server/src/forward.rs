//! Following the leader: a request that must be served by the leader and reaches a
//! follower is sent on to the leader once (marked, so it never bounces), over a cached
//! channel per leader address. A request already forwarded, or one that finds no
//! leader, gets `UNAVAILABLE` with the leader's address when known.

use std::time::Duration;

use lockmgr_proto::Channels;

use tonic::{
    Request, Status,
    metadata::{MetadataMap, MetadataValue},
    transport::Channel,
};

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
        self.0.get(address).map_err(|e| Status::internal(format!("cannot reach the leader: {e}")))
    }
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
/// with `$client::$method` and returns the leader's answer.
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
                return client.$method($crate::forward::forwarded($request)).await;
            }
            $crate::context::Route::NoLeader => return Err($crate::status::not_leader(None)),
        }
    };
}

pub(crate) use lead_or_forward;
