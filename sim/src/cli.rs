//! `lockmgr-sim`'s command line: one seed, a sweep, a verbose replay, a determinism check,
//! the regression seeds, and the planted-bug self-test.

use std::{
    ops::Range,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use lockmgr_core::planted::PlantedBug;

use crate::{
    plan::RunOptions,
    run::{RunReport, run},
};

/// The seeds found failing once, replayed on every CI run (the file holds the history).
const REGRESSIONS: &str = include_str!("../regression-seeds.txt");

#[derive(Debug, Parser)]
#[command(
    name = "lockmgr-sim",
    version,
    about = "Seeded chaos runs of the real lockmgr server under madsim"
)]
struct Cli {
    /// Run one seed.
    #[arg(long, conflicts_with_all = ["seeds", "reproduce"])]
    seed: Option<u64>,
    /// Run a sweep of seeds, e.g. `0..200`.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Replay one seed with a verbose trace of what happened.
    #[arg(long, conflicts_with = "seeds")]
    reproduce: Option<u64>,
    /// Simulated seconds of faults and workload per seed.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// Run every seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Also run the regression seeds (sim/regression-seeds.txt).
    #[arg(long)]
    regressions: bool,
    /// Plant a known bug (see --self-test).
    #[arg(long, value_parser = parse_bug)]
    plant: Option<PlantedBug>,
    /// Plant each known bug in turn; each must be caught within --self-test-seeds seeds.
    #[arg(long)]
    self_test: bool,
    #[arg(long, default_value_t = 50)]
    self_test_seeds: u64,
    /// Internal: run the one seed given and report it on a machine-readable line.
    #[arg(long, hide = true)]
    child: bool,
    /// Seeds run in parallel, each in a process of its own.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    jobs: usize,
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text.split_once("..").ok_or("expected A..B")?;
    let start: u64 = start.parse().map_err(|e| format!("{start:?}: {e}"))?;
    let end: u64 = end.parse().map_err(|e| format!("{end:?}: {e}"))?;
    if start >= end {
        return Err(format!("the range {start}..{end} is empty"));
    }
    Ok(start..end)
}

fn parse_bug(text: &str) -> Result<PlantedBug, String> {
    PlantedBug::ALL.into_iter().find(|bug| bug.name() == text).ok_or_else(|| {
        let names: Vec<_> = PlantedBug::ALL.iter().map(|bug| bug.name()).collect();
        format!("unknown bug {text:?}; known: {}", names.join(", "))
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = |seed| RunOptions {
        seed,
        nodes: cli.nodes as usize,
        duration_s: cli.duration,
        verbose: false,
        bug: cli.plant,
    };
    if cli.child {
        let Some(seed) = cli.seed else { return ExitCode::from(2) };
        let report = run_in_thread(options(seed));
        print_line(&report);
        for violation in &report.violations {
            println!("  {violation}");
        }
        println!(
            "REPORT {} {} {} {:016x}",
            report.operations,
            report.check_wall.as_micros(),
            report.passed(),
            report.trace_hash
        );
        return ExitCode::SUCCESS;
    }
    if cli.self_test {
        return self_test(&cli);
    }
    if let Some(seed) = cli.reproduce {
        // The servers' own logs (warnings and up, or as RUST_LOG says), in simulated time.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
        let report = run_in_thread(RunOptions { verbose: true, ..options(seed) });
        print_report(&report);
        return verdict(!report.passed(), &cli);
    }
    let mut runs: Vec<RunOptions> = Vec::new();
    if let Some(seed) = cli.seed {
        runs.push(options(seed));
    }
    if let Some(seeds) = &cli.seeds {
        runs.extend(seeds.clone().map(options));
    }
    if cli.regressions {
        runs.extend(regression_seeds());
    }
    if runs.is_empty() {
        eprintln!("nothing to run: give --seed N, --seeds A..B, --regressions or --self-test");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let results = sweep(&runs, cli.jobs, cli.check_determinism);
    summarize(&results, started.elapsed());
    verdict(results.iter().any(|result| !result.passed), &cli)
}

fn regression_seeds() -> Vec<RunOptions> {
    REGRESSIONS
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let fields: Vec<u64> =
                line.split_whitespace().map(|f| f.parse().expect("numbers")).collect();
            RunOptions {
                seed: fields[0],
                nodes: fields[1] as usize,
                duration_s: fields[2],
                verbose: false,
                bug: None,
            }
        })
        .collect()
}

/// A run on a thread of its own: madsim's and the harness's thread-locals start fresh.
fn run_in_thread(options: RunOptions) -> RunReport {
    std::thread::Builder::new()
        .name(format!("seed-{}", options.seed))
        .stack_size(64 << 20)
        .spawn(move || run(options))
        .expect("spawning a thread")
        .join()
        .unwrap_or_else(|_| panic!("seed {} panicked; replay: {}", options.seed, replay(&options)))
}

/// One seed's outcome, as its process reported it.
struct SeedResult {
    options: RunOptions,
    operations: usize,
    check: Duration,
    passed: bool,
    trace_hash: String,
    /// What the run printed (its line and its violations).
    output: String,
}

/// Runs one seed in a process of its own: some libraries keep process-wide state (tokio's
/// seed counter for `select!`) that would make a seed's run depend on the runs before it.
fn run_child(options: &RunOptions) -> SeedResult {
    let exe = std::env::current_exe().expect("the simulator's own path");
    let mut command = std::process::Command::new(exe);
    command.args(["--child", "--seed", &options.seed.to_string()]);
    command.args([
        "--nodes",
        &options.nodes.to_string(),
        "--duration",
        &options.duration_s.to_string(),
    ]);
    if let Some(bug) = options.bug {
        command.args(["--plant", bug.name()]);
    }
    let output = command.output().expect("running a seed's process");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = stdout.lines().find_map(|line| line.strip_prefix("REPORT "));
    let fields: Vec<&str> = report.map(|r| r.split_whitespace().collect()).unwrap_or_default();
    let printed: String =
        stdout.lines().filter(|l| !l.starts_with("REPORT ")).map(|l| format!("{l}\n")).collect();
    match fields.as_slice() {
        [operations, check_us, passed, hash] => SeedResult {
            options: *options,
            operations: operations.parse().unwrap_or(0),
            check: Duration::from_micros(check_us.parse().unwrap_or(0)),
            passed: *passed == "true",
            trace_hash: (*hash).to_owned(),
            output: printed,
        },
        _ => SeedResult {
            options: *options,
            operations: 0,
            check: Duration::ZERO,
            passed: false,
            trace_hash: String::new(),
            output: format!(
                "seed {} crashed ({}):\n{printed}{}",
                options.seed,
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        },
    }
}

fn sweep(runs: &[RunOptions], jobs: usize, twice: bool) -> Vec<SeedResult> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(options) = runs.get(i) else { break };
                    let mut result = run_child(options);
                    if twice {
                        let again = run_child(options);
                        if again.trace_hash != result.trace_hash {
                            result.passed = false;
                            result.output.push_str(&format!(
                                "  [determinism] trace hash {} then {}\n",
                                result.trace_hash, again.trace_hash
                            ));
                        }
                    }
                    print!(
                        "{}",
                        result.output.lines().next().map(|l| format!("{l}\n")).unwrap_or_default()
                    );
                    results.lock().expect("no panics while held").push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("no panics while held");
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}

pub fn replay(options: &RunOptions) -> String {
    let plant = options.bug.map(|bug| format!(" --plant {}", bug.name())).unwrap_or_default();
    format!(
        "RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim cargo run --release -p lockmgr-sim -- --reproduce {} --nodes {} --duration {}{plant}",
        options.seed, options.nodes, options.duration_s
    )
}

fn print_line(report: &RunReport) {
    let options = &report.plan.options;
    println!(
        "seed {:>6}  {} nodes  {:>6} ops ({:>4} unknown)  {:>3} faults  {:>6} entries  {:>3} terms  check {:>6.1} ms  run {:>6.2} s  {:016x}  {}",
        options.seed,
        options.nodes,
        report.operations,
        report.unknown,
        report.faults_injected,
        report.log_entries,
        report.terms,
        report.check_wall.as_secs_f64() * 1e3,
        report.wall.as_secs_f64(),
        report.trace_hash,
        if report.passed() { "ok" } else { "FAILED" }
    );
}

fn print_report(report: &RunReport) {
    println!("{}", report.plan.summary());
    println!("disk: {:?}", report.disk);
    println!("recovered after healing in {:?}", report.recovery);
    print_line(report);
    for violation in &report.violations {
        println!("  {violation}");
    }
}

fn summarize(results: &[SeedResult], took: Duration) {
    let failed: Vec<&SeedResult> = results.iter().filter(|r| !r.passed).collect();
    let operations: usize = results.iter().map(|r| r.operations).sum();
    let check_max = results.iter().map(|r| r.check).max().unwrap_or_default();
    println!();
    println!("| seeds | passed | failed | seeds/min | ops/seed (mean) | checker max |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.1} | {} | {:.0} ms |",
        results.len(),
        results.len() - failed.len(),
        failed.len(),
        results.len() as f64 / took.as_secs_f64() * 60.0,
        operations / results.len().max(1),
        check_max.as_secs_f64() * 1e3
    );
    for result in failed {
        println!();
        print!("{}", result.output);
        println!("  replay: {}", replay(&result.options));
    }
}

fn verdict(failed: bool, cli: &Cli) -> ExitCode {
    // With a bug planted, being caught is the expected outcome.
    if failed == cli.plant.is_none() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn self_test(cli: &Cli) -> ExitCode {
    let mut all_caught = true;
    println!("| planted bug | caught at seed | by |");
    println!("|---|---|---|");
    for bug in PlantedBug::ALL {
        let mut caught = None;
        let seeds: Vec<u64> = (0..cli.self_test_seeds).collect();
        for batch in seeds.chunks(cli.jobs.max(1)) {
            let runs: Vec<RunOptions> = batch
                .iter()
                .map(|&seed| RunOptions {
                    seed,
                    nodes: cli.nodes as usize,
                    duration_s: cli.duration,
                    verbose: false,
                    bug: Some(bug),
                })
                .collect();
            let results = std::thread::scope(|scope| {
                let handles: Vec<_> =
                    runs.iter().map(|options| scope.spawn(|| run_child(options))).collect();
                handles.into_iter().map(|h| h.join().expect("no panics")).collect::<Vec<_>>()
            });
            if let Some(result) = results.iter().find(|result| !result.passed) {
                // Every checker that saw it, in the order they reported.
                let mut by: Vec<&str> = Vec::new();
                let checkers = result
                    .output
                    .lines()
                    .filter_map(|line| line.trim().strip_prefix('[')?.split(']').next());
                for checker in checkers {
                    if !by.contains(&checker) {
                        by.push(checker);
                    }
                }
                let by = if by.is_empty() { "a crash".to_owned() } else { by.join(", ") };
                caught = Some((result.options.seed, by));
                break;
            }
        }
        match caught {
            Some((seed, checker)) => println!("| {} | {seed} | {checker} |", bug.name()),
            None => {
                all_caught = false;
                println!("| {} | NOT CAUGHT in {} seeds | |", bug.name(), cli.self_test_seeds);
            }
        }
    }
    if all_caught { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
