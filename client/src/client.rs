//! Connections to the cluster: one lazily connected channel per member, a preferred
//! member (the last known leader), and a retry loop that follows the leader hint of an
//! `UNAVAILABLE` answer or moves on to the next member, within a time budget.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use lockmgr_proto::{
    Channels, error_detail,
    v1::{
        self, cluster_service_client::ClusterServiceClient,
        lease_service_client::LeaseServiceClient, lock_service_client::LockServiceClient,
        watch_service_client::WatchServiceClient,
    },
};
use tonic::{Code, Status, Streaming, transport::Channel};

use crate::error::Error;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Client addresses (`host:port`) of some members; one is enough.
    pub endpoints: Vec<String>,
    pub connect_timeout: Duration,
    /// How long one attempt waits for its answer before the request is sent to another
    /// member (same request id): a member that is paused, or a leader that died with the
    /// connection open, costs this much, not the whole retry budget. A blocking `Lock`
    /// waits its wait time-out plus 10 s instead.
    pub attempt_timeout: Duration,
    /// How long a request keeps retrying on other members before giving up.
    pub retry_budget: Duration,
    /// How long a request keeps retrying while no member answers at all (every attempt
    /// fails to connect or breaks off), if shorter than the retry budget: a command-line
    /// call to a dead cluster fails in seconds. `None`: the whole retry budget.
    pub unreachable_budget: Option<Duration>,
    /// Identity shown to operators as the holder of this client's locks.
    pub holder_id: String,
}

impl ClientConfig {
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(15),
            unreachable_budget: None,
            holder_id: default_holder_id(),
        }
    }
}

fn default_holder_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// A handle on the cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    channels: Channels,
    /// Index into the endpoints, or an address learnt from a leader hint.
    preferred: Mutex<String>,
}

const PAUSE_MIN: Duration = Duration::from_millis(25);
const PAUSE_MAX: Duration = Duration::from_millis(500);
/// Membership changes wait for replication to a new member: their attempts get this long.
const MEMBERSHIP_PATIENCE: Duration = Duration::from_mins(2);

impl Client {
    /// A client for the members in `config`; no connection is made until the first call.
    /// Endpoints are `host:port`, also written `http://host:port`.
    pub fn new(mut config: ClientConfig) -> Result<Client, Error> {
        config.endpoints =
            config.endpoints.iter().map(|e| endpoint_address(e)).collect::<Result<_, _>>()?;
        let first = config
            .endpoints
            .first()
            .cloned()
            .ok_or_else(|| Error::Invalid("no endpoints given".into()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                channels: Channels::new(config.connect_timeout),
                config,
                preferred: Mutex::new(first),
            }),
        })
    }

    /// A client whose cluster answered, sending to the leader from the start (a follower
    /// forwards what it is sent to the leader: one more hop per request).
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        let client = Client::new(config)?;
        client.follow_leader().await?;
        Ok(client)
    }

    /// Asks the cluster who leads and sends to that member from now on (leader hints in
    /// errors keep it current after a leader change).
    pub async fn follow_leader(&self) -> Result<(), Error> {
        let members = self.members().await?.members;
        if let Some(leader) = members.iter().find(|member| member.is_leader) {
            self.prefer(leader.client_address.clone());
        }
        Ok(())
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn channel(&self, address: &str) -> Result<Channel, Error> {
        self.inner.channels.get(address).map_err(Error::Invalid)
    }

    fn preferred(&self) -> String {
        self.inner.preferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn prefer(&self, address: String) {
        *self.inner.preferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = address;
    }

    /// The member after `address` in the configured list.
    fn next_after(&self, address: &str) -> String {
        let endpoints = &self.inner.config.endpoints;
        let at = endpoints.iter().position(|e| e == address);
        let next = at.map_or(0, |at| (at + 1) % endpoints.len());
        endpoints[next].clone()
    }

    /// Runs `call` against the preferred member, following leader hints and moving on
    /// from members that do not answer, until it succeeds, fails for good, or the retry
    /// budget is spent. `call` must be safe to repeat (requests carry request ids).
    pub(crate) async fn retrying<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.retrying_within(self.inner.config.attempt_timeout, call).await
    }

    /// [`Client::retrying`], each attempt given `patience` for its answer.
    pub(crate) async fn retrying_within<T, F, Fut>(
        &self,
        patience: Duration,
        mut call: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.inner.config.retry_budget;
        // Since when no member has answered (a server's answer carries an error detail).
        let mut unanswered_since = tokio::time::Instant::now();
        let mut pause = PAUSE_MIN;
        loop {
            let address = self.preferred();
            let attempt = tokio::time::timeout(patience, call(self.channel(&address)?)).await;
            let status = match attempt {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(status)) => status,
                Err(_) => Status::unavailable(format!("no answer within {patience:?}")),
            };
            if !retryable(&status) {
                return Err(Error::Rpc(status));
            }
            if error_detail(&status).is_some() {
                unanswered_since = tokio::time::Instant::now();
            } else if self.inner.config.unreachable_budget.is_some_and(|budget| {
                tokio::time::Instant::now() + pause >= unanswered_since + budget
            }) {
                return Err(Error::Unavailable {
                    last: format!("{address}: {}", describe(&status)),
                });
            }
            let hint = error_detail(&status).map(|d| d.leader_address).filter(|a| !a.is_empty());
            match hint {
                Some(leader) if leader != address => self.prefer(leader),
                _ => self.prefer(self.next_after(&address)),
            }
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(Error::Unavailable {
                    last: format!("{address}: {}", describe(&status)),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(PAUSE_MAX);
        }
    }

    pub(crate) fn lock_service(channel: Channel) -> LockServiceClient<Channel> {
        LockServiceClient::new(channel)
    }

    pub(crate) fn lease_service(channel: Channel) -> LeaseServiceClient<Channel> {
        LeaseServiceClient::new(channel)
    }

    pub async fn grant_lease(&self, ttl: Duration) -> Result<v1::LeaseGrantResponse, Error> {
        let request = v1::LeaseGrantRequest { ttl_ms: ttl.as_millis() as i64 };
        self.retrying(
            |c| async move { Ok(Self::lease_service(c).grant(request).await?.into_inner()) },
        )
        .await
    }

    pub async fn revoke_lease(&self, lease_id: i64) -> Result<v1::LeaseRevokeResponse, Error> {
        self.retrying(|c| async move {
            Ok(Self::lease_service(c)
                .revoke(v1::LeaseRevokeRequest { lease_id })
                .await?
                .into_inner())
        })
        .await
    }

    pub async fn time_to_live(&self, lease_id: i64) -> Result<v1::LeaseTimeToLiveResponse, Error> {
        self.retrying(|c| async move {
            let request = v1::LeaseTimeToLiveRequest { lease_id };
            Ok(Self::lease_service(c).time_to_live(request).await?.into_inner())
        })
        .await
    }

    pub async fn leases(
        &self,
        after_lease_id: i64,
        limit: u32,
    ) -> Result<v1::LeaseListResponse, Error> {
        self.retrying(|c| async move {
            let request = v1::LeaseListRequest { limit, after_lease_id };
            Ok(Self::lease_service(c).list(request).await?.into_inner())
        })
        .await
    }

    /// Renews `lease_id` once (a keepalive stream of one ping): its TTL from now, 0 if the
    /// lease is gone. For a lease the caller did not open a session on (`lockmgr lease
    /// keep-alive`); a [`crate::Session`] keeps its own lease alive.
    pub async fn renew_lease(&self, lease_id: i64) -> Result<i64, Error> {
        self.retrying(|c| async move {
            let ping = tokio_stream::once(v1::LeaseKeepAliveRequest { lease_id });
            let mut answers = Self::lease_service(c).keep_alive(ping).await?.into_inner();
            match answers.message().await? {
                Some(answer) => Ok(answer.ttl_ms),
                None => Err(Status::unavailable("the keepalive stream closed unanswered")),
            }
        })
        .await
    }

    /// One `Lock` call, retried as is (same request id) until answered.
    pub async fn lock(&self, request: v1::LockRequest) -> Result<v1::LockResponse, Error> {
        let patience = self.waiting_patience(request.wait_timeout_ms);
        self.retrying_within(patience, |c| {
            let mut request = traced(tonic::Request::new(request.clone()));
            if request.get_ref().wait_timeout_ms > 0 {
                request.set_timeout(patience);
            }
            async move { Ok(Self::lock_service(c).lock(request).await?.into_inner()) }
        })
        .await
    }

    /// Patience for a call that waits in a queue up to `wait_timeout_ms`: the server
    /// answers by then (plus a grace); past a day the deadline only guards against a
    /// silent connection.
    pub(crate) fn waiting_patience(&self, wait_timeout_ms: u64) -> Duration {
        if wait_timeout_ms == 0 {
            return self.inner.config.attempt_timeout;
        }
        Duration::from_millis(wait_timeout_ms).min(Duration::from_hours(24))
            + Duration::from_secs(10)
    }

    pub async fn unlock(&self, request: v1::UnlockRequest) -> Result<v1::UnlockResponse, Error> {
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(Self::lock_service(c).unlock(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn get_lock(&self, path: &str) -> Result<v1::GetLockResponse, Error> {
        let request = v1::GetLockRequest { path: path.into(), consistency: 0 };
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(Self::lock_service(c).get_lock(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn list_locks(
        &self,
        prefix: &str,
        page_token: &str,
        limit: u32,
    ) -> Result<v1::ListLocksResponse, Error> {
        let request = v1::ListLocksRequest {
            prefix: prefix.into(),
            limit,
            page_token: page_token.into(),
            consistency: 0,
        };
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(Self::lock_service(c).list_locks(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn validate_fence(
        &self,
        path: &str,
        fencing_token: u64,
    ) -> Result<v1::ValidateFenceResponse, Error> {
        let request = v1::ValidateFenceRequest { path: path.into(), fencing_token, consistency: 0 };
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(Self::lock_service(c).validate_fence(request).await?.into_inner()) }
        })
        .await
    }

    /// Streams the events of `path` (or of everything under it, with `prefix`), from
    /// `start_revision` (0: from now).
    pub async fn watch(
        &self,
        path: &str,
        prefix: bool,
        start_revision: u64,
    ) -> Result<Streaming<v1::WatchResponse>, Error> {
        let request = v1::WatchRequest { path: path.into(), prefix, start_revision };
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(WatchServiceClient::new(c).watch(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn status(&self) -> Result<v1::StatusResponse, Error> {
        self.retrying(|c| async move {
            Ok(ClusterServiceClient::new(c).status(v1::StatusRequest {}).await?.into_inner())
        })
        .await
    }

    pub async fn members(&self) -> Result<v1::ListMembersResponse, Error> {
        self.retrying(|c| async move {
            Ok(ClusterServiceClient::new(c)
                .list_members(v1::ListMembersRequest {})
                .await?
                .into_inner())
        })
        .await
    }

    pub async fn add_member(
        &self,
        request: v1::AddMemberRequest,
    ) -> Result<v1::AddMemberResponse, Error> {
        // The leader answers once the new member caught up (or its time-out passed).
        self.retrying_within(MEMBERSHIP_PATIENCE, |c| {
            let request = request.clone();
            async move { Ok(ClusterServiceClient::new(c).add_member(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn remove_member(&self, node_id: u64) -> Result<v1::RemoveMemberResponse, Error> {
        self.retrying_within(MEMBERSHIP_PATIENCE, |c| async move {
            Ok(ClusterServiceClient::new(c)
                .remove_member(v1::RemoveMemberRequest { node_id })
                .await?
                .into_inner())
        })
        .await
    }

    pub async fn transfer_leader(
        &self,
        target_node_id: u64,
    ) -> Result<v1::TransferLeaderResponse, Error> {
        self.retrying_within(MEMBERSHIP_PATIENCE, |c| async move {
            let request = v1::TransferLeaderRequest { target_node_id };
            Ok(ClusterServiceClient::new(c).transfer_leader(request).await?.into_inner())
        })
        .await
    }

    /// A backup file of the cluster's whole state, from the leader: every write
    /// acknowledged before the call is in it. A stream broken off is asked for again.
    pub async fn save_snapshot(&self) -> Result<Vec<u8>, Error> {
        self.retrying_within(MEMBERSHIP_PATIENCE, |c| async move {
            let mut stream = ClusterServiceClient::new(c)
                .save_snapshot(v1::SaveSnapshotRequest {})
                .await?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(message) = stream.message().await? {
                bytes.extend_from_slice(&message.chunk);
                if message.remaining_bytes == 0 {
                    return Ok(bytes);
                }
            }
            Err(Status::unavailable("the backup stream ended before its last message"))
        })
        .await
    }

    /// Moves on from `address`, which did not answer in time: the next member is asked.
    pub(crate) fn skip(&self, address: &str) {
        if self.preferred() == address {
            self.prefer(self.next_after(address));
        }
    }

    /// A keepalive stream on the preferred member (the leader, once known), and that
    /// member's address.
    pub(crate) async fn open_keepalive(
        &self,
        pings: tokio_stream::wrappers::ReceiverStream<v1::LeaseKeepAliveRequest>,
    ) -> Result<(Streaming<v1::LeaseKeepAliveResponse>, String), Status> {
        let address = self.preferred();
        let channel = self.channel(&address).map_err(|e| Status::internal(e.to_string()))?;
        match Self::lease_service(channel).keep_alive(pings).await {
            Ok(responses) => Ok((responses.into_inner(), address)),
            Err(status) => {
                let hint =
                    error_detail(&status).map(|d| d.leader_address).filter(|a| !a.is_empty());
                self.prefer(hint.unwrap_or_else(|| self.next_after(&address)));
                Err(status)
            }
        }
    }
}

/// `request` with the current span's W3C trace context (`traceparent`), if any (with the
/// `otel` feature; without it a request carries no trace context).
#[cfg(not(feature = "otel"))]
pub(crate) fn traced<T>(request: tonic::Request<T>) -> tonic::Request<T> {
    request
}

/// `request` with the current span's W3C trace context (`traceparent`), if any.
#[cfg(feature = "otel")]
pub(crate) fn traced<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);
    impl opentelemetry::propagation::Injector for Metadata<'_> {
        fn set(&mut self, key: &str, value: String) {
            let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
            if let (Ok(key), Ok(value)) = (key, value.parse()) {
                self.0.insert(key, value);
            }
        }
    }
    let context = tracing_opentelemetry::OpenTelemetrySpanExt::context(&tracing::Span::current());
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Metadata(request.metadata_mut()));
    });
    request
}

/// `host:port` from an endpoint written `host:port` or `http://host:port[/]`.
fn endpoint_address(endpoint: &str) -> Result<String, Error> {
    if endpoint.starts_with("https://") {
        return Err(Error::Invalid(format!(
            "endpoint {endpoint:?}: lockmgr serves plain gRPC (no TLS); use http:// or host:port"
        )));
    }
    let address = endpoint.strip_prefix("http://").unwrap_or(endpoint).trim_end_matches('/');
    if address.is_empty() || address.contains('/') {
        return Err(Error::Invalid(format!("endpoint {endpoint:?} is not host:port")));
    }
    Ok(address.to_owned())
}

/// A status's message with its causes: tonic's "tcp connect error" alone hides whether
/// the connection was refused, timed out or the name did not resolve.
fn describe(status: &Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => format!("{} ({io})", io.kind()),
            None => cause.to_string(),
        };
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Worth asking again (maybe elsewhere): the member is down, not the leader, or busy.
fn retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Unknown)
        || (status.code() == Code::Cancelled && error_detail(status).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_port_also_written_as_http_urls() {
        assert_eq!(endpoint_address("127.0.0.1:7070").unwrap(), "127.0.0.1:7070");
        assert_eq!(endpoint_address("http://127.0.0.1:7070").unwrap(), "127.0.0.1:7070");
        assert_eq!(endpoint_address("http://db-1:7070/").unwrap(), "db-1:7070");
        assert!(
            endpoint_address("https://127.0.0.1:7070").is_err(),
            "no TLS: refused, not downgraded"
        );
        assert!(endpoint_address("http://").is_err());
        assert!(endpoint_address("http://host:1/path").is_err());
    }

    #[test]
    fn a_client_keeps_the_normalized_endpoints() {
        let client = Client::new(ClientConfig::new(["http://127.0.0.1:1", "127.0.0.1:2"])).unwrap();
        assert_eq!(client.config().endpoints, ["127.0.0.1:1", "127.0.0.1:2"]);
    }
}
