//! The simulated cluster: one madsim node per member running the real server (Raft, gRPC,
//! lessor, driver) on its [`SimDisk`], plus a client node that is never killed (a task on
//! a killed node dies with it). Member `i` is `10.0.0.i`, clients on 7070, peers on 7071.

use std::{net::IpAddr, sync::Arc};

use lockmgr_server::{ServerConfig, effects::ApplyTap};
use madsim::runtime::{Handle, NodeHandle};
use openraft::async_runtime::WatchReceiver;

use crate::{disk::SimDisk, observe::Observer, plan::Plan};

pub const CLIENT_PORT: u16 = 7070;

pub struct SimNode {
    pub id: u64,
    pub handle: NodeHandle,
    pub disk: Arc<SimDisk>,
    pub client_address: String,
}

pub struct Cluster {
    pub nodes: Vec<SimNode>,
    pub client: NodeHandle,
}

fn ip(node: u64) -> IpAddr {
    format!("10.0.0.{node}").parse().expect("a valid address")
}

fn config(plan: &Plan, node: u64) -> ServerConfig {
    let members = (1..=plan.options.nodes as u64)
        .map(|id| format!("{id}={}:7071/{}:{CLIENT_PORT}", ip(id), ip(id)))
        .collect();
    let mut config = ServerConfig {
        node_id: node,
        client_address: format!("{}:{CLIENT_PORT}", ip(node)),
        peer_address: format!("{}:7071", ip(node)),
        initial_cluster: members,
        ..ServerConfig::default()
    };
    config.metrics.address = String::new();
    config.raft.snapshot_interval_entries = plan.snapshot_interval_entries;
    config.raft.log_entries_kept_after_snapshot = plan.log_entries_kept_after_snapshot;
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
    let ctx = match lockmgr_server::start_tapped(config, disk, Some(tap)).await {
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
            .map(|id| {
                let disk = Arc::new(SimDisk::new(plan.options.seed.wrapping_add(id), plan.disk));
                let config = config(plan, id);
                let (member_disk, observer) = (disk.clone(), observer.clone());
                let node = handle
                    .create_node()
                    .name(format!("node-{id}"))
                    .ip(ip(id))
                    .init(move || run_member(config.clone(), member_disk.clone(), observer.clone()))
                    .build();
                SimNode {
                    id,
                    handle: node,
                    disk,
                    client_address: format!("{}:{CLIENT_PORT}", ip(id)),
                }
            })
            .collect();
        let client = handle
            .create_node()
            .name("clients")
            .ip("10.0.1.1".parse().expect("a valid address"))
            .build();
        Cluster { nodes, client }
    }

    pub fn node(&self, id: u64) -> &SimNode {
        &self.nodes[id as usize - 1]
    }

    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.client_address.clone()).collect()
    }
}
