//! One run: set up the hosts, start the cluster, run the workload under the nemesis,
//! heal, check that the cluster serves and converges, stop every node cleanly, reopen
//! every data directory, check, and write the results folder. The namespaces and disks
//! are torn down whatever happens.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use lockmgr_proto::{
    Channels,
    v1::{
        LeaseGrantRequest, LeaseRevokeRequest, LockMode, LockRequest, UnlockRequest,
        lease_service_client::LeaseServiceClient, lock_service_client::LockServiceClient,
    },
};
use lockmgr_server::ServerConfig;
use lockmgr_verify::{
    checkers::Violation,
    history::{History, Outcome},
    mark_start, now_us,
    workload::{self, Shape, Shared},
};
use rand::{SeedableRng, rngs::SmallRng};

use crate::{
    Args, check,
    datadir::{self, NodeLog},
    hosts::{Disks, Hosts},
    nemesis::{Fault, Nemesis},
    net::{self, Network},
    recorder,
};

const LEASE_TTL_MS: (u64, u64) = (2_000, 4_000);
const WATCHERS: usize = 2;

pub fn main(args: &Args) -> Result<bool, String> {
    preflight()?;
    // Runs share the `lmc-*` namespace names (a run deletes what a previous one left):
    // one at a time per machine.
    let lock_path = "/run/lockmgr-chaos.lock";
    let lock = std::fs::File::create(lock_path).map_err(|e| format!("{lock_path}: {e}"))?;
    lock.try_lock().map_err(|_| {
        format!("another lockmgr-chaos run is in progress on this machine (it holds {lock_path})")
    })?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let results = args.results.clone().unwrap_or_else(|| {
        let secs =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PathBuf::from("chaos-results").join(format!("{secs}-seed{seed}"))
    });
    std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
    let results = results.canonicalize().map_err(|e| format!("{}: {e}", results.display()))?;
    let binary = match &args.lockmgr {
        Some(binary) => binary.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("lockmgr"),
    };
    if !binary.exists() {
        return Err(format!(
            "no lockmgr binary at {} (build it: cargo build -p lockmgr-cli, or pass --lockmgr)",
            binary.display()
        ));
    }
    let work = results.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let slots = args.nodes as usize;
    println!("lockmgr-chaos: seed {seed}, {slots} nodes, results in {}", results.display());
    let network = Network::create(slots)?;
    let disks = Disks::create(&work, slots, args.disk_mb, args.keep_data)?;
    net::enter_clients()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = chaos(args, seed, binary, &disks, &results) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    drop(runtime);
    // The namespaces first (whatever still runs in them is killed), then the disks.
    drop(network);
    drop(disks);
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&work);
    }
    drop(lock);
    outcome
}

fn preflight() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root: network namespaces, iptables and loop mounts".into());
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("tc", "iproute2"),
        ("mkfs.ext4", "e2fsprogs"),
    ] {
        if net::run("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            return Err(format!("{tool} is missing (apt-get install {package})"));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_lines)] // the run reads best as one story, step by step
async fn chaos(
    args: &Args,
    seed: u64,
    binary: PathBuf,
    disks: &Disks,
    results: &Path,
) -> Result<bool, String> {
    mark_start();
    let mut hosts = Hosts::new(binary, disks, results);
    for slot in 0..hosts.nodes.len() {
        hosts.start(slot)?;
    }
    if hosts.wait_for_leader(Duration::from_mins(1)).await.is_none() {
        return Err(format!(
            "no leader within 60 s of starting (see {}/node-*.log)",
            results.display()
        ));
    }
    let faults = if args.faults.is_empty() { Fault::ALL.to_vec() } else { args.faults.clone() };
    let mut nemesis = Nemesis {
        faults: faults.clone(),
        rng: SmallRng::seed_from_u64(seed),
        timeline: Vec::new(),
        injected: Vec::new(),
        crashes: Vec::new(),
        gap_ms: (1_000, 5_000),
        length_ms: (3_000, 10_000),
        pause_ms: LEASE_TTL_MS.1 + 2_000,
    };
    nemesis.note(format!(
        "cluster up; {} clients on {} paths; faults: {faults:?}",
        args.clients, args.paths
    ));
    let stop_us = now_us() + args.duration.as_micros() as u64;
    let shared = Arc::new(Shared {
        shape: Shape {
            seed,
            paths: args.paths,
            lease_ttl_ms: LEASE_TTL_MS,
            lapse_chance: 0.1,
            stall_chance: 0.1,
            stale_unlock_chance: 0.05,
        },
        addresses: hosts.addresses(),
        channels: Channels::new(Duration::from_secs(1)),
        history: Mutex::new(History::default()),
        resource: Mutex::default(),
        stop_us,
    });
    let receipts = recorder::Receipts::default();
    let recording = Arc::new(AtomicBool::new(false));
    let gaps = Arc::new(Mutex::new(0));
    let recorder = tokio::spawn(recorder::record(
        hosts.addresses(),
        receipts.clone(),
        recording.clone(),
        gaps.clone(),
    ));
    let mut tasks: Vec<_> =
        (0..args.clients).map(|c| tokio::spawn(workload::client(shared.clone(), c))).collect();
    tasks.extend((0..WATCHERS).map(|w| tokio::spawn(workload::watcher(shared.clone(), w))));

    nemesis.run(&mut hosts, stop_us).await;
    nemesis.heal(&mut hosts).await;
    for task in tasks {
        if tokio::time::timeout(Duration::from_mins(1), task).await.is_err() {
            nemesis.note("a client did not finish within 60 s of the end".into());
        }
    }
    nemesis.note("clients done; waiting for abandoned leases to expire".into());
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS.1 * 2 + 3_000)).await;

    let mut violations = Vec::new();
    let recovery = liveness(&hosts, Duration::from_secs(30)).await;
    match &recovery {
        Ok(took) => {
            nemesis.note(format!("liveness: a lock round through every node within {took:?}"));
        }
        Err(e) => violations.push(Violation::new("liveness", e.clone())),
    }
    if let Err(e) = converge(&hosts, Duration::from_secs(30)).await {
        violations.push(Violation::new("convergence", e));
    }
    recording.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), recorder).await;
    let end_us = now_us();
    nemesis.watch_crashes(&mut hosts, None);
    violations.extend(nemesis.crashes.iter().map(|c| Violation::new("crash", c.clone())));

    let mut logs: Vec<(u64, NodeLog)> = Vec::new();
    for node in &mut hosts.nodes {
        match node.stop(Duration::from_secs(15)).await {
            Some(status) if status.success() => {}
            other => violations.push(Violation::new(
                "clean-stop",
                format!("node {} did not stop cleanly on SIGTERM: {other:?}", node.id),
            )),
        }
        match datadir::read(&node.data_dir()).await {
            Ok(log) => logs.push((node.id, log)),
            Err(e) => violations.push(Violation::new("data-dirs", e)),
        }
    }
    nemesis.note(format!("every node stopped; {} data directories reopened", logs.len()));
    let history = std::mem::take(
        &mut *shared.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let receipts =
        std::mem::take(&mut *receipts.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    write_evidence(results, &history, &nemesis)?;
    let checked = Instant::now();
    let limits = ServerConfig::default().limits;
    let mut verdict = check::check(&history, &logs, &receipts, end_us, &limits);
    let check_wall = checked.elapsed();
    violations.append(&mut verdict.violations);
    verdict.violations = violations;
    let gaps = *gaps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let summary =
        summary(args, seed, &history, &nemesis, &verdict, recovery.ok(), gaps, check_wall);
    println!("{summary}");
    write_verdict(results, &verdict, &summary)?;
    Ok(verdict.violations.is_empty())
}

/// A leader, and a lease, lock, unlock and revoke through every node, within `within`.
async fn liveness(hosts: &Hosts, within: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let channels = Channels::new(Duration::from_secs(1));
    for node in &hosts.nodes {
        loop {
            let channel = channels.get(&node.client_address()).expect("valid addresses");
            let Err(last_error) = probe(channel).await else { break };
            if started.elapsed() > within {
                return Err(format!(
                    "node {} did not serve within {within:?}: {last_error}",
                    node.id
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(started.elapsed())
}

async fn probe(channel: tonic::transport::Channel) -> Result<(), String> {
    let timeout = Duration::from_secs(3);
    let mut leases = LeaseServiceClient::new(channel.clone());
    let mut locks = LockServiceClient::new(channel);
    let error = |e: tonic::Status| e.message().to_owned();
    let grant = tokio::time::timeout(timeout, leases.grant(LeaseGrantRequest { ttl_ms: 5_000 }));
    let lease = grant.await.map_err(|_| "grant timed out")?.map_err(error)?.into_inner().lease_id;
    let request = LockRequest {
        path: "/chaos/liveness".into(),
        lease_id: lease,
        mode: LockMode::Exclusive as i32,
        wait_timeout_ms: 2_000,
        holder_id: "liveness".into(),
        request_id: 1,
        permits: 0,
    };
    let lock = tokio::time::timeout(timeout, locks.lock(request));
    let granted = lock.await.map_err(|_| "lock timed out")?.map_err(error)?.into_inner();
    if !granted.acquired {
        return Err("the probe's lock was not granted".into());
    }
    let unlock = UnlockRequest {
        path: "/chaos/liveness".into(),
        lease_id: lease,
        fencing_token: granted.fencing_token,
        request_id: 2,
    };
    tokio::time::timeout(timeout, locks.unlock(unlock))
        .await
        .map_err(|_| "unlock timed out")?
        .map_err(error)?;
    let revoke = leases.revoke(LeaseRevokeRequest { lease_id: lease });
    tokio::time::timeout(timeout, revoke).await.map_err(|_| "revoke timed out")?.map_err(error)?;
    Ok(())
}

/// Every node applied everything committed, and all agree on the leader.
async fn converge(hosts: &Hosts, within: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < within {
        let mut statuses = Vec::new();
        for slot in 0..hosts.nodes.len() {
            statuses.push(hosts.status(slot).await);
        }
        let committed = statuses.iter().flatten().map(|s| s.committed_index).max().unwrap_or(0);
        let leaders: Vec<u64> = statuses.iter().flatten().map(|s| s.leader_id).collect();
        let agreed = statuses.iter().all(|s| {
            s.as_ref().is_some_and(|s| s.applied_index == committed && s.leader_id == leaders[0])
        });
        if agreed && leaders.first().is_some_and(|l| *l != 0) {
            return Ok(());
        }
        last = format!(
            "{:?}",
            statuses
                .iter()
                .map(|s| s.as_ref().map(|s| (s.leader_id, s.committed_index, s.applied_index)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("nodes did not converge within {within:?}: (leader, committed, applied) {last}"))
}

#[allow(clippy::too_many_arguments)]
fn summary(
    args: &Args,
    seed: u64,
    history: &History,
    nemesis: &Nemesis,
    verdict: &check::Verdict,
    recovery: Option<Duration>,
    gaps: u64,
    check_wall: Duration,
) -> String {
    let (mut ok, mut failed, mut unknown) = (0, 0, 0);
    for op in &history.ops {
        match op.outcome {
            Outcome::Unknown => unknown += 1,
            Outcome::Granted { .. }
            | Outcome::Done
            | Outcome::Ended
            | Outcome::Holders(_)
            | Outcome::Fence { .. }
            | Outcome::LeaseHolds { .. } => {
                ok += 1;
            }
            _ => failed += 1,
        }
    }
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    for fault in &nemesis.injected {
        *faults.entry(fault.to_string()).or_default() += 1;
    }
    let faults: Vec<String> = faults.iter().map(|(f, n)| format!("{f} {n}")).collect();
    let committed: Vec<String> =
        verdict.committed.iter().map(|(n, c)| format!("node {n}: {c}")).collect();
    let mut out = String::new();
    let mut row = |what: &str, value: String| {
        let _ = writeln!(out, "| {what} | {value} |");
    };
    row(
        "run",
        format!(
            "seed {seed}, {} nodes, {:?} under faults, {} clients on {} paths",
            args.nodes, args.duration, args.clients, args.paths
        ),
    );
    row(
        "operations",
        format!(
            "{} ({ok} ok, {failed} failed, {unknown} unknown; {} settled from the log)",
            history.ops.len(),
            verdict.settled
        ),
    );
    row(
        "leases",
        format!(
            "{} granted, {} expired, {} keepalives acknowledged",
            history.granted_leases.len(),
            verdict.expiries,
            history.leases.values().map(|l| l.keepalive_sent_us.len()).sum::<usize>()
        ),
    );
    row(
        "fenced resource",
        format!(
            "{} writes accepted, {} stale writes refused",
            history.writes.len(),
            history.rejected_writes
        ),
    );
    row(
        "watch streams",
        format!(
            "{} (the recorder received {} of the log's {} lock events; compaction gaps: {gaps})",
            history.watches.len(),
            verdict.received,
            verdict.lock_events
        ),
    );
    row("faults injected", format!("{} ({})", nemesis.injected.len(), faults.join(", ")));
    row(
        "log",
        format!("{} commands; committed index {}", verdict.log_entries, committed.join(", ")),
    );
    row(
        "recovery after healing",
        recovery.map_or("none".into(), |r| format!("{:.1} s", r.as_secs_f64())),
    );
    row(
        "checkers",
        format!("{} violations ({:.1} s)", verdict.violations.len(), check_wall.as_secs_f64()),
    );
    row("verdict", if verdict.violations.is_empty() { "PASS".into() } else { "FAIL".into() });
    let mut text = format!("| lockmgr-chaos | |\n|---|---|\n{out}");
    for violation in verdict.violations.iter().take(20) {
        let _ = writeln!(text, "  {violation}");
    }
    text
}

fn write(results: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(results.join(name), text)
        .map_err(|e| format!("{}/{name}: {e}", results.display()))
}

/// The history and the timeline, written before the checkers run (a checker that fails
/// badly still leaves the evidence).
fn write_evidence(results: &Path, history: &History, nemesis: &Nemesis) -> Result<(), String> {
    let mut ops = String::new();
    for op in &history.ops {
        let _ = writeln!(ops, "{op:?}");
    }
    for (lease, record) in &history.leases {
        let _ = writeln!(ops, "lease {lease}: {record:?}");
    }
    for write in &history.writes {
        let _ = writeln!(ops, "{write:?}");
    }
    write(results, "history.txt", &ops)?;
    let mut timeline = String::new();
    for entry in &nemesis.timeline {
        let _ = writeln!(timeline, "{:>10.3}s {}", entry.at_us as f64 / 1e6, entry.what);
    }
    write(results, "timeline.txt", &timeline)
}

fn write_verdict(results: &Path, verdict: &check::Verdict, summary: &str) -> Result<(), String> {
    let mut text = summary.to_owned();
    for violation in &verdict.violations {
        let _ = writeln!(text, "{violation}");
    }
    write(results, "verdict.txt", &text)
}
