//! `lockmgr-bench`: the same workloads against a lockmgr cluster and an etcd cluster,
//! both started here on loopback (3 members each, own data dirs, fsync on), with one
//! markdown table per workload (or JSON) comparing latency, throughput, server CPU and
//! memory.
//!
//! ```sh
//! apt-get install etcd-server      # etcd 3.4, for the comparison
//! cargo build --release -p lockmgr-cli -p lockmgr-bench
//! target/release/lockmgr-bench                        # every workload, both systems
//! target/release/lockmgr-bench --systems lockmgr --seconds 2 --output json
//! ```

mod etcd;
mod failover;
mod lockmgr;
mod procfs;
mod system;
mod workloads;

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::{
    etcd::Etcd,
    lockmgr::Lockmgr,
    system::{KeepaliveModel, Result, Route, Setup, System},
    workloads::{Cost, Locking, costed},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum SystemName {
    Lockmgr,
    Etcd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Workload {
    /// One client: acquire + release in a loop.
    Uncontended,
    /// `--clients` clients, each on its own path.
    Parallel,
    /// `--clients` clients on one path: hand-off rate and acquire latency.
    Contended,
    /// `--leases` leases granted and all kept alive for `--seconds`.
    Leases,
    /// Resident memory after `--paths` distinct paths locked and released, then with
    /// `--footprint-leases` live leases.
    Footprint,
    /// The leader killed `--kills` times and paused `--pauses` times: the wait for the
    /// first answered lock, and sessions of `--session-ttl-ms` lost (not run by default).
    Failover,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Parser, Serialize)]
#[command(
    about = "lockmgr and etcd side by side: lock latency, throughput, contention, leases, memory"
)]
struct Args {
    /// Systems to run, in order.
    #[arg(long, value_delimiter = ',', default_values = ["lockmgr", "etcd"])]
    systems: Vec<SystemName>,
    #[arg(long, value_delimiter = ',', default_values = ["uncontended", "parallel", "contended", "leases", "footprint"])]
    workloads: Vec<Workload>,
    /// Members per cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Length of each timed workload.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Clients of `parallel` and `contended`.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Leases of the `leases` workload.
    #[arg(long, default_value_t = 10_000)]
    leases: usize,
    /// Their TTL, in seconds.
    #[arg(long, default_value_t = 30)]
    lease_ttl_s: u64,
    /// Distinct paths the `footprint` workload locks and releases.
    #[arg(long, default_value_t = 100_000)]
    paths: usize,
    /// Live leases the `footprint` workload adds.
    #[arg(long, default_value_t = 10_000)]
    footprint_leases: usize,
    /// Leader kills (`kill -9`, then a restart) of the `failover` workload.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Leader pauses (SIGSTOP for `--pause-ms`, then SIGCONT) of the `failover` workload.
    #[arg(long, default_value_t = 5)]
    pauses: usize,
    /// The TTL of the session kept alive through each fault (2000: both systems' minimum).
    #[arg(long, default_value_t = 2_000)]
    session_ttl_ms: u64,
    /// How long each pause lasts (longer than the session's TTL).
    #[arg(long, default_value_t = 4_000)]
    pause_ms: u64,
    /// Which member each client connection talks to, the same for both systems: the
    /// leader (found when the cluster starts), or connection i to member i mod n.
    #[arg(long, value_enum, default_value = "leader")]
    route: Route,
    /// How the `leases` workload's keepalives travel, the same for both systems: one
    /// stream per worker carrying its share of the leases, or one stream per lease.
    #[arg(long, value_enum, default_value = "shared")]
    keepalive: KeepaliveModel,
    /// The etcd server binary.
    #[arg(long, default_value = "etcd")]
    etcd_binary: String,
    #[arg(long, value_enum, default_value = "table")]
    #[serde(skip)]
    output: Output,
}

/// One workload's figures for one system, in display order.
type Figures = Vec<(String, f64)>;

const MIB: f64 = 1024.0 * 1024.0;

fn ms(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

fn locking_figures(rate_name: &str, run: &Locking, cost: &Cost) -> Figures {
    vec![
        (rate_name.into(), run.acquire.len() as f64 / run.elapsed.as_secs_f64()),
        ("acquire p50 ms".into(), ms(run.acquire.value_at_quantile(0.5))),
        ("acquire p99 ms".into(), ms(run.acquire.value_at_quantile(0.99))),
        ("acquire p999 ms".into(), ms(run.acquire.value_at_quantile(0.999))),
        ("release p99 ms".into(), ms(run.release.value_at_quantile(0.99))),
        ("errors".into(), run.errors as f64),
        ("server CPU s (all members)".into(), cost.cpu.as_secs_f64()),
        ("RSS MiB (largest member)".into(), cost.rss_max as f64 / MIB),
        ("peak RSS MiB (largest member)".into(), cost.peak_rss_max as f64 / MIB),
    ]
    .into_iter()
    .chain(per_cycle(run.acquire.len(), cost))
    .collect()
}

/// The per-operation cost table: per member, averaged over the members.
fn per_cycle(operations: u64, cost: &Cost) -> Figures {
    let per_member = |total: f64| total / operations.max(1) as f64 / cost.members as f64;
    vec![
        ("per op per member: fsyncs".into(), per_member(cost.fsyncs as f64)),
        ("per op per member: KiB written".into(), per_member(cost.write_bytes as f64 / 1024.0)),
        ("per op per member: write syscalls".into(), per_member(cost.write_syscalls as f64)),
        ("per op per member: CPU ms".into(), per_member(cost.cpu.as_secs_f64() * 1_000.0)),
    ]
}

/// Runs `workload` on a fresh cluster of `system`.
async fn run_on<S: System>(system: &S, workload: Workload, args: &Args) -> Result<Figures> {
    let length = Duration::from_secs(args.seconds);
    Ok(match workload {
        Workload::Uncontended => {
            let (run, cost) = costed(
                system,
                workloads::locking(system, 1, length, |_| "/bench/uncontended".into()),
            )
            .await;
            locking_figures("lock+unlock /s", &run?, &cost)
        }
        Workload::Parallel => {
            let path = |worker| format!("/bench/parallel/{worker}");
            let (run, cost) =
                costed(system, workloads::locking(system, args.clients, length, path)).await;
            locking_figures("lock+unlock /s", &run?, &cost)
        }
        Workload::Contended => {
            let path = |_| "/bench/contended".to_string();
            let (run, cost) =
                costed(system, workloads::locking(system, args.clients, length, path)).await;
            locking_figures("hand-offs /s", &run?, &cost)
        }
        Workload::Leases => {
            let ttl = Duration::from_secs(args.lease_ttl_s);
            let (run, cost) =
                costed(system, workloads::keeping(system, args.leases, ttl, length)).await;
            let run = run?;
            vec![
                ("leases".into(), run.leases as f64),
                ("granted /s".into(), run.grant_rate),
                ("keepalives /s".into(), run.keepalive.len() as f64 / run.elapsed.as_secs_f64()),
                ("keepalive p50 ms".into(), ms(run.keepalive.value_at_quantile(0.5))),
                ("keepalive p99 ms".into(), ms(run.keepalive.value_at_quantile(0.99))),
                ("expired wrongly".into(), run.expired_wrongly as f64),
                ("lapsed (not kept up)".into(), run.lapsed as f64),
                ("not checked (no answer)".into(), run.unchecked as f64),
                ("errors".into(), run.errors as f64),
                ("server CPU s (all members)".into(), cost.cpu.as_secs_f64()),
                ("RSS MiB (largest member)".into(), cost.rss_max as f64 / MIB),
                ("peak RSS MiB (largest member)".into(), cost.peak_rss_max as f64 / MIB),
            ]
            .into_iter()
            .chain(per_cycle(run.keepalive.len(), &cost))
            .collect()
        }
        Workload::Failover => unreachable!("run() runs the failover workload"),
        Workload::Footprint => {
            let run = workloads::footprint(system, args.paths, args.footprint_leases).await?;
            vec![
                ("RSS MiB idle".into(), run.rss_idle as f64 / MIB),
                (format!("RSS MiB after {} paths", run.paths), run.rss_after_paths as f64 / MIB),
                (format!("RSS MiB with {} leases", run.leases), run.rss_with_leases as f64 / MIB),
                ("peak RSS MiB".into(), run.peak_rss as f64 / MIB),
            ]
        }
    })
}

fn failover_figures(run: &failover::FailoverRun, args: &Args) -> Figures {
    let (kill_min, kill_median, kill_max) = failover::spread(&run.kills);
    let (pause_min, pause_median, pause_max) = failover::spread(&run.pauses);
    vec![
        ("kill -9: first lock ms, min".into(), kill_min),
        ("kill -9: first lock ms, median".into(), kill_median),
        ("kill -9: first lock ms, max".into(), kill_max),
        (format!("kill -9: sessions lost (of {})", args.kills), run.sessions_lost_on_kill as f64),
        ("pause: first lock ms, min".into(), pause_min),
        ("pause: first lock ms, median".into(), pause_median),
        ("pause: first lock ms, max".into(), pause_max),
        (format!("pause: sessions lost (of {})", args.pauses), run.sessions_lost_on_pause as f64),
    ]
}

async fn run_failover<S: failover::Faulty>(system: &mut S, args: &Args) -> Result<Figures> {
    let ttl = Duration::from_millis(args.session_ttl_ms);
    let pause = Duration::from_millis(args.pause_ms);
    let run = failover::failover(system, args.kills, args.pauses, ttl, pause).await?;
    Ok(failover_figures(&run, args))
}

async fn run(name: SystemName, workload: Workload, args: &Args) -> Result<Figures> {
    if workload == Workload::Failover {
        return match name {
            SystemName::Lockmgr => run_failover(&mut Lockmgr::start(args.nodes).await?, args).await,
            SystemName::Etcd => {
                run_failover(&mut Etcd::start(&args.etcd_binary, args.nodes).await?, args).await
            }
        };
    }
    let setup = Setup { route: args.route, keepalive: args.keepalive };
    match name {
        SystemName::Lockmgr => {
            let mut system = Lockmgr::start(args.nodes).await?;
            let leader = failover::Faulty::leader(&mut system).await?;
            system.configure(setup, leader);
            run_on(&system, workload, args).await
        }
        SystemName::Etcd => {
            let mut system = Etcd::start(&args.etcd_binary, args.nodes).await?;
            let leader = failover::Faulty::leader(&mut system).await?;
            system.configure(setup, leader);
            run_on(&system, workload, args).await
        }
    }
}

fn describe(workload: Workload, args: &Args) -> String {
    match workload {
        Workload::Uncontended => {
            format!("1 client, acquire + release in a loop, {} s", args.seconds)
        }
        Workload::Parallel => {
            format!("{} clients, each on its own path, {} s", args.clients, args.seconds)
        }
        Workload::Contended => format!("{} clients on one path, {} s", args.clients, args.seconds),
        Workload::Leases => format!(
            "{} leases (TTL {} s) kept alive for {} s, one keepalive in flight per worker, 64 workers, {}",
            args.leases,
            args.lease_ttl_s,
            args.seconds,
            match args.keepalive {
                KeepaliveModel::Shared => "one stream per worker",
                KeepaliveModel::PerLease => "one stream per lease",
            }
        ),
        Workload::Footprint => format!(
            "{} distinct paths locked and released, then {} live leases",
            args.paths, args.footprint_leases
        ),
        Workload::Failover => format!(
            "idle cluster, leader killed {} times and paused {} times for {} ms; a session of {} ms kept alive through each",
            args.kills, args.pauses, args.pause_ms, args.session_ttl_ms
        ),
    }
}

#[derive(Serialize)]
struct Report<'a> {
    unix_time: u64,
    cpus: usize,
    args: &'a Args,
    results: BTreeMap<SystemName, BTreeMap<Workload, BTreeMap<String, f64>>>,
}

fn table(
    workload: Workload,
    args: &Args,
    results: &BTreeMap<(SystemName, Workload), Figures>,
) -> String {
    let mut out = format!("### {workload:?}: {}\n\n", describe(workload, args)).to_lowercase();
    let systems: Vec<SystemName> =
        args.systems.iter().copied().filter(|s| results.contains_key(&(*s, workload))).collect();
    let Some(first) = systems.first() else { return out };
    let names: Vec<&String> = results[&(*first, workload)].iter().map(|(name, _)| name).collect();
    let header: Vec<String> = systems.iter().map(|s| format!("{s:?}").to_lowercase()).collect();
    let both = systems.len() == 2;
    let _ = writeln!(
        out,
        "| | {} |{}",
        header.join(" | "),
        if both { " lockmgr ÷ etcd |" } else { "" }
    );
    let _ =
        writeln!(out, "|---|{}{}", "---:|".repeat(systems.len()), if both { "---:|" } else { "" });
    for (row, name) in names.iter().enumerate() {
        let values: Vec<f64> = systems.iter().map(|s| results[&(*s, workload)][row].1).collect();
        let cells: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
        let ratio = match values.as_slice() {
            [a, b] if *b != 0.0 => format!(" {:.2}x |", a / b),
            [_, _] => " - |".into(),
            _ => String::new(),
        };
        let _ = writeln!(out, "| {name} | {} |{ratio}", cells.join(" | "));
    }
    out
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut results: BTreeMap<(SystemName, Workload), Figures> = BTreeMap::new();
    let mut failed = false;
    for &workload in &args.workloads {
        for &system in &args.systems {
            eprintln!("running {workload:?} on {system:?}...");
            match run(system, workload, &args).await {
                Ok(figures) => {
                    results.insert((system, workload), figures);
                }
                Err(error) => {
                    eprintln!("{system:?} {workload:?} failed: {error}");
                    failed = true;
                }
            }
        }
    }
    match args.output {
        Output::Table => {
            println!(
                "lockmgr-bench: {} members per cluster on loopback, fsync on, {} CPUs; every \
                 client connection of both systems to {} (its library's connection plus one \
                 channel for bare keepalives)\n",
                args.nodes,
                std::thread::available_parallelism().map_or(0, usize::from),
                match args.route {
                    Route::Leader => "the leader",
                    Route::Spread => "member i mod n (followers forward)",
                }
            );
            for &workload in &args.workloads {
                println!("{}", table(workload, &args, &results));
            }
        }
        Output::Json => {
            let mut nested: BTreeMap<SystemName, BTreeMap<Workload, BTreeMap<String, f64>>> =
                BTreeMap::new();
            for ((system, workload), figures) in &results {
                nested
                    .entry(*system)
                    .or_default()
                    .insert(*workload, figures.iter().cloned().collect());
            }
            let report = Report {
                unix_time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                cpus: std::thread::available_parallelism().map_or(0, usize::from),
                args: &args,
                results: nested,
            };
            println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
        }
    }
    // A lease lost while it was kept alive is a safety failure, not a slow result.
    let lost = results.get(&(SystemName::Lockmgr, Workload::Leases)).and_then(|figures| {
        figures.iter().find(|(name, _)| name == "expired wrongly").map(|(_, value)| *value)
    });
    if let Some(lost) = lost.filter(|lost| *lost > 0.0) {
        eprintln!("lockmgr expired {lost} leases that were kept alive");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
}
