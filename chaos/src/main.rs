//! `lockmgr-chaos`: Jepsen-style runs of real `lockmgr server` processes, each in its own
//! network namespace, under partitions, packet loss, slow links, kills, pauses, wiped and
//! replaced nodes and a full disk, with the simulator's checkers on the recorded history
//! (see the README's "Reliability" section). Needs root (namespaces, iptables, mounts).

mod check;
mod datadir;
mod hosts;
mod nemesis;
mod net;
mod recorder;
mod run;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;

use crate::nemesis::Fault;

#[derive(Debug, Parser)]
#[command(name = "lockmgr-chaos", about = "Chaos on real lockmgr processes in network namespaces")]
pub struct Args {
    /// How long the workload runs under faults (healing and checks come after).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "90s")]
    pub duration: Duration,
    /// The long run: 30 minutes of every fault (an explicit --duration still wins).
    #[arg(long)]
    pub long: bool,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    pub nodes: u64,
    /// Seeds the fault schedule and the clients (default: from the clock). Real processes
    /// are not deterministic: the same seed gives the same schedule, not the same run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The faults to draw from, comma-separated (default: all of them).
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<Fault>,
    #[arg(long, default_value_t = 24)]
    pub clients: usize,
    /// How many lock paths the clients share (a few hot paths).
    #[arg(long, default_value_t = 4)]
    pub paths: usize,
    /// Where the run's history, timeline, verdict and server logs go (default:
    /// chaos-results/<time>-seed<N>).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// The `lockmgr` binary (default: next to this one).
    #[arg(long)]
    pub lockmgr: Option<PathBuf>,
    /// Each node's file system, in MiB.
    #[arg(long, default_value_t = 256)]
    pub disk_mb: u64,
    /// Keep the nodes' disk images after the run.
    #[arg(long)]
    pub keep_data: bool,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.long && !std::env::args().any(|a| a.starts_with("--duration")) {
        args.duration = Duration::from_mins(30);
    }
    match run::main(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("lockmgr-chaos: {error}");
            ExitCode::from(2)
        }
    }
}
