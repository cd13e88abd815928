//! What every service shares: the Raft node, the replica, the clock, the configuration,
//! and the way to the leader.

use std::sync::{Arc, atomic::AtomicUsize};

use lockmgr_core::LeaseId;
use lockmgr_io::{NodeInfo, StateMachineStore};
use lockmgr_proto::v1::ResponseHeader;
use openraft::{ServerState, async_runtime::WatchReceiver};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::{
    clock::Clock, config::ServerConfig, effects::Effects, forward::Forwarder, metrics::Metrics,
};

pub type Raft = lockmgr_io::Raft<Effects>;
pub type Store = StateMachineStore<Effects>;

pub struct Ctx {
    pub node_id: u64,
    pub config: ServerConfig,
    pub raft: Raft,
    pub store: Store,
    pub clock: Clock,
    pub forwarder: Forwarder,
    /// Wakes the leader's driver.
    pub wake: Arc<Notify>,
    /// Keepalives that must clear a lease checkpoint go through the driver, in order.
    pub clears: mpsc::Sender<ClearRequest>,
    pub watchers: AtomicUsize,
    pub metrics: Arc<Metrics>,
    /// Turns true when the node stops: servers and the driver end.
    pub shutdown: watch::Sender<bool>,
    /// This member learnt that the cluster removed it (`removal.rs`).
    pub removed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

/// A keepalive's request to the leader's driver (`driver.rs`) to clear a lease's
/// checkpoint before the keepalive is acknowledged. It is defined here, with the rest of
/// what the services and the driver share, so the services need not know the driver.
#[derive(Debug)]
pub struct ClearRequest {
    pub lease_id: LeaseId,
    pub done: oneshot::Sender<Result<(), tonic::Status>>,
}

/// Where a request must be served.
#[derive(Debug)]
pub enum Route {
    Here,
    Leader { id: u64, node: NodeInfo },
    NoLeader,
}

impl Ctx {
    /// Times a client request, counts it by method and status code, and traces it as a
    /// child of the caller's span (`parent`, from its `traceparent`).
    pub async fn observe<T>(
        &self,
        method: &str,
        parent: opentelemetry::Context,
        request: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        let (span_name, service) = match method {
            "Lock" | "Unlock" | "GetLock" | "ListLocks" | "ValidateFence" | "LockStream" => {
                ("handle-lock-request", "LockService")
            }
            "Campaign" | "Proclaim" | "Leader" | "Observe" | "Resign" => {
                ("handle-election-request", "ElectionService")
            }
            "Grant" | "KeepAlive" | "Revoke" | "TimeToLive" | "List" => {
                ("handle-lease-request", "LeaseService")
            }
            "Watch" => ("handle-watch-request", "WatchService"),
            _ => ("handle-cluster-request", "ClusterService"),
        };
        let span = tracing::info_span!(
            "request",
            otel.name = span_name,
            otel.kind = "server",
            rpc.service = service,
            rpc.method = method
        );
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent);
        let request = tracing::Instrument::instrument(request, span);
        let started = tokio::time::Instant::now();
        let asks_about_itself = matches!(method, "Status" | "ListMembers");
        let result =
            if self.removed.load(std::sync::atomic::Ordering::Relaxed) && !asks_about_itself {
                Err(crate::status::removed(self.node_id))
            } else {
                request.await
            };
        let status = match &result {
            Ok(_) => "OK".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        let metrics = &self.metrics;
        metrics.client_requests_total.with_label_values(&[method, &status]).inc();
        let seconds = started.elapsed().as_secs_f64();
        metrics.client_request_duration_seconds.with_label_values(&[method]).observe(seconds);
        result
    }

    /// Reads the Raft metrics: never call it while holding them (`borrow_watched`), or a
    /// publisher waiting in between deadlocks both.
    pub fn header(&self, revision: u64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.config.cluster_id,
            node_id: self.node_id,
            revision,
            raft_term: self.raft.metrics().borrow_watched().current_term,
        })
    }

    /// The header with the replica's current revision.
    pub fn current_header(&self) -> Option<ResponseHeader> {
        let revision = self.store.lock().machine.revision();
        self.header(revision)
    }

    /// Whether this node leads, and if not who does.
    pub fn route(&self) -> Route {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id) {
            return Route::Here;
        }
        let Some(leader) = metrics.current_leader else { return Route::NoLeader };
        match metrics.membership_config.membership().get_node(&leader) {
            Some(node) => Route::Leader { id: leader, node: node.clone() },
            None => Route::NoLeader,
        }
    }

    /// [`Ctx::route`], waiting up to the proposal time-out for an election to end.
    pub async fn route_waiting(&self) -> Route {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + self.config.propose_timeout();
        loop {
            let route = self.route();
            if !matches!(route, Route::NoLeader) {
                return route;
            }
            // Time out, or Raft stopped (the channel closed: waiting on it again would spin,
            // found by the simulator).
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !matches!(tokio::time::timeout(wait, metrics.changed()).await, Ok(Ok(()))) {
                return Route::NoLeader;
            }
        }
    }

    /// Resolves once this member no longer takes `leader` for the leader (it learnt of a
    /// newer one, or started an election itself): `Ok`; or once Raft stopped here:
    /// `SHUTTING_DOWN` (its last metrics would name the old leader for ever, and a caller
    /// that went round again would spin; found by the simulator, seed 1). A call relayed
    /// to `leader` ends then rather than wait on a leader that may be dead or paused.
    pub async fn leader_changed(&self, leader: u64) -> Result<(), tonic::Status> {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow_watched().current_leader != Some(leader) {
                return Ok(());
            }
            if metrics.changed().await.is_err() {
                return Err(crate::status::shutting_down());
            }
        }
    }

    pub fn leader_info(&self) -> Option<(u64, NodeInfo)> {
        match self.route() {
            Route::Here => {
                let metrics = self.raft.metrics();
                let metrics = metrics.borrow_watched();
                let node = metrics.membership_config.membership().get_node(&self.node_id).cloned();
                node.map(|node| (self.node_id, node))
            }
            Route::Leader { id, node } => Some((id, node)),
            Route::NoLeader => None,
        }
    }
}

pub type SharedCtx = Arc<Ctx>;

/// The caller's trace context, from the W3C `traceparent` metadata of `request`.
pub fn trace_parent<T>(request: &tonic::Request<T>) -> opentelemetry::Context {
    struct Metadata<'a>(&'a tonic::metadata::MetadataMap);
    impl opentelemetry::propagation::Extractor for Metadata<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0
                .keys()
                .filter_map(|key| match key {
                    tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                    tonic::metadata::KeyRef::Binary(_) => None,
                })
                .collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Metadata(request.metadata()))
    })
}
