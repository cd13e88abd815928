//! The nodes: each a real `lockmgr server` process in its host's namespace, its data
//! directory on a small ext4 file system of its own (a loop-mounted image, so that a full
//! disk can be one node's alone and fsync is real). A slot is a machine: its node can be
//! killed, paused, restarted, or wiped and replaced by a new node id at the same address.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use lockmgr_proto::{
    Channels,
    v1::{
        AddMemberRequest, ListMembersRequest, RemoveMemberRequest, StatusRequest, StatusResponse,
        cluster_service_client::ClusterServiceClient,
    },
};
use nix::{sys::signal::Signal, unistd::Pid};

use crate::net::{node_ip, node_ns, run};

pub const CLIENT_PORT: u16 = 7001;
pub const PEER_PORT: u16 = 7002;
/// A replaced node's id: the old one plus this.
pub const REPLACEMENT_STEP: u64 = 10;

/// One loop-mounted ext4 file system per slot; unmounted and deleted on drop.
#[derive(Debug)]
pub struct Disks {
    pub mounts: Vec<PathBuf>,
    images: Vec<PathBuf>,
    keep: bool,
}

impl Disks {
    pub fn create(work: &Path, slots: usize, size_mb: u64, keep: bool) -> Result<Disks, String> {
        let mut disks = Disks { mounts: Vec::new(), images: Vec::new(), keep };
        for slot in 0..slots {
            let image = work.join(format!("disk-{slot}.img"));
            let mount = work.join(format!("node-{slot}"));
            let file =
                std::fs::File::create(&image).map_err(|e| format!("{}: {e}", image.display()))?;
            file.set_len(size_mb << 20).map_err(|e| format!("{}: {e}", image.display()))?;
            std::fs::create_dir_all(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
            let image_arg = image.display().to_string();
            // No blocks reserved for root: the servers run as root and must see the disk fill.
            run("mkfs.ext4", &["-q", "-F", "-m", "0", &image_arg])?;
            run("mount", &["-o", "loop", &image_arg, &mount.display().to_string()])?;
            disks.images.push(image);
            disks.mounts.push(mount);
        }
        Ok(disks)
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for mount in &self.mounts {
            let _ = run("umount", &["-l", &mount.display().to_string()]);
        }
        if !self.keep {
            for image in &self.images {
                let _ = std::fs::remove_file(image);
            }
        }
    }
}

/// Fills the file system under `dir` with a ballast file until it is full.
pub fn fill(dir: &Path) -> std::io::Result<u64> {
    use std::io::Write;
    let mut file = std::fs::File::create(dir.join("ballast"))?;
    let mut written = 0;
    for chunk in [1 << 20, 4 << 10, 512] {
        let block = vec![0u8; chunk];
        while file.write_all(&block).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    Ok(written)
}

pub fn unfill(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("ballast"));
}

#[derive(Debug)]
pub struct Node {
    pub slot: usize,
    pub id: u64,
    /// A founding member starts with the initial cluster; a replacement joins.
    pub founding: bool,
    pub mount: PathBuf,
    pub log: PathBuf,
    pub paused: bool,
    child: Option<tokio::process::Child>,
}

impl Node {
    pub fn data_dir(&self) -> PathBuf {
        self.mount.join("data")
    }

    pub fn client_address(&self) -> String {
        format!("{}:{CLIENT_PORT}", node_ip(self.slot))
    }

    pub fn peer_address(&self) -> String {
        format!("{}:{PEER_PORT}", node_ip(self.slot))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// The exit status if the process ended on its own (the node is then down).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// `kill -9`, and reaped.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.paused = false;
    }

    /// SIGTERM, then the exit status (SIGKILL after `within`).
    pub async fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if self.paused {
            self.signal(Signal::SIGCONT);
            self.paused = false;
        }
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if let Ok(status) = tokio::time::timeout(within, child.wait()).await {
            status.ok()
        } else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            None
        }
    }
}

/// Every slot's node, and how to reach them.
#[derive(Debug)]
pub struct Hosts {
    pub nodes: Vec<Node>,
    binary: PathBuf,
    channels: Channels,
}

impl Hosts {
    pub fn new(binary: PathBuf, disks: &Disks, results: &Path) -> Hosts {
        let nodes = disks
            .mounts
            .iter()
            .enumerate()
            .map(|(slot, mount)| Node {
                slot,
                id: slot as u64 + 1,
                founding: true,
                mount: mount.clone(),
                log: results.join(format!("node-{slot}.log")),
                paused: false,
                child: None,
            })
            .collect();
        Hosts { nodes, binary, channels: Channels::new(Duration::from_secs(1)) }
    }

    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(Node::client_address).collect()
    }

    fn initial_cluster(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}={}/{}", n.slot + 1, n.peer_address(), n.client_address()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts slot `slot`'s node on its data directory.
    pub fn start(&mut self, slot: usize) -> Result<(), String> {
        let initial_cluster = self.initial_cluster();
        let node = &mut self.nodes[slot];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| format!("{}: {e}", node.log.display()))?;
        let stderr = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new("ip");
        command
            .args(["netns", "exec", &node_ns(slot)])
            .arg(&self.binary)
            .arg("server")
            .args(["--node-id", &node.id.to_string()])
            .args(["--data-dir", &node.data_dir().display().to_string()])
            .args(["--client-address", &node.client_address()])
            .args(["--peer-address", &node.peer_address()])
            .args(["--metrics-address", &format!("{}:9100", node_ip(slot))])
            // The checks read every node's whole log afterwards: no snapshot purges it.
            .args(["--snapshot-interval-entries", "1000000000"])
            .args(["--log", "info,openraft=warn,fjall=warn,lsm_tree=warn"]);
        if node.founding {
            command.args(["--initial-cluster", &initial_cluster]);
        } else {
            command.arg("--join");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting node {}: {e}", node.id))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    fn cluster(&self, slot: usize) -> ClusterServiceClient<tonic::transport::Channel> {
        let channel =
            self.channels.get(&self.nodes[slot].client_address()).expect("valid addresses");
        ClusterServiceClient::new(channel)
    }

    pub async fn status(&self, slot: usize) -> Option<StatusResponse> {
        if !self.nodes[slot].is_up() || self.nodes[slot].paused {
            return None;
        }
        let mut cluster = self.cluster(slot);
        let call = cluster.status(StatusRequest {});
        let response = tokio::time::timeout(Duration::from_secs(1), call).await.ok()?.ok()?;
        Some(response.into_inner())
    }

    /// The slot whose node most running nodes name as leader.
    pub async fn leader(&self) -> Option<usize> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for slot in 0..self.nodes.len() {
            if let Some(status) = self.status(slot).await
                && status.leader_id != 0
            {
                *votes.entry(status.leader_id).or_default() += 1;
            }
        }
        let (leader, _) = votes.into_iter().max_by_key(|(_, n)| *n)?;
        self.nodes.iter().position(|n| n.id == leader)
    }

    pub async fn wait_for_leader(&self, within: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(leader) = self.leader().await {
                return Some(leader);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Voters and learners as `via` knows them: (node id, is learner).
    pub async fn members(&self, via: usize) -> Option<Vec<(u64, bool)>> {
        let mut cluster = self.cluster(via);
        let call = cluster.list_members(ListMembersRequest {});
        let members = tokio::time::timeout(Duration::from_secs(2), call).await.ok()?.ok()?;
        Some(members.into_inner().members.iter().map(|m| (m.node_id, m.is_learner)).collect())
    }

    pub async fn remove_member(&self, via: usize, id: u64) -> Result<(), String> {
        let mut cluster = self.cluster(via);
        let call = cluster.remove_member(RemoveMemberRequest { node_id: id });
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(status.message().to_owned()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Adds slot `slot`'s node: a learner, caught up, then a voter.
    pub async fn add_member(&self, via: usize, slot: usize) -> Result<(), String> {
        let node = &self.nodes[slot];
        let request = AddMemberRequest {
            node_id: node.id,
            peer_address: node.peer_address(),
            client_address: node.client_address(),
            learner_only: false,
        };
        let mut cluster = self.cluster(via);
        match tokio::time::timeout(Duration::from_secs(30), cluster.add_member(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(status.message().to_owned()),
            Err(_) => Err("timed out".into()),
        }
    }
}
