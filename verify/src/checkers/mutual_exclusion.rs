//! Mutual exclusion in applied order: replaying the log's grants and releases, an
//! exclusive grant is never live at the same time as another grant of its path, and
//! only live grants are released.

use std::collections::BTreeMap;

use lockmgr_core::{Event, LockMode, WatchEventKind};

use super::{Violation, state_machine_safety::LogRecord};

const NAME: &str = "mutual-exclusion";

pub fn check(log: &BTreeMap<u64, LogRecord>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut live: BTreeMap<&str, Vec<(u64, LockMode)>> = BTreeMap::new();
    for (index, record) in log {
        for event in &record.applied.events {
            let Event::Lock(event) = event else { continue };
            let path = event.path.as_str();
            let holders = live.entry(path).or_default();
            match event.kind {
                WatchEventKind::Acquired { .. } => {
                    if !event.mode.compatible_with(holders.iter().map(|(_, mode)| mode)) {
                        violations.push(Violation::new(
                            NAME,
                            format!(
                                "index {index}: {path} granted {} (token {}) while held by {holders:?}",
                                event.mode, event.revision
                            ),
                        ));
                    }
                    holders.push((event.revision, event.mode));
                }
                WatchEventKind::Released { token, .. } => {
                    let before = holders.len();
                    holders.retain(|(held, _)| *held != token);
                    if holders.len() == before {
                        violations.push(Violation::new(
                            NAME,
                            format!("index {index}: {path} released token {token}, not live"),
                        ));
                    }
                }
                WatchEventKind::Queued { .. } | WatchEventKind::Dequeued { .. } => {}
            }
        }
    }
    violations
}
