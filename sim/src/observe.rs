//! What the harness sees inside the nodes while a run goes on: every applied command
//! (through the server's apply tap) and every change of a node's Raft metrics. Each goes
//! straight to the checkers that watch it; the rest of the run reads the applied log.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use lockmgr_core::{Applied, Command};
use lockmgr_io::TypeConfig;
use openraft::{RaftMetrics, ServerState};

use lockmgr_verify::checkers::{
    Violation,
    election_safety::ElectionSafety,
    raft_progress::{Progress, RaftProgress},
    state_machine_safety::StateMachineSafety,
};

#[derive(Debug, Default)]
pub struct Observations {
    pub elections: ElectionSafety,
    pub progress: RaftProgress,
    pub machine: StateMachineSafety,
    pub violations: Vec<Violation>,
    /// Each node's current life (counts starts) and how its last one ended.
    pub incarnation: BTreeMap<u64, u64>,
    pub stopped: BTreeMap<u64, String>,
    /// Each node's latest metrics reading.
    pub latest: BTreeMap<u64, (bool, Progress)>,
    /// A short log of notable happenings, for `--reproduce`.
    pub trace: Vec<String>,
    pub verbose: bool,
}

#[derive(Debug, Default, Clone)]
pub struct Observer {
    inner: Arc<Mutex<Observations>>,
}

impl Observer {
    pub fn new(verbose: bool) -> Observer {
        let observer = Observer::default();
        observer.lock().verbose = verbose;
        observer
    }

    pub fn lock(&self) -> MutexGuard<'_, Observations> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn note(&self, line: String) {
        let mut observations = self.lock();
        if observations.verbose {
            println!("{:>10.3}s {line}", lockmgr_verify::now_us() as f64 / 1e6);
        }
        observations.trace.push(format!("{} {line}", lockmgr_verify::now_us()));
    }

    pub fn node_started(&self, node: u64) -> u64 {
        let incarnation = {
            let mut observations = self.lock();
            observations.stopped.remove(&node);
            let incarnation = observations.incarnation.entry(node).or_default();
            *incarnation += 1;
            *incarnation
        };
        self.note(format!("node {node} starts (life {incarnation})"));
        incarnation
    }

    pub fn node_stopped(&self, node: u64, why: String) {
        self.note(format!("node {node} stopped: {why}"));
        self.lock().stopped.insert(node, why);
    }

    /// The node was removed from the cluster and its machine replaced: it will not run
    /// again, and is no member whose progress liveness waits for.
    pub fn node_retired(&self, node: u64) {
        self.note(format!("node {node} retired"));
        let mut observations = self.lock();
        observations.stopped.remove(&node);
        observations.latest.remove(&node);
    }

    pub fn applied(
        &self,
        node: u64,
        incarnation: u64,
        index: u64,
        command: &Command,
        applied: &Applied,
    ) {
        let now_us = lockmgr_verify::now_us();
        let mut observations = self.lock();
        // `--reproduce` shows what the leader applied (printed only: the trace, and so the
        // run's hash, stays as it is).
        if observations.verbose && observations.machine.log.get(&index).is_none() {
            println!(
                "{:>10.3}s applied #{index} {command:?} -> {:?}",
                now_us as f64 / 1e6,
                applied.reply
            );
        }
        let violation =
            observations.machine.handle_applied(node, incarnation, index, command, applied, now_us);
        observations.violations.extend(violation);
    }

    pub fn raft_metrics(&self, node: u64, incarnation: u64, metrics: &RaftMetrics<TypeConfig>) {
        let leader_id = metrics.vote.leader_id();
        let progress = Progress {
            term: metrics.current_term,
            vote: (leader_id.term, metrics.vote.is_committed(), leader_id.voted_for),
            committed: metrics.local_committed.map_or(0, |log_id| log_id.index),
            applied: metrics.last_applied.map_or(0, |log_id| log_id.index),
        };
        let leads = metrics.state == ServerState::Leader;
        let newly_leads = {
            let mut observations = self.lock();
            let observations = &mut *observations;
            let violations = observations.progress.handle(node, incarnation, progress);
            observations.violations.extend(violations);
            if leads {
                let violation = observations.elections.handle_leader(node, progress.term);
                observations.violations.extend(violation);
            }
            let before = observations.latest.insert(node, (leads, progress));
            leads && before.is_none_or(|(led, last)| !led || last.term != progress.term)
        };
        if newly_leads {
            self.note(format!("node {node} leads term {}", progress.term));
        }
    }

    /// The node that most recently reported leading the highest term, if it still does.
    pub fn leader(&self) -> Option<u64> {
        let observations = self.lock();
        observations
            .latest
            .iter()
            .filter(|(node, (leads, _))| *leads && !observations.stopped.contains_key(node))
            .max_by_key(|(_, (_, progress))| progress.term)
            .map(|(node, _)| *node)
    }
}
