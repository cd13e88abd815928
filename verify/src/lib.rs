//! The verification toolkit: what a client did (`history.rs`), the workload that does it
//! and records it (`workload.rs`), how the applied log settles what the history left
//! unknown (`resolve.rs`), and the checkers (`checkers/`, one invariant per file, as
//! `docs/invariants.md` lists them).
//!
//! Nothing here knows which runtime it runs on: the simulator (`sim/`) drives it on
//! madsim's simulated network and clock, the chaos suite (`chaos/`) on real processes.

pub mod checkers;
pub mod history;
pub mod resolve;
pub mod workload;

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
