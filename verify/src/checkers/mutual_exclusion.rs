//! Mutual exclusion in applied order: replaying the log's grants and releases, an
//! exclusive grant (an election's leader among them) is never live at the same time as
//! another grant of its path, a semaphore never has more live grants than its permits
//! (nor a grant of other permits beside them), only live grants are released, and only a
//! live grant proclaims. The rule is written out here, not borrowed from core.

use std::collections::BTreeMap;

use lockmgr_core::{Event, LockMode, WatchEventKind};

use super::{Violation, state_machine_safety::LogRecord};

const NAME: &str = "mutual-exclusion";

/// Whether a grant in `mode` may join the live `holders` of its path.
fn admits(mode: LockMode, holders: &[(u64, LockMode)]) -> bool {
    match mode {
        LockMode::Exclusive => holders.is_empty(),
        LockMode::Shared => holders.iter().all(|(_, held)| *held == LockMode::Shared),
        LockMode::Semaphore { permits } => {
            holders.iter().all(|(_, held)| *held == mode) && holders.len() < permits as usize
        }
    }
}

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
                    if !admits(event.mode, holders) {
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
                WatchEventKind::Proclaimed { token } => {
                    if !holders.iter().any(|(held, _)| *held == token) {
                        violations.push(Violation::new(
                            NAME,
                            format!("index {index}: {path} proclaimed by token {token}, not live"),
                        ));
                    }
                }
                WatchEventKind::Queued { .. } | WatchEventKind::Dequeued { .. } => {}
            }
        }
    }
    violations
}
