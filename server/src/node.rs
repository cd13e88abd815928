//! One lockmgr member: opens its disk, starts Raft, bootstraps or joins the cluster, and
//! serves clients and peers until told to stop (or until its storage fails, which stops
//! it rather than risk answering from a state it could not persist).

use std::{collections::BTreeMap, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use lockmgr_core::{Lessor, LessorConfig, Timers};
use lockmgr_io::{Disk, FjallDisk, LogStore, Network, NodeInfo, PeerService, StateMachineStore};
use lockmgr_proto::{
    raft::raft_service_server::RaftServiceServer,
    v1::{
        cluster_service_server::ClusterServiceServer,
        election_service_server::ElectionServiceServer, lease_service_server::LeaseServiceServer,
        lock_service_server::LockServiceServer, watch_service_server::WatchServiceServer,
    },
};
use openraft::{SnapshotPolicy, async_runtime::WatchReceiver};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{error, info};

use crate::{
    clock::Clock,
    config::{ConfigError, ServerConfig},
    context::{Ctx, Raft, SharedCtx},
    driver,
    effects::{ApplyTap, Effects},
    forward::Forwarder,
    metrics::Metrics,
    service::{ClusterApi, ElectionApi, LeaseApi, LockApi, WatchApi},
    watch_hub::WatchHub,
};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the data directory {path}: {source}")]
    Storage { path: String, source: std::io::Error },
    #[error("raft failed to start: {0}")]
    Raft(String),
    #[error("{name} {address:?} is not an IP:PORT socket address")]
    Address { name: &'static str, address: String },
    #[error("cannot serve on {address}: {message}")]
    Serve { address: SocketAddr, message: String },
    #[error("cannot force a new cluster: {0}")]
    ForceNewCluster(String),
    #[error(
        "raft stopped: {0} (the node stops rather than risk serving a state it could not persist)"
    )]
    Fatal(String),
}

fn socket_address(name: &'static str, address: &str) -> Result<SocketAddr, NodeError> {
    address.parse().map_err(|_| NodeError::Address { name, address: address.to_owned() })
}

fn raft_config(config: &ServerConfig) -> Result<Arc<openraft::Config>, NodeError> {
    let raft = &config.raft;
    let openraft_config = openraft::Config {
        cluster_name: format!("lockmgr-{}", config.cluster_id),
        heartbeat_interval: raft.heartbeat_interval_ms,
        election_timeout_min: raft.election_timeout_min_ms,
        election_timeout_max: raft.election_timeout_max_ms,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(raft.snapshot_interval_entries),
        max_in_snapshot_log_to_keep: raft.log_entries_kept_after_snapshot,
        install_snapshot_timeout: 60_000,
        ..openraft::Config::default()
    };
    Ok(Arc::new(openraft_config.validate().map_err(|e| NodeError::Raft(e.to_string()))?))
}

fn effects(
    config: &ServerConfig,
    clock: Clock,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    tap: Option<ApplyTap>,
) -> Effects {
    let lessor = Lessor::new(LessorConfig {
        checkpoint_interval_ms: config.server.lease_checkpoint_interval_ms,
        checkpoint_batch_max: config.limits.checkpoint_batch_max,
        clock_drift_max_ppm: config.server.clock_drift_max_ppm,
        ..LessorConfig::default()
    });
    let hub = WatchHub::new(config.server.watch_history_events, config.server.watch_buffer_events);
    Effects::new(clock, lessor, Timers::default(), hub, wake, metrics).with_tap(tap)
}

/// Opens the production disk under the data directory.
pub fn open_disk(data_dir: &Path) -> Result<Arc<dyn Disk>, NodeError> {
    let dir = data_dir.join("raft");
    let storage_error = |source| NodeError::Storage { path: dir.display().to_string(), source };
    std::fs::create_dir_all(&dir).map_err(storage_error)?;
    Ok(Arc::new(FjallDisk::open(&dir).map_err(storage_error)?))
}

/// Starts Raft on `disk` and bootstraps the cluster if this is its first start.
/// A disk whose fsyncs (synced writes and syncs) are timed into a histogram.
struct MeteredDisk {
    inner: Arc<dyn Disk>,
    fsyncs: prometheus::Histogram,
}

impl MeteredDisk {
    fn timed<T>(&self, fsync: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        let started = tokio::time::Instant::now();
        let result = fsync();
        self.fsyncs.observe(started.elapsed().as_secs_f64());
        result
    }
}

impl Disk for MeteredDisk {
    fn get(&self, space: lockmgr_io::Space, key: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        self.inner.get(space, key)
    }

    fn scan(
        &self,
        space: lockmgr_io::Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> std::io::Result<Vec<lockmgr_io::KeyValue>> {
        self.inner.scan(space, start, end, limit)
    }

    fn last(&self, space: lockmgr_io::Space) -> std::io::Result<Option<lockmgr_io::KeyValue>> {
        self.inner.last(space)
    }

    fn commit(&self, ops: Vec<lockmgr_io::Op>) -> std::io::Result<()> {
        self.timed(|| self.inner.commit(ops))
    }

    fn write(&self, ops: Vec<lockmgr_io::Op>) -> std::io::Result<()> {
        self.inner.write(ops)
    }

    fn sync(&self) -> std::io::Result<()> {
        self.timed(|| self.inner.sync())
    }
}

pub async fn start(config: ServerConfig, disk: Arc<dyn Disk>) -> Result<SharedCtx, NodeError> {
    start_tapped(config, disk, None, Clock::new()).await
}

/// [`start`], showing every applied command to `tap` (the simulator's checkers), with
/// `clock` as the node's clock (the simulator's drifting ones).
pub async fn start_tapped(
    config: ServerConfig,
    disk: Arc<dyn Disk>,
    tap: Option<ApplyTap>,
    clock: Clock,
) -> Result<SharedCtx, NodeError> {
    config.validate()?;
    let wake = Arc::new(Notify::new());
    let settings = &config.metrics;
    let metrics = Arc::new(Metrics::new(settings.path_label_depth, settings.path_label_values_max));
    let disk: Arc<dyn Disk> =
        Arc::new(MeteredDisk { inner: disk, fsyncs: metrics.disk_fsync_duration_seconds.clone() });
    let storage_error =
        |source| NodeError::Storage { path: config.data_dir.display().to_string(), source };
    let store = StateMachineStore::open(
        disk.clone(),
        config.limits.clone(),
        effects(&config, clock, wake.clone(), metrics.clone(), tap),
    )
    .map_err(storage_error)?;
    let traffic_metrics = metrics.clone();
    let traffic = Arc::new(move |peer: u64, sent: usize, received: usize| {
        let peer = peer.to_string();
        traffic_metrics.network_bytes_sent_total.with_label_values(&[&peer]).inc_by(sent as u64);
        traffic_metrics
            .network_bytes_received_total
            .with_label_values(&[&peer])
            .inc_by(received as u64);
    });
    let network = Network::new(Duration::from_millis(config.raft.connect_timeout_ms), traffic);
    let raft: Raft = openraft::Raft::new(
        config.node_id,
        raft_config(&config)?,
        network,
        LogStore::new(disk),
        store.clone(),
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    bootstrap(&config, &raft).await?;
    let (clears_sender, clears) = mpsc::channel(1_024);
    let ctx = Arc::new(Ctx {
        node_id: config.node_id,
        forwarder: Forwarder::new(Duration::from_millis(config.raft.connect_timeout_ms)),
        config,
        raft,
        store,
        clock,
        wake,
        clears: clears_sender,
        watchers: 0.into(),
        metrics,
        shutdown: watch::channel(false).0,
        removed: false.into(),
    });
    tokio::spawn(driver::run(ctx.clone(), clears, ctx.shutdown.subscribe()));
    tokio::spawn(crate::removal::watch(ctx.clone(), ctx.shutdown.subscribe()));
    Ok(ctx)
}

/// This member's addresses, as the others are told them.
pub(crate) fn own_node(config: &ServerConfig) -> NodeInfo {
    NodeInfo {
        peer_address: config.advertised_peer_address().into(),
        client_address: config.advertised_client_address().into(),
    }
}

/// The founding members, as `initial_cluster` names them, or this node alone.
pub(crate) fn founders(config: &ServerConfig) -> Result<BTreeMap<u64, NodeInfo>, NodeError> {
    let members = config.members()?;
    if members.is_empty() {
        return Ok(BTreeMap::from([(config.node_id, own_node(config))]));
    }
    Ok(members
        .into_iter()
        .map(|m| {
            (m.node_id, NodeInfo { peer_address: m.peer_address, client_address: m.client_address })
        })
        .collect())
}

async fn bootstrap(config: &ServerConfig, raft: &Raft) -> Result<(), NodeError> {
    if config.join || raft.is_initialized().await.map_err(|e| NodeError::Raft(e.to_string()))? {
        return Ok(());
    }
    let nodes = founders(config)?;
    info!(members = ?nodes.keys().collect::<Vec<_>>(), "bootstrapping a new cluster");
    match raft.initialize(nodes).await {
        // NotAllowed: another founding member got there first; the membership arrives
        // by replication.
        Ok(())
        | Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => Ok(()),
        Err(e) => Err(NodeError::Raft(e.to_string())),
    }
}

/// Serves clients and peers until `shutdown` completes or Raft fails.
pub async fn serve(
    ctx: SharedCtx,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let config = &ctx.config;
    let client_address = socket_address("client_address", &config.client_address)?;
    let peer_address = socket_address("peer_address", &config.peer_address)?;
    let stopped = ctx.shutdown.subscribe();
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let limit = config.server.grpc_message_bytes_max;
    // Errors raised below the services (decoding, sizes, deadlines) get their detail here.
    #[cfg(not(madsim))]
    let mut clients =
        tonic::transport::Server::builder().layer(crate::grpc_errors::ErrorDetailLayer::new(limit));
    #[cfg(madsim)]
    let mut clients = tonic::transport::Server::builder();
    let clients = clients
        .add_service(
            LockServiceServer::new(LockApi::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            LeaseServiceServer::new(LeaseApi::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            WatchServiceServer::new(WatchApi::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ElectionServiceServer::new(ElectionApi::new(ctx.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            ClusterServiceServer::new(ClusterApi::new(ctx.clone()))
                .max_decoding_message_size(limit),
        );
    #[cfg(not(madsim))]
    let clients = {
        let incoming = crate::connections::incoming(client_address, ctx.metrics.clone())
            .map_err(|e| NodeError::Serve { address: client_address, message: e.to_string() })?;
        clients.serve_with_incoming_shutdown(incoming, until_stopped(stopped.clone()))
    };
    #[cfg(madsim)]
    let clients = clients.serve_with_shutdown(client_address, until_stopped(stopped.clone()));
    let peer_service = PeerService::new(ctx.raft.clone(), config.raft.snapshot_bytes_max);
    let peers = tonic::transport::Server::builder()
        .add_service(RaftServiceServer::new(peer_service).max_decoding_message_size(usize::MAX))
        .serve_with_shutdown(peer_address, until_stopped(stopped.clone()));
    let mut clients = tokio::spawn(clients);
    let mut peers = tokio::spawn(peers);
    let http = spawn_http(&ctx)?;
    info!(node = ctx.node_id, %client_address, %peer_address, data_dir = %config.data_dir.display(), "lockmgr serving");
    let mut metrics = ctx.raft.metrics();
    let fatal = async move {
        loop {
            if let Err(fatal) = &metrics.borrow_watched().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "raft stopped".to_owned();
            }
        }
    };
    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        message = fatal => Err(NodeError::Fatal(message)),
        result = &mut clients => Err(served(client_address, result)),
        result = &mut peers => Err(served(peer_address, result)),
        Some((address, result)) = http => Err(NodeError::Serve { address, message: result }),
    };
    info!(node = ctx.node_id, "lockmgr shutting down");
    let _ = ctx.shutdown.send(true);
    // A clean stop lets requests in flight finish (briefly); a failed one serves nothing more.
    if outcome.is_ok() {
        let drained = async {
            let _ = (&mut clients).await;
            let _ = (&mut peers).await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
    }
    clients.abort();
    peers.abort();
    if let Err(e) = ctx.raft.shutdown().await {
        error!(error = %e, "raft did not shut down cleanly");
    }
    outcome
}

/// Starts the operators' HTTP endpoint, if configured; resolves if it fails.
fn spawn_http(
    ctx: &SharedCtx,
) -> Result<impl std::future::Future<Output = Option<(SocketAddr, String)>>, NodeError> {
    let configured = &ctx.config.metrics.address;
    let address = if configured.is_empty() {
        None
    } else {
        Some(socket_address("metrics.address", configured)?)
    };
    #[cfg(not(madsim))]
    let task =
        address.map(|address| (address, tokio::spawn(crate::http::serve(ctx.clone(), address))));
    // The simulator has no HTTP endpoint (axum runs on the real network only).
    #[cfg(madsim)]
    let task: Option<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> =
        address.and(None);
    Ok(async move {
        match task {
            Some((address, task)) => {
                let message = match task.await {
                    Ok(Ok(())) => return std::future::pending().await,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                Some((address, message))
            }
            None => std::future::pending().await,
        }
    })
}

fn served(
    address: SocketAddr,
    result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> NodeError {
    let message = match result {
        Ok(Ok(())) => "the server stopped".to_owned(),
        Ok(Err(e)) => format!(
            "{e}: {}",
            std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default()
        ),
        Err(e) => e.to_string(),
    };
    NodeError::Serve { address, message }
}
