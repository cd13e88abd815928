//! The Raft type configuration: what a log entry carries (a core [`Command`]), what
//! applying it answers ([`ApplyResult`]), and what a member is ([`NodeInfo`]).

use std::fmt;

use lockmgr_core::{Command, Reply, Revision};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// lockmgr's Raft types: one leader per term (`leader_id_std`).
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = u64,
        Node = NodeInfo,
        Term = u64,
        AsyncRuntime = crate::runtime::Runtime,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
        Vote = openraft::impls::Vote<Self::LeaderId>,
        Entry = openraft::Entry<
            <Self::LeaderId as openraft::vote::RaftLeaderId>::Committed,
            openraft::EntryPayload<Command, u64, NodeInfo>,
        >,
);

pub type NodeId = u64;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// A member's addresses: where peers reach its Raft service, and where clients reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub peer_address: String,
    pub client_address: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer={} client={}", self.peer_address, self.client_address)
    }
}

/// What applying one entry answers its proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    /// `None` for entries that are not commands (blank, membership).
    pub reply: Option<Reply>,
    /// The state machine's revision after the entry.
    pub revision: Revision,
}
