//! The nemesis: one fault at a time, chosen from the run's list by its seed, held for a
//! while and then undone, with quiet time between faults. Every fault and its undoing go
//! into the timeline. A node that exits on its own is a crash (recorded, then restarted so
//! the run goes on), unless its disk was full: then stopping is what it should do.

use std::{fmt, str::FromStr, time::Duration};

use lockmgr_verify::now_us;
use nix::sys::signal::Signal;
use rand::{RngExt, rngs::SmallRng, seq::IndexedRandom};

use crate::{
    hosts::{self, Hosts, REPLACEMENT_STEP},
    net,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The leader is cut off from every other node.
    IsolateLeader,
    /// The nodes split into two random groups that cannot talk.
    PartitionHalves,
    /// Each node talks only to its ring neighbours (5 nodes: every node sees a majority,
    /// no two the same one).
    MajoritiesRing,
    /// One node stops receiving from another (the other still hears it).
    OneWay,
    /// A node drops 30% of the packets it receives.
    Loss,
    /// A node's link gets slow (netem delay, or a token bucket without netem).
    SlowLink,
    /// `kill -9`, and restarted later on the same data.
    Kill,
    /// SIGSTOP longer than the longest lease TTL, then SIGCONT (a GC pause).
    Pause,
    /// A follower is removed, its data wiped, and a new node id joins at its address.
    Replace,
    /// A node's file system fills up; the ballast is removed afterwards.
    DiskFull,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::IsolateLeader,
        Fault::PartitionHalves,
        Fault::MajoritiesRing,
        Fault::OneWay,
        Fault::Loss,
        Fault::SlowLink,
        Fault::Kill,
        Fault::Pause,
        Fault::Replace,
        Fault::DiskFull,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::IsolateLeader => "isolate-leader",
            Fault::PartitionHalves => "partition-halves",
            Fault::MajoritiesRing => "majorities-ring",
            Fault::OneWay => "one-way",
            Fault::Loss => "loss",
            Fault::SlowLink => "slow-link",
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Replace => "replace",
            Fault::DiskFull => "disk-full",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        Fault::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
            format!("unknown fault {s:?}; the faults are {}", names.join(", "))
        })
    }
}

/// One line of the timeline: when (µs since the start), and what happened.
#[derive(Clone, Debug)]
pub struct Entry {
    pub at_us: u64,
    pub what: String,
}

#[derive(Debug)]
pub struct Nemesis {
    pub faults: Vec<Fault>,
    pub rng: SmallRng,
    pub timeline: Vec<Entry>,
    pub injected: Vec<Fault>,
    /// Nodes that exited on their own, unasked: (slot, what).
    pub crashes: Vec<String>,
    pub gap_ms: (u64, u64),
    pub length_ms: (u64, u64),
    /// Longer than any lease's TTL: how long a pause lasts.
    pub pause_ms: u64,
}

impl Nemesis {
    pub fn note(&mut self, what: String) {
        let at_us = now_us();
        println!("{:>8.1}s  {what}", at_us as f64 / 1e6);
        self.timeline.push(Entry { at_us, what });
    }

    /// Injects faults until `stop_us`, one at a time.
    pub async fn run(&mut self, hosts: &mut Hosts, stop_us: u64) {
        while now_us() < stop_us {
            let gap = self.rng.random_range(self.gap_ms.0..=self.gap_ms.1);
            self.quiet(hosts, Duration::from_millis(gap)).await;
            if now_us() >= stop_us {
                break;
            }
            let fault = *self.faults.choose(&mut self.rng).expect("at least one fault");
            let length =
                Duration::from_millis(self.rng.random_range(self.length_ms.0..=self.length_ms.1));
            self.inject(hosts, fault, length).await;
        }
    }

    /// Waits, restarting any node that crashed meanwhile.
    async fn quiet(&mut self, hosts: &mut Hosts, length: Duration) {
        let until = tokio::time::Instant::now() + length;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250).min(length)).await;
            self.watch_crashes(hosts, None);
        }
    }

    /// Records (and restarts) nodes that exited unasked; `full` is a slot whose disk is
    /// full, which may stop.
    pub fn watch_crashes(&mut self, hosts: &mut Hosts, full: Option<usize>) {
        for slot in 0..hosts.nodes.len() {
            let id = hosts.nodes[slot].id;
            let Some(status) = hosts.nodes[slot].exited() else { continue };
            if Some(slot) == full {
                self.note(format!("node {id} stopped on its full disk ({status})"));
                continue;
            }
            let crash = format!("node {id} (slot {slot}) exited unasked: {status}");
            self.note(crash.clone());
            self.crashes.push(crash);
            if let Err(e) = hosts.start(slot) {
                self.note(format!("restarting node {id} failed: {e}"));
            }
        }
    }

    async fn inject(&mut self, hosts: &mut Hosts, fault: Fault, length: Duration) {
        let slots = hosts.nodes.len();
        let leader = hosts.leader().await;
        let mut others: Vec<usize> = (0..slots).filter(|s| Some(*s) != leader).collect();
        // Half the time a node fault hits the leader: the case that tests the most.
        let target = match leader {
            Some(leader) if self.rng.random_bool(0.5) => leader,
            _ => self.rng.random_range(0..slots),
        };
        let mut full = None;
        self.injected.push(fault);
        match fault {
            Fault::IsolateLeader
            | Fault::PartitionHalves
            | Fault::MajoritiesRing
            | Fault::OneWay => {
                let (what, cuts) = self.cuts(fault, slots, leader.unwrap_or(target));
                self.note(format!("{fault}: {what}"));
                for (from, to) in cuts {
                    if let Err(e) = net::block(from, to).await {
                        self.note(format!("  failed: {e}"));
                    }
                }
            }
            Fault::Loss => {
                self.note(format!(
                    "{fault}: node {} drops 30% of what it receives",
                    hosts.nodes[target].id
                ));
                if let Err(e) = net::lose(target, 0.3).await {
                    self.note(format!("  failed: {e}"));
                }
            }
            Fault::SlowLink => match net::slow(target).await {
                Ok(how) => self.note(format!("{fault}: node {}: {how}", hosts.nodes[target].id)),
                Err(e) => self.note(format!("{fault}: failed: {e}")),
            },
            Fault::Kill => {
                self.note(format!("{fault}: kill -9 node {}", hosts.nodes[target].id));
                hosts.nodes[target].kill().await;
            }
            Fault::Pause => {
                self.note(format!(
                    "{fault}: SIGSTOP node {} for {} ms",
                    hosts.nodes[target].id, self.pause_ms
                ));
                hosts.nodes[target].signal(Signal::SIGSTOP);
                hosts.nodes[target].paused = true;
            }
            Fault::Replace => {
                others.retain(|s| hosts.nodes[*s].is_up());
                match (leader, others.choose(&mut self.rng).copied()) {
                    (Some(leader), Some(slot)) => self.replace(hosts, leader, slot).await,
                    _ => self.note(format!("{fault}: no leader and follower to replace; skipped")),
                }
            }
            Fault::DiskFull => {
                let (id, mount) = (hosts.nodes[target].id, hosts.nodes[target].mount.clone());
                // Off the clients' thread: writing the ballast takes a while.
                let filled = tokio::task::spawn_blocking(move || hosts::fill(&mount)).await;
                match filled.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                    Ok(bytes) => self.note(format!(
                        "{fault}: node {id}'s disk filled ({} MiB of ballast)",
                        bytes >> 20
                    )),
                    Err(e) => self.note(format!("{fault}: failed: {e}")),
                }
                full = Some(target);
            }
        }
        let length =
            if fault == Fault::Pause { Duration::from_millis(self.pause_ms) } else { length };
        let until = tokio::time::Instant::now() + length;
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            self.watch_crashes(hosts, full);
        }
        self.undo(hosts, fault, target).await;
    }

    /// Which links to cut (from, to) for a partition, and how to say it.
    fn cuts(&mut self, fault: Fault, slots: usize, leader: usize) -> (String, Vec<(usize, usize)>) {
        let both = |a: &[usize], b: &[usize]| {
            let mut cuts = Vec::new();
            for &x in a {
                for &y in b {
                    cuts.push((x, y));
                    cuts.push((y, x));
                }
            }
            cuts
        };
        match fault {
            Fault::IsolateLeader => {
                let rest: Vec<usize> = (0..slots).filter(|s| *s != leader).collect();
                (format!("slot {leader} (the leader) isolated"), both(&[leader], &rest))
            }
            Fault::PartitionHalves => {
                let mut all: Vec<usize> = (0..slots).collect();
                rand::seq::SliceRandom::shuffle(&mut all[..], &mut self.rng);
                let (a, b) = all.split_at(slots / 2);
                (format!("slots {a:?} | {b:?}"), both(a, b))
            }
            Fault::MajoritiesRing => {
                let mut cuts = Vec::new();
                for x in 0..slots {
                    for y in 0..slots {
                        let distance = (x + slots - y) % slots;
                        if x != y && distance != 1 && distance != slots - 1 {
                            cuts.push((x, y));
                        }
                    }
                }
                ("every slot hears only its ring neighbours".into(), cuts)
            }
            _ => {
                let from = self.rng.random_range(0..slots);
                let to = (from + self.rng.random_range(1..slots)) % slots;
                (format!("slot {to} no longer hears slot {from}"), vec![(from, to)])
            }
        }
    }

    async fn undo(&mut self, hosts: &mut Hosts, fault: Fault, slot: usize) {
        match fault {
            Fault::Kill => {
                self.note(format!("restart node {}", hosts.nodes[slot].id));
                if let Err(e) = hosts.start(slot) {
                    self.note(format!("  failed: {e}"));
                }
            }
            Fault::Pause => {
                self.note(format!("SIGCONT node {}", hosts.nodes[slot].id));
                hosts.nodes[slot].signal(Signal::SIGCONT);
                hosts.nodes[slot].paused = false;
            }
            Fault::DiskFull => {
                hosts::unfill(&hosts.nodes[slot].mount);
                self.note(format!("node {}'s ballast removed", hosts.nodes[slot].id));
                // A write that failed just before may still be taking the node down.
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.watch_crashes(hosts, Some(slot));
                if !hosts.nodes[slot].is_up() {
                    self.note(format!("restart node {}", hosts.nodes[slot].id));
                    if let Err(e) = hosts.start(slot) {
                        self.note(format!("  failed: {e}"));
                    }
                }
            }
            Fault::Replace => {}
            _ => {
                for slot in 0..hosts.nodes.len() {
                    if let Err(e) = net::heal(slot).await {
                        self.note(format!("healing slot {slot} failed: {e}"));
                    }
                }
                self.note("network healed".into());
            }
        }
    }

    /// Removes `slot`'s node through the leader, wipes it, and adds a new node in its place.
    async fn replace(&mut self, hosts: &mut Hosts, leader: usize, slot: usize) {
        let old = hosts.nodes[slot].id;
        let new = old + REPLACEMENT_STEP;
        self.note(format!("replace: remove node {old} via node {}", hosts.nodes[leader].id));
        if let Err(e) = hosts.remove_member(leader, old).await {
            self.note(format!("  removing node {old} failed ({e}); skipped"));
            return;
        }
        hosts.nodes[slot].kill().await;
        let _ = std::fs::remove_dir_all(hosts.nodes[slot].data_dir());
        hosts.nodes[slot].id = new;
        hosts.nodes[slot].founding = false;
        self.note(format!("  node {old} killed and wiped; node {new} joins at its address"));
        if let Err(e) = hosts.start(slot) {
            self.note(format!("  starting node {new} failed: {e}"));
            return;
        }
        let via = hosts.leader().await.unwrap_or(leader);
        match hosts.add_member(via, slot).await {
            Ok(()) => self.note(format!("  node {new} added")),
            Err(e) => self.note(format!("  adding node {new} failed ({e}); healing retries")),
        }
    }

    /// Undoes every fault: network healed, nodes resumed and running, disks emptied, and
    /// every slot's node a voter with no retired id left in the membership.
    pub async fn heal(&mut self, hosts: &mut Hosts) {
        for slot in 0..hosts.nodes.len() {
            let _ = net::heal(slot).await;
            hosts::unfill(&hosts.nodes[slot].mount);
            if hosts.nodes[slot].paused {
                hosts.nodes[slot].signal(Signal::SIGCONT);
                hosts.nodes[slot].paused = false;
            }
        }
        self.watch_crashes(hosts, None);
        for slot in 0..hosts.nodes.len() {
            if !hosts.nodes[slot].is_up() {
                let _ = hosts.start(slot);
            }
        }
        self.note("healed: network, pauses, disks; every node running".into());
        let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
        while tokio::time::Instant::now() < deadline {
            if self.reconcile(hosts).await {
                self.note("membership: every slot's node a voter".into());
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.note("membership did not settle within 60 s".into());
    }

    /// One step towards the wanted membership; true once it is there.
    async fn reconcile(&mut self, hosts: &Hosts) -> bool {
        let Some(leader) = hosts.leader().await else { return false };
        let Some(members) = hosts.members(leader).await else { return false };
        let wanted: Vec<u64> = hosts.nodes.iter().map(|n| n.id).collect();
        for slot in 0..hosts.nodes.len() {
            let id = hosts.nodes[slot].id;
            if !members.iter().any(|(m, learner)| *m == id && !learner) {
                self.note(format!("membership: adding node {id}"));
                let _ = hosts.add_member(leader, slot).await;
                return false;
            }
        }
        for (id, _) in members {
            if !wanted.contains(&id) {
                self.note(format!("membership: removing retired node {id}"));
                let _ = hosts.remove_member(leader, id).await;
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn nemesis() -> Nemesis {
        Nemesis {
            faults: Fault::ALL.to_vec(),
            rng: SmallRng::seed_from_u64(1),
            timeline: Vec::new(),
            injected: Vec::new(),
            crashes: Vec::new(),
            gap_ms: (0, 0),
            length_ms: (0, 0),
            pause_ms: 0,
        }
    }

    /// Who each slot still hears, after `cuts`.
    fn hears(slots: usize, cuts: &[(usize, usize)]) -> Vec<Vec<usize>> {
        (0..slots)
            .map(|to| {
                (0..slots).filter(|from| *from != to && !cuts.contains(&(*from, to))).collect()
            })
            .collect()
    }

    #[test]
    fn in_the_majorities_ring_every_node_hears_only_its_two_neighbours() {
        let (_, cuts) = nemesis().cuts(Fault::MajoritiesRing, 5, 0);
        assert_eq!(
            hears(5, &cuts),
            vec![vec![1, 4], vec![0, 2], vec![1, 3], vec![2, 4], vec![0, 3]]
        );
    }

    #[test]
    fn an_isolated_leader_hears_no_one_and_no_one_hears_it() {
        let (_, cuts) = nemesis().cuts(Fault::IsolateLeader, 3, 1);
        assert_eq!(hears(3, &cuts), vec![vec![2], vec![], vec![0]]);
    }

    #[test]
    fn a_one_way_cut_leaves_the_other_direction() {
        let (_, cuts) = nemesis().cuts(Fault::OneWay, 3, 0);
        let &[(from, to)] = &cuts[..] else { panic!("one cut: {cuts:?}") };
        assert!(!hears(3, &cuts)[to].contains(&from));
        assert!(hears(3, &cuts)[from].contains(&to));
    }

    #[test]
    fn faults_parse_by_name_and_an_unknown_one_is_named_in_the_error() {
        assert_eq!("disk-full".parse::<Fault>(), Ok(Fault::DiskFull));
        let error = "gc".parse::<Fault>().unwrap_err();
        assert!(error.contains("\"gc\"") && error.contains("isolate-leader"), "{error}");
    }
}
