//! The fenced resource: the writes it accepted carry non-decreasing tokens, a token is
//! never written by two leases, and every token written was granted, exclusively, on that
//! path to that lease in the applied log. A holder paused past its lease must be refused.

use std::collections::{BTreeMap, BTreeSet};

use lockmgr_core::{Event, LockMode, WatchEventKind};

use super::{Violation, state_machine_safety::LogRecord};
use crate::{history::History, workload::path_name};

const NAME: &str = "fenced-resource";

pub fn check(log: &BTreeMap<u64, LogRecord>, history: &History) -> Vec<Violation> {
    let mut grants = BTreeSet::new();
    for event in log.values().flat_map(|record| &record.applied.events) {
        if let Event::Lock(event) = event
            && matches!(event.kind, WatchEventKind::Acquired { .. })
            && event.mode == LockMode::Exclusive
        {
            grants.insert((event.path.as_str().to_owned(), event.lease_id.0, event.revision));
        }
    }
    let mut violations = Vec::new();
    let mut last: BTreeMap<usize, (u64, i64)> = BTreeMap::new();
    for write in &history.writes {
        if let Some((token, lease)) = last.insert(write.path, (write.token, write.lease)) {
            if write.token < token {
                violations.push(Violation::new(
                    NAME,
                    format!("path {} accepted token {} after {token}", write.path, write.token),
                ));
            } else if write.token == token && write.lease != lease {
                violations.push(Violation::new(
                    NAME,
                    format!(
                        "path {}: leases {lease} and {} both wrote with token {token}",
                        write.path, write.lease
                    ),
                ));
            }
        }
        if !grants.contains(&(path_name(write.path), write.lease, write.token)) {
            violations.push(Violation::new(
                NAME,
                format!("{write:?}: no such exclusive grant in the log"),
            ));
        }
    }
    violations
}
