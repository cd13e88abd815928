//! The deterministic simulator: the real server, Raft and gRPC code on madsim nodes with a
//! simulated network, disk and clock, driven by a seed. One run (`run.rs`) starts a
//! cluster (`cluster.rs`) on simulated disks (`disk.rs`), lets a workload (`workload.rs`)
//! record a client history while nemeses (`nemesis.rs`) inject the faults the seed chose
//! (`plan.rs`), heals, and hands the history and what every node applied (`observe.rs`)
//! to the checkers (`checkers/`, one invariant per file). The same seed replays the
//! same run, byte for byte.
//!
//! The history, the workload and the checkers that read a finished history do not need
//! the simulation: the chaos suite on real processes (`chaos/`) runs them too.

pub mod checkers;
pub mod history;
pub mod resolve;
pub mod workload;

#[cfg(madsim)]
pub mod cli;
#[cfg(madsim)]
mod cluster;
#[cfg(madsim)]
pub mod disk;
#[cfg(madsim)]
mod nemesis;
#[cfg(madsim)]
pub mod observe;
#[cfg(madsim)]
pub mod plan;
#[cfg(madsim)]
pub mod run;

/// Time since the start of the run (`mark_start` on this thread), in microseconds:
/// simulated time in the simulator, real time elsewhere.
pub fn now_us() -> u64 {
    START.with(|start| start.get().map_or(0, |start| start.elapsed().as_micros() as u64))
}

thread_local! {
    static START: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

pub fn mark_start() {
    START.with(|start| start.set(Some(std::time::Instant::now())));
}
