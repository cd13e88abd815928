//! What the client commands print: one type per command's answer, serialized as one JSON
//! object with `--output json` and rendered as lines for people otherwise. Key names are
//! the same for the same concept everywhere (`fencing_token`, `lease_id`, `*_ttl_ms`),
//! enum values are lower-case words without their proto prefix (`exclusive`), and the
//! human form shows durations in human units.

use std::time::Duration;

use lockmgr_client::proto as v1;
use serde::Serialize;

/// An answer a command prints.
pub trait View: Serialize {
    /// The lines for people.
    fn human(&self) -> String;
}

/// `ms` as people read it: `10s`, `1m 30s`, `250ms`.
pub fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn name(value: Option<&str>, prefix: &str) -> String {
    value.map_or_else(|| "unknown".to_owned(), |value| crate::commands::enum_name(value, prefix))
}

pub fn mode_name(mode: i32) -> String {
    name(v1::LockMode::try_from(mode).ok().map(|m| m.as_str_name()), "LOCK_MODE_")
}

#[derive(Debug, Serialize)]
pub struct LeaseGranted {
    pub lease_id: i64,
    pub granted_ttl_ms: i64,
}

impl View for LeaseGranted {
    fn human(&self) -> String {
        format!(
            "lease {} granted, ttl {}",
            self.lease_id,
            human_ms(self.granted_ttl_ms.max(0) as u64)
        )
    }
}

/// One renewal by `lease keep-alive`.
#[derive(Debug, Serialize)]
pub struct LeaseKept {
    pub lease_id: i64,
    pub granted_ttl_ms: i64,
}

impl View for LeaseKept {
    fn human(&self) -> String {
        format!(
            "lease {} kept alive, ttl {}",
            self.lease_id,
            human_ms(self.granted_ttl_ms.max(0) as u64)
        )
    }
}

#[derive(Debug, Serialize)]
pub struct LeaseRevoked {
    pub lease_id: i64,
    pub revoked: bool,
}

impl View for LeaseRevoked {
    fn human(&self) -> String {
        format!("lease {} revoked", self.lease_id)
    }
}

#[derive(Debug, Serialize)]
pub struct LeaseTtl {
    pub lease_id: i64,
    pub remaining_ttl_ms: i64,
    pub granted_ttl_ms: i64,
    pub held_paths: Vec<String>,
    pub waiting_paths: Vec<String>,
}

impl From<v1::LeaseTimeToLiveResponse> for LeaseTtl {
    fn from(ttl: v1::LeaseTimeToLiveResponse) -> LeaseTtl {
        LeaseTtl {
            lease_id: ttl.lease_id,
            remaining_ttl_ms: ttl.remaining_ttl_ms,
            granted_ttl_ms: ttl.granted_ttl_ms,
            held_paths: ttl.held_paths,
            waiting_paths: ttl.waiting_paths,
        }
    }
}

impl View for LeaseTtl {
    fn human(&self) -> String {
        format!(
            "lease {} remaining {} of {}; holds [{}]; waits for [{}]",
            self.lease_id,
            human_ms(self.remaining_ttl_ms.max(0) as u64),
            human_ms(self.granted_ttl_ms.max(0) as u64),
            self.held_paths.join(", "),
            self.waiting_paths.join(", ")
        )
    }
}

#[derive(Debug, Serialize)]
pub struct LeaseSummary {
    pub lease_id: i64,
    pub granted_ttl_ms: i64,
    pub held_locks: u64,
    pub waiting: u64,
}

#[derive(Debug, Serialize)]
pub struct LeaseList {
    pub leases: Vec<LeaseSummary>,
    /// 0: no more.
    pub next_after_lease_id: i64,
}

impl From<v1::LeaseListResponse> for LeaseList {
    fn from(list: v1::LeaseListResponse) -> LeaseList {
        let leases = list
            .leases
            .iter()
            .map(|l| LeaseSummary {
                lease_id: l.lease_id,
                granted_ttl_ms: l.granted_ttl_ms,
                held_locks: u64::from(l.held_locks),
                waiting: u64::from(l.waiting),
            })
            .collect();
        LeaseList { leases, next_after_lease_id: list.next_after_lease_id }
    }
}

impl View for LeaseList {
    fn human(&self) -> String {
        let mut lines: Vec<String> = self
            .leases
            .iter()
            .map(|l| {
                format!(
                    "{}\tttl {}\theld {}\twaiting {}",
                    l.lease_id,
                    human_ms(l.granted_ttl_ms.max(0) as u64),
                    l.held_locks,
                    l.waiting
                )
            })
            .collect();
        if self.next_after_lease_id != 0 {
            lines.push(format!("(more: --after {})", self.next_after_lease_id));
        }
        lines.join("\n")
    }
}

#[derive(Debug, Serialize)]
pub struct Holder {
    pub lease_id: i64,
    pub holder_id: String,
    pub fencing_token: u64,
    pub mode: String,
    /// A semaphore's permits (absent for a lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permits: Option<u32>,
    pub held_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct Waiter {
    pub lease_id: i64,
    pub holder_id: String,
    pub waited_ms: u64,
    pub queued_revision: u64,
}

/// A lock; a free one has no holders and no waiters.
#[derive(Debug, Serialize)]
pub struct Lock {
    pub path: String,
    pub holders: Vec<Holder>,
    pub waiters: Vec<Waiter>,
    pub lock_delay: bool,
}

impl Lock {
    pub fn free(path: String) -> Lock {
        Lock { path, holders: Vec::new(), waiters: Vec::new(), lock_delay: false }
    }
}

impl From<&v1::LockInfo> for Lock {
    fn from(lock: &v1::LockInfo) -> Lock {
        let holders = lock
            .holders
            .iter()
            .map(|h| Holder {
                lease_id: h.lease_id,
                holder_id: h.holder_id.clone(),
                fencing_token: h.fencing_token,
                mode: mode_name(h.mode),
                permits: (h.permits > 0).then_some(h.permits),
                held_ms: h.held_ms,
            })
            .collect();
        let waiters = lock
            .waiters
            .iter()
            .map(|w| Waiter {
                lease_id: w.lease_id,
                holder_id: w.holder_id.clone(),
                waited_ms: w.waited_ms,
                queued_revision: w.queued_revision,
            })
            .collect();
        Lock { path: lock.path.clone(), holders, waiters, lock_delay: lock.lock_delay }
    }
}

impl View for Lock {
    fn human(&self) -> String {
        if self.holders.is_empty() && self.waiters.is_empty() && !self.lock_delay {
            return format!("{} is free", self.path);
        }
        let holders: Vec<String> = self
            .holders
            .iter()
            .map(|h| {
                let mode = match h.permits {
                    Some(permits) => format!("{}({permits})", h.mode),
                    None => h.mode.clone(),
                };
                format!(
                    "lease {} ({}) {} token {} held {}",
                    h.lease_id,
                    h.holder_id,
                    mode,
                    h.fencing_token,
                    human_ms(h.held_ms)
                )
            })
            .collect();
        let waiters: Vec<String> = self
            .waiters
            .iter()
            .map(|w| {
                format!("lease {} ({}) waited {}", w.lease_id, w.holder_id, human_ms(w.waited_ms))
            })
            .collect();
        format!(
            "{}\tholders [{}]\twaiters [{}]{}",
            self.path,
            holders.join("; "),
            waiters.join("; "),
            if self.lock_delay { "\tlock-delay" } else { "" }
        )
    }
}

#[derive(Debug, Serialize)]
pub struct LockList {
    pub locks: Vec<Lock>,
    /// Empty: no more.
    pub next_page_token: String,
}

impl View for LockList {
    fn human(&self) -> String {
        let mut lines: Vec<String> = self.locks.iter().map(View::human).collect();
        if !self.next_page_token.is_empty() {
            lines.push(format!("(more: --page-token {})", self.next_page_token));
        }
        lines.join("\n")
    }
}

#[derive(Debug, Serialize)]
pub struct FenceCheck {
    pub path: String,
    pub fencing_token: u64,
    pub current: bool,
    pub current_fencing_tokens: Vec<u64>,
}

impl View for FenceCheck {
    fn human(&self) -> String {
        if self.current {
            format!("token {} is current for {}", self.fencing_token, self.path)
        } else {
            format!(
                "token {} is NOT current for {} (current: {:?})",
                self.fencing_token, self.path, self.current_fencing_tokens
            )
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub node_id: u64,
    pub cluster_id: u64,
    pub leader_id: u64,
    pub raft_term: u64,
    pub revision: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub locks: u64,
    pub leases: u64,
    pub is_learner: bool,
    /// The cluster removed this member.
    pub removed: bool,
    pub version: String,
}

impl From<v1::StatusResponse> for Status {
    fn from(status: v1::StatusResponse) -> Status {
        let header = status.header.unwrap_or_default();
        Status {
            node_id: header.node_id,
            cluster_id: header.cluster_id,
            leader_id: status.leader_id,
            raft_term: header.raft_term,
            revision: header.revision,
            committed_index: status.committed_index,
            applied_index: status.applied_index,
            snapshot_index: status.snapshot_index,
            locks: status.locks,
            leases: status.leases,
            is_learner: status.is_learner,
            removed: status.removed,
            version: status.version,
        }
    }
}

impl View for Status {
    fn human(&self) -> String {
        format!(
            "node {} (cluster {}): leader {}, term {}, revision {}, committed {}, applied {}, snapshot {}, {} locks, {} leases{}{}",
            self.node_id,
            self.cluster_id,
            self.leader_id,
            self.raft_term,
            self.revision,
            self.committed_index,
            self.applied_index,
            self.snapshot_index,
            self.locks,
            self.leases,
            if self.is_learner { ", learner" } else { "" },
            if self.removed { ", REMOVED from the cluster" } else { "" }
        )
    }
}

#[derive(Debug, Serialize)]
pub struct Member {
    pub node_id: u64,
    pub peer_address: String,
    pub client_address: String,
    pub is_learner: bool,
    pub is_leader: bool,
}

#[derive(Debug, Serialize)]
pub struct Members {
    pub members: Vec<Member>,
}

impl From<&[v1::Member]> for Members {
    fn from(members: &[v1::Member]) -> Members {
        let members = members
            .iter()
            .map(|m| Member {
                node_id: m.node_id,
                peer_address: m.peer_address.clone(),
                client_address: m.client_address.clone(),
                is_learner: m.is_learner,
                is_leader: m.is_leader,
            })
            .collect();
        Members { members }
    }
}

impl View for Members {
    fn human(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "{}\tpeer {}\tclient {}\t{}{}",
                    m.node_id,
                    m.peer_address,
                    m.client_address,
                    if m.is_learner { "learner" } else { "voter" },
                    if m.is_leader { "\tleader" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Debug, Serialize)]
pub struct Leader {
    pub leader_id: u64,
}

impl View for Leader {
    fn human(&self) -> String {
        format!("node {} leads", self.leader_id)
    }
}
