//! The lockmgr server: the gRPC services over a Raft-replicated core state machine.
//!
//! `node.rs` assembles a member (disk, Raft, services); `driver.rs` runs the leader's
//! clocks; `effects.rs` follows every applied command; `service/` holds the public gRPC
//! services (`grpc_errors.rs` gives errors raised below them their detail); `forward.rs` and `proposer.rs` get requests to the leader and through Raft.

pub mod clock;
pub mod config;
#[cfg(not(madsim))]
mod connections;
pub mod context;
pub mod driver;
pub mod effects;
mod forward;
#[cfg(not(madsim))]
mod grpc_errors;
#[cfg(not(madsim))]
mod http;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod node;
mod proposer;
pub mod recovery;
mod removal;
pub mod service;
mod status;
pub mod watch_hub;

pub use config::ServerConfig;
pub use node::{NodeError, open_disk, serve, start, start_tapped};
