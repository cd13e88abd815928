//! What every service shares: the Raft node, the replica, the clock, the configuration,
//! and the way to the leader.

use std::sync::{Arc, atomic::AtomicUsize};

use lockmgr_io::{NodeInfo, StateMachineStore};
use lockmgr_proto::v1::ResponseHeader;
use openraft::{ServerState, async_runtime::WatchReceiver};
use tokio::sync::{Notify, mpsc, watch};

use crate::{
    clock::Clock, config::ServerConfig, driver::ClearRequest, effects::Effects, forward::Forwarder,
    metrics::Metrics,
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
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

/// Where a request must be served.
#[derive(Debug)]
pub enum Route {
    Here,
    Leader { id: u64, node: NodeInfo },
    NoLeader,
}

impl Ctx {
    /// Times a client request and counts it by method and status code.
    pub async fn observe<T>(
        &self,
        method: &str,
        request: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        let started = tokio::time::Instant::now();
        let result = request.await;
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
            if tokio::time::timeout(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                metrics.changed(),
            )
            .await
            .is_err()
            {
                return Route::NoLeader;
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
