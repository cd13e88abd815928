//! No lost acknowledgement: every grant, release, revoke and lease a client was told
//! succeeded is in the applied log (which every node agrees on, and which the liveness
//! check makes every node reach).

use std::collections::{BTreeMap, BTreeSet};

use lockmgr_core::{Event, LeaseEndReason, ReleaseReason, WatchEventKind};

use super::{Violation, state_machine_safety::LogRecord};
use crate::history::{History, OpKind, Outcome};

const NAME: &str = "lost-ack";

pub fn check(log: &BTreeMap<u64, LogRecord>, history: &History) -> Vec<Violation> {
    let mut acquired = BTreeSet::new();
    let mut released = BTreeSet::new();
    let mut granted = BTreeSet::new();
    let mut revoked = BTreeSet::new();
    for event in log.values().flat_map(|record| &record.applied.events) {
        match event {
            Event::Lock(event) => match event.kind {
                WatchEventKind::Acquired { .. } => {
                    acquired.insert((event.lease_id.0, event.revision));
                }
                WatchEventKind::Released { token, reason: ReleaseReason::Released } => {
                    released.insert((event.lease_id.0, token));
                }
                _ => {}
            },
            Event::LeaseGranted { lease_id, .. } => {
                granted.insert(lease_id.0);
            }
            Event::LeaseEnded { lease_id, reason: LeaseEndReason::Revoked } => {
                revoked.insert(lease_id.0);
            }
            _ => {}
        }
    }
    let mut violations = Vec::new();
    let mut lost = |what: String| violations.push(Violation::new(NAME, what));
    for (lease, at_us) in &history.granted_leases {
        if !granted.contains(lease) {
            lost(format!("lease {lease} granted at {at_us}us is not in the log"));
        }
    }
    for op in &history.ops {
        let found = match (&op.kind, &op.outcome) {
            (OpKind::Lock { .. }, Outcome::Granted { token }) => {
                acquired.contains(&(op.lease, *token))
            }
            (OpKind::Unlock { token }, Outcome::Done) => released.contains(&(op.lease, *token)),
            (OpKind::Revoke, Outcome::Done) => revoked.contains(&op.lease),
            _ => true,
        };
        if !found {
            lost(format!("acknowledged {op:?} is not in the log"));
        }
    }
    violations
}
