//! The deterministic simulator: the real server, Raft and gRPC code on madsim nodes with a
//! simulated network, disk and clock, driven by a seed. One run (`run.rs`) starts a
//! cluster (`cluster.rs`) on simulated disks (`disk.rs`), lets the workload of
//! `lockmgr-verify` record a client history while nemeses (`nemesis.rs`) inject the
//! faults the seed chose (`plan.rs`), heals, probes liveness (`liveness.rs`), and hands
//! the history and what every node applied (`observe.rs`) to verify's checkers. The same
//! seed replays the same run, byte for byte.
//!
//! Everything here exists only in a `--cfg madsim` build.

#[cfg(madsim)]
pub mod cli;
#[cfg(madsim)]
mod cluster;
#[cfg(madsim)]
pub mod disk;
#[cfg(madsim)]
mod liveness;
#[cfg(madsim)]
mod nemesis;
#[cfg(madsim)]
pub mod observe;
#[cfg(madsim)]
pub mod plan;
#[cfg(madsim)]
pub mod run;
