//! Watches: a watch stream shows the applied log's lock events for its path (or prefix),
//! each exactly as applied, in revision order, and none missing between two it showed or
//! between the revision it resumed from and the first it showed. A stream that cannot go
//! on must say it was compacted, never skip silently. An election's `Observe` stream is
//! held to the same rule for the events that change its leadership: grants, releases and
//! proclaims of exclusive grants (lease 0 for "nobody leads").

use std::collections::BTreeMap;

use lockmgr_core::{Event, LockMode, WatchEventKind};
use lockmgr_proto::v1::EventKind;

use super::{Violation, state_machine_safety::LogRecord};
use crate::history::History;

const NAME: &str = "watch-consistency";

/// Reported per run at most; the first ones tell the story.
const REPORTED_MAX: usize = 5;

fn wire_kind(kind: &WatchEventKind) -> i32 {
    let kind = match kind {
        WatchEventKind::Acquired { .. } => EventKind::Acquired,
        WatchEventKind::Released { .. } => EventKind::Released,
        WatchEventKind::Queued { .. } => EventKind::Queued,
        WatchEventKind::Dequeued { .. } => EventKind::Dequeued,
        WatchEventKind::Proclaimed { .. } => EventKind::Proclaimed,
    };
    kind as i32
}

pub fn check(log: &BTreeMap<u64, LogRecord>, history: &History) -> Vec<Violation> {
    // Every lock event of the applied log by revision: (path, kind, lease), and whether
    // it changes an election's leadership.
    let mut applied: BTreeMap<u64, (String, i32, i64)> = BTreeMap::new();
    let mut leadership: BTreeMap<u64, (String, i32, i64)> = BTreeMap::new();
    for event in log.values().flat_map(|record| &record.applied.events) {
        if let Event::Lock(event) = event {
            let seen = (event.path.as_str().to_owned(), wire_kind(&event.kind), event.lease_id.0);
            if event.mode == LockMode::Exclusive {
                match event.kind {
                    WatchEventKind::Acquired { .. } | WatchEventKind::Proclaimed { .. } => {
                        leadership.insert(event.revision, seen.clone());
                    }
                    WatchEventKind::Released { .. } => {
                        let nobody = (seen.0.clone(), seen.1, 0);
                        leadership.insert(event.revision, nobody);
                    }
                    WatchEventKind::Queued { .. } | WatchEventKind::Dequeued { .. } => {}
                }
            }
            applied.insert(event.revision, seen);
        }
    }
    let mut violations = Vec::new();
    for record in &history.watches {
        let applied = if record.observe { &leadership } else { &applied };
        let watched = |path: &str| {
            if record.prefix {
                path == record.target
                    || path.strip_prefix(record.target.as_str()).is_some_and(|r| r.starts_with('/'))
            } else {
                path == record.target
            }
        };
        let who = format!(
            "{} {} on {}{} from revision {}",
            if record.observe { "observer" } else { "watcher" },
            record.watcher,
            record.target,
            if record.prefix { "*" } else { "" },
            record.start_revision
        );
        let mut previous = (record.start_revision > 0).then(|| record.start_revision - 1);
        for (revision, path, kind, lease) in &record.events {
            let problem = if applied.get(revision) != Some(&(path.clone(), *kind, *lease)) {
                Some(format!(
                    "saw revision {revision} as ({path}, kind {kind}, lease {lease}); the log has {:?}",
                    applied.get(revision)
                ))
            } else if !watched(path) {
                Some(format!("saw revision {revision} of {path}, which it does not watch"))
            } else if previous.is_some_and(|previous| *revision <= previous) {
                Some(format!("saw revision {revision} after {previous:?}"))
            } else {
                previous.and_then(|previous| {
                    let skipped = applied.range(previous + 1..*revision);
                    skipped
                        .map(|(missing, (path, ..))| (missing, path))
                        .find(|(_, path)| watched(path))
                        .map(|(missing, _)| {
                            format!(
                                "skipped revision {missing} (between {previous} and {revision})"
                            )
                        })
                })
            };
            if let Some(problem) = problem {
                violations.push(Violation::new(NAME, format!("{who}: {problem}")));
                break;
            }
            previous = Some(*revision);
        }
        if violations.len() >= REPORTED_MAX {
            break;
        }
    }
    violations
}
