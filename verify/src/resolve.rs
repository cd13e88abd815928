//! Settles the client's ambiguous operations from the applied log before the
//! linearizability search: a request that timed out either appears in the log (as the
//! grant, release or revoke it asked for, at the time it was first applied) or never took
//! effect. The log is trustworthy for this because the other checkers establish it (every
//! node applied the same log; it loses no acknowledged operation; its grants are fenced and
//! exclusive). Every unknown operation is settled or dropped: the search sees none.

use std::collections::{BTreeMap, BTreeSet};

use lockmgr_core::{Command, Event, LeaseEndReason, ReleaseReason, WatchEventKind};

use crate::{
    checkers::state_machine_safety::LogRecord,
    history::{History, Op, OpKind, Outcome},
    workload::path_name,
};

/// What the applied log says each lease did: its grants (path, token, when, the request id
/// that asked for it), its releases (token, when), its revoke. A grant belongs to the
/// request that asked for it: the lock applied with it, or the one whose wait it ended (a
/// later request of the lease may have taken the wait over). Another request of the same
/// lease is never settled with it.
#[derive(Default)]
struct LogFacts {
    grants: BTreeMap<i64, Vec<(String, u64, u64, u64)>>,
    releases: BTreeMap<(i64, u64), u64>,
    revoked: BTreeMap<i64, u64>,
}

fn log_facts(log: &BTreeMap<u64, LogRecord>) -> LogFacts {
    let mut facts = LogFacts::default();
    let LogFacts { grants, releases, revoked } = &mut facts;
    let mut waits: BTreeMap<u64, u64> = BTreeMap::new();
    for record in log.values() {
        let asked = match &record.command {
            Command::Lock(request) => request.request_id,
            _ => 0,
        };
        for event in &record.applied.events {
            match event {
                Event::WaitRenewed { queued_revision, .. } => {
                    waits.insert(*queued_revision, asked);
                }
                Event::Lock(event) => match event.kind {
                    WatchEventKind::Queued { .. } => {
                        waits.insert(event.revision, asked);
                    }
                    WatchEventKind::Acquired { queued_revision } => {
                        let request_id = match queued_revision {
                            Some(queued) => waits.get(&queued).copied().unwrap_or(0),
                            None => asked,
                        };
                        let path = event.path.as_str().to_owned();
                        let grant = (path, event.revision, record.applied_us, request_id);
                        grants.entry(event.lease_id.0).or_default().push(grant);
                    }
                    WatchEventKind::Released { token, reason: ReleaseReason::Released } => {
                        releases.insert((event.lease_id.0, token), record.applied_us);
                    }
                    _ => {}
                },
                Event::LeaseEnded { lease_id, reason: LeaseEndReason::Revoked } => {
                    revoked.insert(lease_id.0, record.applied_us);
                }
                _ => {}
            }
        }
    }
    facts
}

/// The history's operations with every unknown outcome settled or the operation dropped.
pub fn resolve(history: &History, log: &BTreeMap<u64, LogRecord>) -> Vec<Op> {
    let LogFacts { grants, releases, revoked } = log_facts(log);
    let mut claimed_tokens: BTreeSet<u64> = history
        .ops
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Granted { token } => Some(token),
            _ => None,
        })
        .collect();
    let mut claimed_releases: BTreeSet<(i64, u64)> = history
        .ops
        .iter()
        .filter_map(|op| match (&op.kind, &op.outcome) {
            (OpKind::Unlock { token }, Outcome::Done) => Some((op.lease, *token)),
            _ => None,
        })
        .collect();
    let mut resolved = Vec::with_capacity(history.ops.len());
    for op in &history.ops {
        if op.outcome != Outcome::Unknown {
            resolved.push(op.clone());
            continue;
        }
        let settled = match op.kind {
            OpKind::Lock { .. } => {
                let path = path_name(op.path);
                grants
                    .get(&op.lease)
                    .and_then(|grants| {
                        grants.iter().find(|(granted_path, token, at_us, request_id)| {
                            *granted_path == path
                                && *at_us >= op.invoke_us
                                // The grant this very request caused (a repeat of the
                                // lease's lock, known to the client, may name its token
                                // too); without an id, one nobody claimed.
                                && if op.request_id == 0 {
                                    !claimed_tokens.contains(token)
                                } else {
                                    *request_id == op.request_id
                                }
                        })
                    })
                    .map(|(_, token, at_us, _)| {
                        claimed_tokens.insert(*token);
                        (Outcome::Granted { token: *token }, *at_us)
                    })
            }
            OpKind::Unlock { token } => releases
                .get(&(op.lease, token))
                .filter(|at_us| **at_us >= op.invoke_us)
                .filter(|_| claimed_releases.insert((op.lease, token)))
                .map(|at_us| (Outcome::Done, *at_us)),
            OpKind::Revoke => revoked
                .get(&op.lease)
                .filter(|at_us| **at_us >= op.invoke_us)
                .map(|at_us| (Outcome::Done, *at_us)),
            // A proclaim changes no holder: whether it took effect is not the model's.
            OpKind::Proclaim { .. }
            | OpKind::Get
            | OpKind::LeaseTtl
            | OpKind::Fence { .. }
            | OpKind::Expire { .. }
            | OpKind::EndLockDelay => None,
        };
        // Not in the log: it never took effect, so it is not part of the history.
        if let Some((outcome, at_us)) = settled {
            resolved.push(Op { outcome, complete_us: Some(at_us), ..op.clone() });
        }
    }
    resolved
}

/// Lease expiries, as operations on each of the lease's paths: they took effect between the
/// lease's grant and the first application of the `ExpireLease`.
pub fn expiries(log: &BTreeMap<u64, LogRecord>, history: &History) -> Vec<Op> {
    let mut expiries = Vec::new();
    for record in log.values() {
        for event in &record.applied.events {
            let Event::LeaseEnded { lease_id, reason: LeaseEndReason::Expired } = event else {
                continue;
            };
            let Some(lease) = history.leases.get(&lease_id.0) else { continue };
            // Not before the deadline a client was promised (lease safety checks that
            // separately), not after its first application.
            let promised_us = lease.promised_us();
            for &index in &lease.paths {
                let path = path_name(index);
                let delays = record.applied.events.iter().any(|event| {
                    matches!(event, Event::LockDelayStarted { path: delayed, .. } if delayed.as_str() == path)
                });
                expiries.push(Op {
                    client: usize::MAX,
                    path: index,
                    lease: lease_id.0,
                    kind: OpKind::Expire { delays },
                    outcome: Outcome::Done,
                    request_id: 0,
                    invoke_us: promised_us.min(record.applied_us),
                    complete_us: Some(record.applied_us),
                });
            }
        }
    }
    expiries
}

/// The ends of lock-delays, as operations on their path: after the delay began (the
/// expiry's first application), at the first application of the `EndLockDelay`.
pub fn lock_delay_ends(log: &BTreeMap<u64, LogRecord>) -> Vec<Op> {
    let mut started_us: BTreeMap<String, u64> = BTreeMap::new();
    let mut ends = Vec::new();
    for record in log.values() {
        for event in &record.applied.events {
            match event {
                Event::LockDelayStarted { path, .. } => {
                    started_us.insert(path.as_str().to_owned(), record.applied_us);
                }
                Event::LockDelayEnded { path } => {
                    let Some(index) = path_index(path.as_str()) else { continue };
                    let began_us = started_us.get(path.as_str()).copied().unwrap_or(0);
                    ends.push(Op {
                        client: usize::MAX,
                        path: index,
                        lease: 0,
                        kind: OpKind::EndLockDelay,
                        outcome: Outcome::Done,
                        request_id: 0,
                        invoke_us: began_us.min(record.applied_us),
                        complete_us: Some(record.applied_us),
                    });
                }
                _ => {}
            }
        }
    }
    ends
}

/// The workload's path number of `path` (see [`path_name`]).
fn path_index(path: &str) -> Option<usize> {
    path.strip_prefix("/sim/p")?.parse().ok()
}
