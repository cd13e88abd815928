//! The simulated cluster: one madsim node per member running the real server (Raft, gRPC,
//! lessor, driver) on its [`SimDisk`], plus a client node that is never killed (a task on
//! a killed node dies with it). Member `i` is `10.0.0.i`, clients on 7070, peers on 7071.
//! The machine in slot `i` first runs node `i`; a replacement runs `i + 10`, then `i + 20`...

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use lockmgr_server::{ServerConfig, clock::Clock, effects::ApplyTap};
use madsim::runtime::{Handle, NodeHandle};
use openraft::async_runtime::WatchReceiver;

use crate::{disk::SimDisk, observe::Observer, plan::Plan};

pub const CLIENT_PORT: u16 = 7070;

pub struct SimNode {
    /// The Raft node id the machine runs now (it changes when the machine is replaced).
    id: Arc<AtomicU64>,
    pub handle: NodeHandle,
    pub disk: Arc<SimDisk>,
    pub client_address: String,
}

impl SimNode {
    pub fn id(&self) -> u64 {
        self.id.load(Ordering::SeqCst)
    }

    /// The machine will run `id` from its next start.
    pub fn replace_id(&self, id: u64) {
        self.id.store(id, Ordering::SeqCst);
    }
}

pub struct Cluster {
    pub nodes: Vec<SimNode>,
    pub client: NodeHandle,
}

/// How far apart the node ids of one slot's machines are.
pub const REPLACEMENT_STEP: u64 = 10;

/// The slot (1..=5) a node id runs in.
pub fn slot(node: u64) -> u64 {
    (node - 1) % REPLACEMENT_STEP + 1
}

fn ip(node: u64) -> IpAddr {
    format!("10.0.0.{}", slot(node)).parse().expect("a valid address")
}

pub fn peer_address(node: u64) -> String {
    format!("{}:7071", ip(node))
}

pub fn client_address(node: u64) -> String {
    format!("{}:{CLIENT_PORT}", ip(node))
}

/// A founding member's configuration, or a replacement's (which joins).
fn config(plan: &Plan, node: u64) -> ServerConfig {
    let founder = node <= plan.options.nodes as u64;
    let members = (1..=plan.options.nodes as u64)
        .filter(|_| founder)
        .map(|id| format!("{id}={}/{}", peer_address(id), client_address(id)))
        .collect();
    let mut config = ServerConfig {
        node_id: node,
        client_address: client_address(node),
        peer_address: peer_address(node),
        initial_cluster: members,
        join: !founder,
        ..ServerConfig::default()
    };
    config.metrics.address = String::new();
    config.raft.snapshot_interval_entries = plan.snapshot_interval_entries;
    config.raft.log_entries_kept_after_snapshot = plan.log_entries_kept_after_snapshot;
    config.server.clock_drift_max_ppm = plan.clock_drift_ppm;
    config.limits.lock_delay_ms = plan.lock_delay_ms;
    // Below the nemesis's 10 s patience with an `AddMember`.
    config.server.member_catch_up_timeout_ms = 8_000;
    config
}

/// One life of a member: start, serve until killed or until its disk fails.
async fn run_member(config: ServerConfig, disk: Arc<SimDisk>, observer: Observer) {
    let node = config.node_id;
    let incarnation = observer.node_started(node);
    let tap_observer = observer.clone();
    let tap: ApplyTap = Arc::new(move |index, command, applied| {
        tap_observer.applied(node, incarnation, index, command, applied);
    });
    // Each life's clock drifts its own way, within the bound the servers absorb.
    let bound = config.server.clock_drift_max_ppm;
    let drift_ppm = (madsim::rand::random::<u64>() % (2 * bound + 1)) as i64 - bound as i64;
    observer.note(format!("node {node} starts, its clock {drift_ppm:+} ppm"));
    let clock = Clock::drifting(drift_ppm);
    let ctx = match lockmgr_server::start_tapped(config, disk, Some(tap), clock).await {
        Ok(ctx) => ctx,
        Err(e) => return observer.node_stopped(node, e.to_string()),
    };
    let mut metrics = ctx.raft.metrics();
    let metrics_observer = observer.clone();
    tokio::spawn(async move {
        loop {
            let now = metrics.borrow_watched().clone();
            metrics_observer.raft_metrics(node, incarnation, &now);
            if metrics.changed().await.is_err() {
                break;
            }
        }
    });
    let outcome = lockmgr_server::serve(ctx, std::future::pending()).await;
    observer.node_stopped(node, format!("{outcome:?}"));
}

impl Cluster {
    pub fn start(handle: &Handle, plan: &Plan, observer: &Observer) -> Cluster {
        let nodes = (1..=plan.options.nodes as u64)
            .map(|slot| {
                let disk = Arc::new(SimDisk::new(plan.options.seed.wrapping_add(slot), plan.disk));
                let id = Arc::new(AtomicU64::new(slot));
                let (member_disk, member_id, observer) =
                    (disk.clone(), id.clone(), observer.clone());
                let plan = plan.clone();
                let node = handle
                    .create_node()
                    .name(format!("node-{slot}"))
                    .ip(ip(slot))
                    .init(move || {
                        let config = config(&plan, member_id.load(Ordering::SeqCst));
                        run_member(config, member_disk.clone(), observer.clone())
                    })
                    .build();
                SimNode { id, handle: node, disk, client_address: client_address(slot) }
            })
            .collect();
        let client = handle
            .create_node()
            .name("clients")
            .ip("10.0.1.1".parse().expect("a valid address"))
            .build();
        Cluster { nodes, client }
    }

    /// The machine running node `id` (or its slot's current node).
    pub fn node(&self, id: u64) -> &SimNode {
        &self.nodes[slot(id) as usize - 1]
    }

    /// The node ids the machines run now.
    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.iter().map(SimNode::id).collect()
    }

    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.client_address.clone()).collect()
    }
}
