//! The nemesis: injects the faults the seed chose, one at a time, each for a bounded time
//! and then undone, until the fault phase ends; a reviver restarts members whose disk
//! failed (a failed write stops a node). `heal` undoes everything at the end.

use std::{collections::BTreeSet, time::Duration};

use lockmgr_proto::v1::{
    AddMemberRequest, ListMembersRequest, RemoveMemberRequest, TransferLeaderRequest,
    cluster_service_client::ClusterServiceClient,
};
use madsim::{net::NetSim, runtime::Handle};
use rand::{RngExt, SeedableRng, rngs::SmallRng, seq::IndexedRandom};
use tonic::{Code, transport::Channel};

use lockmgr_verify::{checkers::Violation, now_us};

use crate::{
    cluster::{self, Cluster, REPLACEMENT_STEP},
    observe::Observer,
    plan::{Fault, Plan},
};

/// The node `AddUnreachable` adds: no machine has its address.
const GHOST: u64 = 1_000;
const GHOST_ADDRESS: &str = "10.0.0.250:7071";

pub struct Nemesis<'a> {
    pub handle: &'a Handle,
    pub cluster: &'a Cluster,
    pub plan: &'a Plan,
    pub observer: &'a Observer,
    rng: SmallRng,
    /// Members this nemesis has killed or paused (the reviver leaves them alone).
    held_down: BTreeSet<u64>,
    pub injected: usize,
}

fn default_latency() -> std::ops::Range<Duration> {
    Duration::from_millis(1)..Duration::from_millis(10)
}

impl<'a> Nemesis<'a> {
    pub fn new(
        handle: &'a Handle,
        cluster: &'a Cluster,
        plan: &'a Plan,
        observer: &'a Observer,
    ) -> Nemesis<'a> {
        let rng = SmallRng::seed_from_u64(plan.options.seed ^ 0x0e7e_5157);
        Nemesis { handle, cluster, plan, observer, rng, held_down: BTreeSet::new(), injected: 0 }
    }

    fn madsim_id(&self, node: u64) -> madsim::task::NodeId {
        self.cluster.node(node).handle.id()
    }

    fn node_ids(&self) -> Vec<u64> {
        self.cluster.node_ids()
    }

    /// Runs `call` with an admin client of `node`'s machine, from the clients' machine
    /// (the nemesis's own has no address); membership changes are forwarded to the leader.
    async fn admin<T, F>(
        &self,
        node: u64,
        limit: Duration,
        call: impl FnOnce(ClusterServiceClient<Channel>) -> F + Send + 'static,
    ) -> Option<T>
    where
        T: Send + 'static,
        F: Future<Output = Option<T>> + Send + 'static,
    {
        let address = self.cluster.node(node).client_address.clone();
        let task = self.cluster.client.spawn(async move {
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"));
            let admin = ClusterServiceClient::new(endpoint.ok()?.connect_lazy());
            tokio::time::timeout(limit, call(admin)).await.ok()?
        });
        task.await.ok()?
    }

    /// Removes `node` from the cluster through the leader: true once it is gone.
    async fn remove_member(&self, via: u64, node: u64) -> bool {
        let remove = move |mut admin: ClusterServiceClient<Channel>| async move {
            match admin.remove_member(RemoveMemberRequest { node_id: node }).await {
                Ok(_) => Some(true),
                Err(status) => Some(status.code() == Code::NotFound),
            }
        };
        self.admin(via, Duration::from_secs(5), remove).await.unwrap_or(false)
    }

    /// Adds `node` (learner, caught up, then voter) through the leader; true once it is in.
    async fn add_member(&self, via: u64, node: u64) -> bool {
        let request = AddMemberRequest {
            node_id: node,
            peer_address: cluster::peer_address(node),
            client_address: cluster::client_address(node),
            learner_only: false,
        };
        let add = move |mut admin: ClusterServiceClient<Channel>| async move {
            Some(admin.add_member(request).await.is_ok())
        };
        self.admin(via, Duration::from_secs(10), add).await.unwrap_or(false)
    }

    /// Voters and learners as `via` knows them.
    async fn members(&self, via: u64) -> Option<Vec<(u64, bool)>> {
        let list = move |mut admin: ClusterServiceClient<Channel>| async move {
            let members = admin.list_members(ListMembersRequest {}).await.ok()?.into_inner();
            Some(members.members.iter().map(|m| (m.node_id, m.is_learner)).collect())
        };
        self.admin(via, Duration::from_secs(3), list).await
    }

    /// Injects faults until `until_us`, reviving failed members along the way.
    pub async fn run(&mut self, until_us: u64) {
        while now_us() < until_us {
            let (low, high) = self.plan.fault_gap_ms;
            let gap = Duration::from_millis(self.rng.random_range(low..high));
            self.idle(until_us, gap).await;
            if now_us() >= until_us {
                break;
            }
            let fault = *self.plan.faults.choose(&mut self.rng).expect("a plan has faults");
            let (low, high) = self.plan.fault_length_ms;
            let length = Duration::from_millis(self.rng.random_range(low..high));
            self.inject(fault, length, until_us).await;
        }
    }

    /// Sleeps, restarting members whose disk failed meanwhile.
    async fn idle(&mut self, until_us: u64, length: Duration) {
        let end_us = (now_us() + length.as_micros() as u64).min(until_us);
        while now_us() < end_us {
            self.revive_failed().await;
            let step_us = (end_us - now_us()).min(250_000);
            tokio::time::sleep(Duration::from_micros(step_us)).await;
        }
    }

    async fn revive_failed(&mut self) {
        for node in self.node_ids() {
            let stopped = self.observer.lock().stopped.contains_key(&node);
            if stopped && !self.held_down.contains(&node) {
                let disk = &self.cluster.node(node).disk;
                disk.crash();
                disk.reopen();
                self.observer.note(format!("reviver restarts node {node}"));
                // What the stopped server left running (listeners, Raft) dies first.
                self.handle.kill(self.madsim_id(node));
                self.handle.restart(self.madsim_id(node));
            }
        }
    }

    async fn inject(&mut self, fault: Fault, length: Duration, until_us: u64) {
        let net = NetSim::current();
        let nodes = self.node_ids();
        let length_ms = length.as_millis();
        self.injected += 1;
        match fault {
            Fault::PartitionHalves => {
                let mut shuffled = nodes.clone();
                rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut self.rng);
                let cut = self.rng.random_range(1..nodes.len());
                let (left, right) = shuffled.split_at(cut);
                self.observer.note(format!("partition {left:?} | {right:?} for {length_ms} ms"));
                let links = self.cross_links(left, right);
                self.clog(&net, &links);
                self.idle(until_us, length).await;
                self.unclog(&net, &links);
            }
            Fault::IsolateLeader => {
                let Some(leader) = self.observer.leader() else { return };
                self.observer.note(format!("isolate leader {leader} for {length_ms} ms"));
                let others: Vec<u64> = nodes.iter().copied().filter(|n| *n != leader).collect();
                let links = self.cross_links(&[leader], &others);
                self.clog(&net, &links);
                self.idle(until_us, length).await;
                self.unclog(&net, &links);
            }
            Fault::MajoritiesRing => {
                let n = nodes.len();
                let mut links = Vec::new();
                for (i, a) in nodes.iter().enumerate() {
                    for (j, b) in nodes.iter().enumerate() {
                        let distance = (i + n - j) % n;
                        // Only ring neighbours stay linked: with 5 nodes each sees a
                        // majority of its own; with 3 the ring is whole (n / 4 cut all).
                        if distance.min(n - distance) > 1 {
                            links.push((*a, *b));
                        }
                    }
                }
                self.observer.note(format!("majorities ring for {length_ms} ms"));
                self.clog(&net, &links);
                self.idle(until_us, length).await;
                self.unclog(&net, &links);
            }
            Fault::OneWay => {
                let from = *nodes.choose(&mut self.rng).expect("nodes");
                let to = *nodes
                    .iter()
                    .filter(|n| **n != from)
                    .collect::<Vec<_>>()
                    .choose(&mut self.rng)
                    .expect("two nodes at least");
                self.observer.note(format!("one-way cut {from} -> {to} for {length_ms} ms"));
                self.clog(&net, &[(from, *to)]);
                self.idle(until_us, length).await;
                self.unclog(&net, &[(from, *to)]);
            }
            Fault::PacketLoss => {
                let rate = self.rng.random_range(0.01..0.2);
                self.observer.note(format!("packet loss {rate:.3} for {length_ms} ms"));
                net.update_config(|config| config.packet_loss_rate = rate);
                self.idle(until_us, length).await;
                net.update_config(|config| config.packet_loss_rate = 0.0);
            }
            Fault::LatencySpike => {
                let high = Duration::from_millis(self.rng.random_range(20..300));
                self.observer.note(format!("latency up to {high:?} for {length_ms} ms"));
                net.update_config(|config| config.send_latency = Duration::from_millis(1)..high);
                self.idle(until_us, length).await;
                net.update_config(|config| config.send_latency = default_latency());
            }
            Fault::KillRestart => {
                let node = *nodes.choose(&mut self.rng).expect("nodes");
                self.observer.note(format!("kill -9 node {node} for {length_ms} ms"));
                self.held_down.insert(node);
                self.handle.kill(self.madsim_id(node));
                self.observer.node_stopped(node, "killed".into());
                self.cluster.node(node).disk.crash();
                self.idle(until_us, length).await;
                self.restart(node);
            }
            Fault::Pause => {
                let node = *nodes.choose(&mut self.rng).expect("nodes");
                // Longer than any lease: the classic GC pause.
                let length = length.max(Duration::from_millis(self.plan.lease_ttl_ms.1 + 1_000));
                self.observer.note(format!("pause node {node} for {} ms", length.as_millis()));
                self.held_down.insert(node);
                self.handle.pause(self.madsim_id(node));
                tokio::time::sleep(length).await;
                self.handle.resume(self.madsim_id(node));
                self.held_down.remove(&node);
                self.observer.note(format!("resume node {node}"));
            }
            Fault::Replace => {
                let Some(leader) = self.observer.leader() else { return };
                let followers: Vec<u64> = nodes.iter().copied().filter(|n| *n != leader).collect();
                let old = *followers.choose(&mut self.rng).expect("a follower");
                let new = old + REPLACEMENT_STEP;
                self.observer.note(format!("replace node {old} with node {new}"));
                if !self.remove_member(leader, old).await {
                    // Maybe removed, maybe not: healing puts every machine's node back in.
                    self.observer.note(format!("removing node {old} failed; replace abandoned"));
                    return;
                }
                self.handle.kill(self.madsim_id(old));
                self.observer.node_retired(old);
                let machine = self.cluster.node(old);
                machine.disk.wipe();
                machine.replace_id(new);
                self.handle.restart(self.madsim_id(new));
                let added = self.add_member(leader, new).await;
                self.observer.note(format!("node {new} added: {added}"));
                self.idle(until_us, length).await;
            }
            Fault::AddUnreachable => {
                let Some(leader) = self.observer.leader() else { return };
                self.observer.note(format!("add unreachable node {GHOST}"));
                let request = AddMemberRequest {
                    node_id: GHOST,
                    peer_address: GHOST_ADDRESS.into(),
                    client_address: GHOST_ADDRESS.into(),
                    learner_only: false,
                };
                let add = move |mut admin: ClusterServiceClient<Channel>| async move {
                    Some(admin.add_member(request).await.map_err(|status| status.code()))
                };
                let added = self.admin(leader, Duration::from_secs(15), add).await;
                self.observer.note(format!("add unreachable node {GHOST}: {added:?}"));
                if let Some(members) = self.members(leader).await
                    && members.iter().any(|(id, learner)| *id == GHOST && !learner)
                {
                    let message = format!("node {GHOST}, which never ran, was made a voter");
                    self.observer.lock().violations.push(Violation::new("membership", message));
                }
                self.idle(until_us, length).await;
                let removed = self.remove_member(leader, GHOST).await;
                self.observer.note(format!("remove unreachable node {GHOST}: {removed}"));
            }
            Fault::TransferLeader => {
                let Some(leader) = self.observer.leader() else { return };
                let target = *nodes.choose(&mut self.rng).expect("nodes");
                self.observer.note(format!("transfer leadership {leader} -> {target}"));
                let transfer = move |mut admin: ClusterServiceClient<Channel>| async move {
                    let request = TransferLeaderRequest { target_node_id: target };
                    Some(admin.transfer_leader(request).await.is_ok())
                };
                let moved = self.admin(leader, Duration::from_secs(2), transfer).await;
                self.observer.note(format!("transfer leadership done: {moved:?}"));
            }
        }
    }

    fn cross_links(&self, left: &[u64], right: &[u64]) -> Vec<(u64, u64)> {
        let mut links = Vec::new();
        for a in left {
            for b in right {
                links.push((*a, *b));
                links.push((*b, *a));
            }
        }
        links
    }

    fn clog(&self, net: &NetSim, links: &[(u64, u64)]) {
        for (a, b) in links {
            net.clog_link(self.madsim_id(*a), self.madsim_id(*b));
        }
    }

    fn unclog(&self, net: &NetSim, links: &[(u64, u64)]) {
        for (a, b) in links {
            net.unclog_link(self.madsim_id(*a), self.madsim_id(*b));
        }
    }

    fn restart(&mut self, node: u64) {
        self.cluster.node(node).disk.reopen();
        self.observer.note(format!("restart node {node}"));
        self.handle.restart(self.madsim_id(node));
        self.held_down.remove(&node);
    }

    /// Ends every fault: links open, no loss or spikes, disks healthy, every member up.
    pub async fn heal(&mut self) {
        let net = NetSim::current();
        let nodes = self.node_ids();
        for a in &nodes {
            for b in &nodes {
                net.unclog_link(self.madsim_id(*a), self.madsim_id(*b));
            }
        }
        net.update_config(|config| {
            config.packet_loss_rate = 0.0;
            config.send_latency = default_latency();
        });
        for node in &self.cluster.nodes {
            node.disk.heal();
        }
        self.held_down.clear();
        self.revive_failed().await;
        self.reconcile_members().await;
        self.observer.note("healed".into());
    }

    /// After healing, every machine's node is a voter again and no retired node is a
    /// member: replacements that faults cut short are finished here.
    async fn reconcile_members(&mut self) {
        let current = self.node_ids();
        for _attempt in 0..20 {
            let via = self.observer.leader().unwrap_or(current[0]);
            let Some(members) = self.members(via).await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let voter = |node: u64| members.iter().any(|(id, learner)| *id == node && !learner);
            let missing: Vec<u64> = current.iter().copied().filter(|n| !voter(*n)).collect();
            let stale: Vec<u64> =
                members.iter().map(|(id, _)| *id).filter(|id| !current.contains(id)).collect();
            if missing.is_empty() && stale.is_empty() {
                return;
            }
            self.observer.note(format!("reconcile membership: add {missing:?}, remove {stale:?}"));
            for node in stale {
                self.remove_member(via, node).await;
            }
            for node in missing {
                self.add_member(via, node).await;
            }
        }
        self.observer.note("membership not reconciled".into());
    }
}
