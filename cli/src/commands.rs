//! The client subcommands of `lockmgr`, through the client library. Human output by
//! default, `--output json` for scripts.

use std::{io::Write, process::ExitCode, time::Duration};

use lockmgr_client::{Client, ClientConfig, Error, proto as v1};
use serde_json::{Value, json};

use crate::{
    args::{ClusterCommand, FenceCommand, LeaseCommand, LocksCommand, Output},
    exit::{EXIT_FAILURE, EXIT_NOT_CURRENT},
};

/// The client commands' time limits (`--dial-timeout`, `--command-timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub dial: Duration,
    pub command: Duration,
}

/// `HOSTNAME-PID`, with the machine's real host name (shells do not export `$HOSTNAME`).
fn default_holder_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

#[derive(Debug)]
pub struct Ctl {
    pub client: Client,
    pub output: Output,
}

impl Ctl {
    pub fn new(endpoints: Vec<String>, output: Output, timeouts: Timeouts) -> Result<Ctl, Error> {
        let mut config = ClientConfig::new(endpoints);
        config.connect_timeout = timeouts.dial;
        config.unreachable_budget = Some(timeouts.dial);
        config.retry_budget = timeouts.command;
        config.holder_id = default_holder_id();
        Ok(Ctl { client: Client::new(config)?, output })
    }

    pub(crate) fn print(&self, human: impl FnOnce() -> String, json: impl FnOnce() -> Value) {
        match self.output {
            Output::Human => write_stdout(&human()),
            Output::Json => write_stdout(&json().to_string()),
        }
    }

    pub async fn lease(&self, command: LeaseCommand) -> Result<(), Error> {
        match command {
            LeaseCommand::Grant { ttl } => {
                let granted = self.client.grant_lease(ttl).await?;
                note_ttl(ttl, Duration::from_millis(granted.ttl_ms.max(0) as u64));
                self.print(
                    || format!("lease {} granted, ttl {} ms", granted.lease_id, granted.ttl_ms),
                    || json!({"lease_id": granted.lease_id, "ttl_ms": granted.ttl_ms}),
                );
            }
            LeaseCommand::Revoke { lease_id } => {
                self.client.revoke_lease(lease_id).await?;
                self.print(
                    || format!("lease {lease_id} revoked"),
                    || json!({"lease_id": lease_id, "revoked": true}),
                );
            }
            LeaseCommand::Ttl { lease_id } => {
                let ttl = self.client.time_to_live(lease_id).await?;
                self.print(
                    || {
                        format!(
                            "lease {} remaining {} ms of {} ms; holds [{}]; waits for [{}]",
                            ttl.lease_id,
                            ttl.remaining_ttl_ms,
                            ttl.granted_ttl_ms,
                            ttl.held_paths.join(", "),
                            ttl.waiting_paths.join(", ")
                        )
                    },
                    || {
                        json!({"lease_id": ttl.lease_id, "remaining_ttl_ms": ttl.remaining_ttl_ms,
                        "granted_ttl_ms": ttl.granted_ttl_ms, "held_paths": ttl.held_paths,
                        "waiting_paths": ttl.waiting_paths})
                    },
                );
            }
            LeaseCommand::List { after, limit } => {
                let list = self.client.leases(after, limit).await?;
                self.print(
                    || {
                        let mut lines: Vec<String> = list
                            .leases
                            .iter()
                            .map(|l| format!("{}\tttl {} ms\theld {}\twaiting {}", l.lease_id, l.granted_ttl_ms, l.held_locks, l.waiting))
                            .collect();
                        if list.next_after_lease_id != 0 {
                            lines.push(format!("(more: --after {})", list.next_after_lease_id));
                        }
                        lines.join("\n")
                    },
                    || {
                        let leases: Vec<Value> = list.leases.iter().map(|l| json!({"lease_id": l.lease_id,
                            "granted_ttl_ms": l.granted_ttl_ms, "held_locks": l.held_locks, "waiting": l.waiting})).collect();
                        json!({"leases": leases, "next_after_lease_id": list.next_after_lease_id})
                    },
                );
            }
        }
        Ok(())
    }

    pub async fn locks(&self, command: LocksCommand) -> Result<(), Error> {
        match command {
            LocksCommand::Get { path } => {
                let lock = self.client.get_lock(&path).await?.lock;
                self.print(
                    || lock.as_ref().map_or_else(|| format!("{path} is free"), human_lock),
                    || lock.as_ref().map_or(Value::Null, json_lock),
                );
            }
            LocksCommand::List { prefix, page_token, limit } => {
                let list = self.client.list_locks(&prefix, &page_token, limit).await?;
                self.print(
                    || {
                        let mut lines: Vec<String> = list.locks.iter().map(human_lock).collect();
                        if !list.next_page_token.is_empty() {
                            lines.push(format!("(more: --page-token {})", list.next_page_token));
                        }
                        lines.join("\n")
                    },
                    || json!({"locks": list.locks.iter().map(json_lock).collect::<Vec<_>>(), "next_page_token": list.next_page_token}),
                );
            }
        }
        Ok(())
    }

    pub async fn fence(
        &self,
        FenceCommand::Check { path, token }: FenceCommand,
    ) -> Result<ExitCode, Error> {
        let check = self.client.validate_fence(&path, token).await?;
        self.print(
            || {
                if check.valid {
                    format!("token {token} is current for {path}")
                } else {
                    format!("token {token} is NOT current for {path} (current: {:?})", check.current_tokens)
                }
            },
            || json!({"path": path, "token": token, "valid": check.valid, "current_tokens": check.current_tokens}),
        );
        Ok(if check.valid { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_CURRENT) })
    }

    pub async fn cluster(&self, command: ClusterCommand) -> Result<(), Error> {
        match command {
            ClusterCommand::Status => {
                let status = self.client.status().await?;
                let header = status.header.unwrap_or_default();
                self.print(
                    || format!(
                        "node {} (cluster {}): leader {}, term {}, revision {}, committed {}, applied {}, snapshot {}, {} locks, {} leases{}",
                        header.node_id, header.cluster_id, status.leader_id, header.raft_term, header.revision,
                        status.committed_index, status.applied_index, status.snapshot_index, status.locks, status.leases,
                        if status.is_learner { ", learner" } else { "" }
                    ),
                    || json!({"node_id": header.node_id, "cluster_id": header.cluster_id, "leader_id": status.leader_id,
                        "raft_term": header.raft_term, "revision": header.revision, "committed_index": status.committed_index,
                        "applied_index": status.applied_index, "snapshot_index": status.snapshot_index,
                        "locks": status.locks, "leases": status.leases, "is_learner": status.is_learner, "version": status.version}),
                );
            }
            ClusterCommand::Members => self.print_members(&self.client.members().await?.members),
            ClusterCommand::Add { node_id, peer_address, client_address, learner } => {
                let request = v1::AddMemberRequest {
                    node_id,
                    peer_address,
                    client_address,
                    learner_only: learner,
                };
                self.print_members(&self.client.add_member(request).await?.members);
            }
            ClusterCommand::Remove { node_id } => {
                self.print_members(&self.client.remove_member(node_id).await?.members);
            }
            ClusterCommand::TransferLeader { node_id } => {
                let leader = self.client.transfer_leader(node_id).await?.leader_id;
                self.print(|| format!("node {leader} leads"), || json!({"leader_id": leader}));
            }
        }
        Ok(())
    }

    fn print_members(&self, members: &[v1::Member]) {
        self.print(
            || {
                members
                    .iter()
                    .map(|m| format!("{}\tpeer {}\tclient {}\t{}{}", m.node_id, m.peer_address, m.client_address,
                        if m.is_learner { "learner" } else { "voter" }, if m.is_leader { "\tleader" } else { "" }))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            || json!(members.iter().map(|m| json!({"node_id": m.node_id, "peer_address": m.peer_address,
                "client_address": m.client_address, "is_learner": m.is_learner, "is_leader": m.is_leader})).collect::<Vec<_>>()),
        );
    }
}

/// One line on stdout. A reader that went away (`lockmgr lease list | head -1`) ends
/// the command quietly, as it ends `cat`: there is nobody left to tell.
pub fn write_stdout(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("lockmgr: cannot write to stdout: {error}");
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    }
}

/// The cluster clamps TTLs to its limits; say so rather than run with another TTL in
/// silence.
pub fn note_ttl(asked: Duration, granted: Duration) {
    if asked != granted {
        eprintln!(
            "lockmgr: note: the cluster granted a TTL of {}, not {} (its limits)",
            humantime::format_duration(granted),
            humantime::format_duration(asked)
        );
    }
}

/// A proto enum value as JSON shows it: `LOCK_MODE_EXCLUSIVE` is `exclusive`.
pub fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

fn human_lock(lock: &v1::LockInfo) -> String {
    let holders: Vec<String> = lock
        .holders
        .iter()
        .map(|h| {
            format!(
                "lease {} ({}) token {} held {} ms",
                h.lease_id, h.holder_id, h.fencing_token, h.held_ms
            )
        })
        .collect();
    let waiters: Vec<String> = lock
        .waiters
        .iter()
        .map(|w| format!("lease {} ({}) waited {} ms", w.lease_id, w.holder_id, w.waited_ms))
        .collect();
    format!(
        "{}\tholders [{}]\twaiters [{}]{}",
        lock.path,
        holders.join("; "),
        waiters.join("; "),
        if lock.lock_delay { "\tlock-delay" } else { "" }
    )
}

fn json_lock(lock: &v1::LockInfo) -> Value {
    json!({
        "path": lock.path,
        "holders": lock.holders.iter().map(|h| json!({"lease_id": h.lease_id, "holder_id": h.holder_id,
            "fencing_token": h.fencing_token, "mode": v1::LockMode::try_from(h.mode).map_or("?", |m| m.as_str_name()), "held_ms": h.held_ms})).collect::<Vec<_>>(),
        "waiters": lock.waiters.iter().map(|w| json!({"lease_id": w.lease_id, "holder_id": w.holder_id,
            "waited_ms": w.waited_ms, "queued_revision": w.queued_revision})).collect::<Vec<_>>(),
        "lock_delay": lock.lock_delay,
    })
}
