//! The verdict: every node's committed log replayed through core's state machine (as the
//! server applies it) and compared index by index, then the simulator's checkers on that
//! log and the client history: fencing, mutual exclusion, lease safety, no lost
//! acknowledgement, the fenced resource, watch consistency, and per-path linearizability
//! (timed-out requests settled from the log first). Each log index's time is the first
//! receipt of a revision at or after it (see `recorder.rs`), or the end of the run.

use std::collections::BTreeMap;

use lockmgr_core::{Event, Limits, StateMachine};
use lockmgr_verify::{
    checkers::{
        Violation, fenced_resource, fencing, lease_safety, linearizability, lost_ack,
        mutual_exclusion, request_ids,
        state_machine_safety::{LogRecord, StateMachineSafety},
        watch_consistency,
    },
    history::History,
    resolve,
};

use crate::datadir::NodeLog;

#[derive(Debug, Default)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    pub log_entries: usize,
    pub committed: BTreeMap<u64, u64>,
    pub expiries: usize,
    pub settled: usize,
    /// The log's lock events, and how many of them the recorder received.
    pub lock_events: usize,
    pub received: usize,
}

/// `logs`: (node id, its committed log); `end_us`: when the run stopped recording. The
/// logs may end at different indexes (a follower learns the commit index a heartbeat
/// late, and nodes stop one after another): they must agree where they overlap, and the
/// longest is the run's log. That every node caught up is checked on the live cluster.
pub fn check(
    history: &History,
    logs: &[(u64, NodeLog)],
    receipts: &BTreeMap<u64, u64>,
    end_us: u64,
    limits: &Limits,
) -> Verdict {
    let mut verdict = Verdict::default();
    let Some((_, longest)) = logs.iter().max_by_key(|(_, log)| log.committed) else {
        verdict.violations.push(Violation::new("data-dirs", "no node's log could be read"));
        return verdict;
    };
    let (times, lock_events, received) = apply_times(longest, receipts, end_us, limits);
    verdict.lock_events = lock_events;
    verdict.received = received;
    let mut machine = StateMachineSafety::default();
    for (node, log) in logs {
        verdict.committed.insert(*node, log.committed);
        let mut replica = StateMachine::new(limits.clone());
        for (index, command) in &log.commands {
            let applied = replica.apply(command);
            let at_us = times.get(index).copied().unwrap_or(end_us);
            if let Some(violation) =
                machine.handle_applied(*node, 1, *index, command, &applied, at_us)
            {
                verdict.violations.push(violation);
            }
        }
    }
    if lock_events > 0 && received == 0 {
        verdict.violations.push(Violation::new(
            "recorder",
            format!("the recorder received none of the log's {lock_events} lock events"),
        ));
    }
    let log: &BTreeMap<u64, LogRecord> = &machine.log;
    verdict.log_entries = log.len();
    verdict.violations.extend(fencing::check(log));
    verdict.violations.extend(mutual_exclusion::check(log));
    verdict.violations.extend(lease_safety::check(log, history, true));
    verdict.violations.extend(lost_ack::check(log, history));
    verdict.violations.extend(fenced_resource::check(log, history));
    verdict.violations.extend(watch_consistency::check(log, history));
    verdict.violations.extend(request_ids::check(history));
    let mut expiries = resolve::expiries(log, history);
    let operations = resolve::resolve(history, log);
    verdict.expiries = expiries.len();
    expiries.extend(resolve::lock_delay_ends(log));
    verdict.settled = operations.len() - history.completed().min(operations.len());
    verdict.violations.extend(linearizability::check(&operations, &expiries, true));
    verdict
}

/// An upper bound of when each index took effect: the earliest receipt of a revision
/// created at it or at any later index (indexes take effect in order).
fn apply_times(
    log: &NodeLog,
    receipts: &BTreeMap<u64, u64>,
    end_us: u64,
    limits: &Limits,
) -> (BTreeMap<u64, u64>, usize, usize) {
    let mut replica = StateMachine::new(limits.clone());
    let mut received: Vec<(u64, u64)> = Vec::with_capacity(log.commands.len());
    let (mut lock_events, mut matched) = (0, 0);
    for (index, command) in &log.commands {
        let applied = replica.apply(command);
        let mut first = u64::MAX;
        for event in &applied.events {
            if let Event::Lock(event) = event {
                lock_events += 1;
                if let Some(at_us) = receipts.get(&event.revision) {
                    matched += 1;
                    first = first.min(*at_us);
                }
            }
        }
        received.push((*index, first));
    }
    let mut times = BTreeMap::new();
    let mut bound = end_us;
    for (index, first) in received.into_iter().rev() {
        bound = bound.min(first);
        times.insert(index, bound);
    }
    (times, lock_events, matched)
}

#[cfg(test)]
mod tests {
    use lockmgr_core::{Command, LeaseId, LockMode, LockPath, LockRequest, PathRules};
    use lockmgr_verify::history::Write;

    use super::*;

    fn lock(path: &str, lease: i64) -> Command {
        Command::Lock(LockRequest {
            path: LockPath::parse(path, PathRules::default()).expect("a valid path"),
            lease_id: LeaseId(lease),
            mode: LockMode::Exclusive,
            wait_timeout_ms: 0,
            holder_id: "test".into(),
            request_id: 1,
        })
    }

    /// Two leases, each granted /sim/p0 in turn (the second after the first's revoke).
    fn log() -> NodeLog {
        let commands = vec![
            Command::GrantLease { ttl_ms: 5_000 },
            Command::GrantLease { ttl_ms: 5_000 },
            lock("/sim/p0", 1),
            Command::RevokeLease { lease_id: LeaseId(1) },
            lock("/sim/p0", 2),
        ];
        NodeLog { committed: 5, commands: (1..).zip(commands).collect() }
    }

    fn revisions(log: &NodeLog) -> Vec<u64> {
        let mut machine = StateMachine::new(Limits::default());
        let mut revisions = Vec::new();
        for (_, command) in &log.commands {
            for event in machine.apply(command).events {
                if let Event::Lock(event) = event {
                    revisions.push(event.revision);
                }
            }
        }
        revisions
    }

    #[test]
    fn an_index_took_effect_by_the_first_receipt_of_a_revision_at_or_after_it() {
        let log = log();
        let revisions = revisions(&log);
        // Only the revoke's release was received (at 700); the last grant never was.
        let receipts = BTreeMap::from([(revisions[1], 700)]);
        let (times, events, received) = apply_times(&log, &receipts, 9_000, &Limits::default());
        assert_eq!((events, received), (revisions.len(), 1));
        assert_eq!(times.values().copied().collect::<Vec<_>>(), vec![700, 700, 700, 700, 9_000]);
    }

    #[test]
    fn the_same_log_on_every_node_and_a_clean_history_pass() {
        let receipts = revisions(&log()).into_iter().map(|r| (r, 1)).collect();
        let logs = [(1, log()), (2, log())];
        let verdict = check(&History::default(), &logs, &receipts, 1, &Limits::default());
        assert_eq!(verdict.violations, Vec::new());
        // A recorder that received nothing is a broken harness, not a pass.
        let blind = check(&History::default(), &logs, &BTreeMap::new(), 1, &Limits::default());
        let checkers: Vec<&str> = blind.violations.iter().map(|v| v.checker).collect();
        assert_eq!(checkers, vec!["recorder"]);
        assert_eq!(verdict.log_entries, 5);
    }

    #[test]
    fn nodes_that_disagree_at_an_index_and_a_write_with_a_token_never_granted_fail_the_run() {
        let mut other = log();
        other.commands[3].1 = Command::RevokeLease { lease_id: LeaseId(2) };
        let mut behind = log();
        behind.commands.pop();
        behind.committed = 4;
        let token = revisions(&log())[0];
        let mut history = History::default();
        history.writes.push(Write { path: 0, token: token + 100, lease: 1, at_us: 10 });
        let logs = [(1, log()), (2, behind), (3, other)];
        let verdict = check(&history, &logs, &BTreeMap::new(), 1, &Limits::default());
        let checkers: Vec<&str> = verdict.violations.iter().map(|v| v.checker).collect();
        assert!(checkers.contains(&"state-machine-safety"), "{:?}", verdict.violations);
        assert!(checkers.contains(&"fenced-resource"), "{:?}", verdict.violations);
        assert!(!checkers.contains(&"convergence"), "a node behind is no violation");
    }
}
