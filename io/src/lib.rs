//! Production adapters between openraft and the outside world: the Raft log and the
//! state machine on a [`Disk`] (fjall in production, an in-memory disk in simulation),
//! and the Raft network over tonic.

pub mod backup;
mod disk;
mod log_store;
mod mem_disk;
mod network;
mod raft_service;
mod runtime;
mod state_machine;
mod types;

pub use disk::{Disk, FjallDisk, KeyValue, Op, Space};
pub use log_store::LogStore;
pub use mem_disk::{MemDisk, MemSpaces};
pub use network::{Network, PeerClient};
pub use raft_service::PeerService;
pub use runtime::Runtime;
pub use state_machine::{ApplyObserver, NoObserver, Replica, StateMachineStore};
pub use types::{
    ApplyResult, Entry, LogId, NodeId, NodeInfo, Snapshot, SnapshotMeta, StoredMembership,
    TypeConfig, Vote,
};

/// The Raft node type for a state machine whose events go to observer `O`.
pub type Raft<O> = openraft::Raft<TypeConfig, StateMachineStore<O>>;
