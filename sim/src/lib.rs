//! The deterministic simulator: the real server, Raft and gRPC code on madsim nodes with a
//! simulated network, disk and clock, driven by a seed. One run (`run.rs`) starts a
//! cluster (`cluster.rs`) on simulated disks (`disk.rs`), lets a workload (`workload.rs`)
//! record a client history while nemeses (`nemesis.rs`) inject the faults the seed chose
//! (`plan.rs`), heals, and hands the history and what every node applied (`observe.rs`)
//! to the checkers (`checkers/`, one invariant per file). The same seed replays the
//! same run, byte for byte.
#![cfg(madsim)]

pub mod checkers;
pub mod cli;
mod cluster;
pub mod disk;
pub mod history;
mod nemesis;
pub mod observe;
pub mod plan;
pub mod resolve;
pub mod run;
mod workload;

/// Simulated time since the start of the run, in microseconds.
pub fn now_us() -> u64 {
    START.with(|start| start.get().map_or(0, |start| start.elapsed().as_micros() as u64))
}

thread_local! {
    static START: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

fn mark_start() {
    START.with(|start| start.set(Some(std::time::Instant::now())));
}
