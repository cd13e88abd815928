//! One seeded run: start the cluster, run the workload under the plan's faults for the
//! run's duration, heal, check liveness, then run every checker on what was recorded.
//! Everything random comes from the seed, so the same seed gives the same run (the
//! report's trace hash says so).

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lockmgr_core::planted;
use lockmgr_proto::Channels;
use lockmgr_verify::{
    checkers::{
        Violation, fenced_resource, fencing, lease_safety, linearizability, lost_ack,
        mutual_exclusion, request_ids, watch_consistency,
    },
    history::History,
    resolve,
    workload::{self, Shared},
};

use crate::{
    cluster::Cluster,
    disk::DiskStats,
    liveness,
    nemesis::Nemesis,
    observe::{Observations, Observer},
    plan::{Plan, RunOptions},
};

/// What one run did and found.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub plan: Plan,
    pub operations: usize,
    pub unknown: usize,
    pub faults_injected: usize,
    pub log_entries: usize,
    pub terms: usize,
    pub disk: DiskStats,
    pub recovery: Option<Duration>,
    pub violations: Vec<Violation>,
    pub trace_hash: u64,
    /// Wall-clock time of the whole run, and of the checkers alone.
    pub wall: Duration,
    pub check_wall: Duration,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What a run recorded, for the checkers (which run outside the simulation, on real time).
struct Recorded {
    plan: Plan,
    history: History,
    observations: Observations,
    liveness: Result<Duration, Violation>,
    disk: DiskStats,
    faults_injected: usize,
}

/// Runs one seed to completion on a fresh simulated world (call from a fresh thread for
/// a run that does not depend on what ran before it).
pub fn run(options: RunOptions) -> RunReport {
    planted::plant(options.bug);
    let started = Instant::now();
    let runtime =
        madsim::runtime::Runtime::with_seed_and_config(options.seed, madsim::Config::default());
    let recorded = runtime.block_on(simulate(options));
    drop(runtime);
    let checked = Instant::now();
    let Recorded { plan, history, observations, liveness, disk, faults_injected } = recorded;
    let log = &observations.machine.log;
    let mut violations = observations.violations.clone();
    let recovery = match liveness {
        Ok(took) => Some(took),
        Err(violation) => {
            violations.push(violation);
            None
        }
    };
    violations.extend(fencing::check(log));
    violations.extend(mutual_exclusion::check(log));
    violations.extend(lease_safety::check(log, &history, plan.options.verbose));
    violations.extend(lost_ack::check(log, &history));
    violations.extend(fenced_resource::check(log, &history));
    violations.extend(watch_consistency::check(log, &history));
    violations.extend(request_ids::check(&history));
    // Operations only the log knows of: expiries and the ends of lock-delays.
    let mut expiries = resolve::expiries(log, &history);
    expiries.extend(resolve::lock_delay_ends(log));
    let operations = resolve::resolve(&history, log);
    violations.extend(linearizability::check(&operations, &expiries, plan.options.verbose));
    let check_wall = checked.elapsed();
    RunReport {
        operations: history.ops.len(),
        unknown: history.ops.len() - history.completed(),
        faults_injected,
        log_entries: log.len(),
        terms: observations.elections.terms(),
        disk,
        recovery,
        trace_hash: trace_hash(&history, &observations),
        violations,
        wall: started.elapsed(),
        check_wall,
        plan,
    }
}

async fn simulate(options: RunOptions) -> Recorded {
    lockmgr_verify::mark_start();
    let plan = Plan::draw(options);
    let observer = Observer::new(options.verbose);
    observer.note(format!("seed {}: {}", options.seed, plan.summary()));
    let handle = madsim::runtime::Handle::current();
    let cluster = Cluster::start(&handle, &plan, &observer);
    let stop_us = options.duration_s * 1_000_000;
    let shared = Arc::new(Shared {
        shape: plan.shape(),
        addresses: cluster.addresses(),
        channels: Channels::new(Duration::from_secs(1)),
        history: Mutex::new(History::default()),
        resource: Mutex::default(),
        stop_us,
    });
    let clients: Vec<_> = (0..plan.clients)
        .map(|client| cluster.client.spawn(workload::client(shared.clone(), client)))
        .collect();
    let watchers: Vec<_> = (0..workload::WATCHERS)
        .map(|watcher| cluster.client.spawn(workload::watcher(shared.clone(), watcher)))
        .collect();
    let mut nemesis = Nemesis::new(&handle, &cluster, &plan, &observer);
    nemesis.run(stop_us).await;
    nemesis.heal().await;
    for client in clients.into_iter().chain(watchers) {
        let _ = client.await;
    }
    // Leases the clients abandoned expire now, which decides their unknown requests.
    tokio::time::sleep(Duration::from_millis(plan.lease_ttl_ms.1 + 3_000)).await;
    let addresses = cluster.addresses();
    let liveness = cluster
        .client
        .spawn({
            let observer = observer.clone();
            async move { liveness::check(&addresses, &observer).await }
        })
        .await
        .expect("the probe task completes");
    observer.note(format!("liveness: {liveness:?}"));
    let history = std::mem::take(
        &mut *shared.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let disk = cluster.nodes.iter().map(|node| node.disk.stats()).sum();
    let observations = std::mem::take(&mut *observer.lock());
    let faults_injected = nemesis.injected;
    drop(nemesis);
    Recorded { plan, history, observations, liveness, disk, faults_injected }
}

fn trace_hash(history: &History, observations: &Observations) -> u64 {
    let mut hasher = DefaultHasher::new();
    history.hash(&mut hasher);
    for (index, record) in &observations.machine.log {
        index.hash(&mut hasher);
        record.applied_us.hash(&mut hasher);
        format!("{:?}{:?}", record.command, record.applied).hash(&mut hasher);
    }
    observations.trace.hash(&mut hasher);
    hasher.finish()
}
