//! Fencing: in log order, every grant's token is above every earlier grant's token, on
//! its path and across the cluster, so no token is issued twice and none goes back after
//! a restart, a snapshot or a leader change.

use std::collections::BTreeMap;

use lockmgr_core::{Event, WatchEventKind};

use super::{Violation, state_machine_safety::LogRecord};

const NAME: &str = "fencing";

pub fn check(log: &BTreeMap<u64, LogRecord>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut highest = 0;
    let mut per_path: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, record) in log {
        for event in &record.applied.events {
            let Event::Lock(event) = event else { continue };
            let WatchEventKind::Acquired { .. } = event.kind else { continue };
            let token = event.revision;
            let path = event.path.as_str();
            let last = per_path.insert(path, token).unwrap_or(0);
            if token <= last {
                violations.push(Violation::new(
                    NAME,
                    format!("index {index}: {path} granted token {token} after token {last}"),
                ));
            } else if token <= highest {
                violations.push(Violation::new(
                    NAME,
                    format!("index {index}: token {token} issued after token {highest}"),
                ));
            }
            highest = highest.max(token);
        }
    }
    violations
}
