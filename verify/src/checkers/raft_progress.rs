//! Raft's progress never goes back: within one life of a node its term, vote, commit
//! index and applied index only grow, and it never grants two votes in one term. Across a
//! restart the term may legitimately be lower than the last one reported: a vote whose
//! write was cut by the crash was never acted on (and the disk model says which writes
//! survive); what a lost vote could break, one leader per term, is checked over the whole
//! run by `election_safety.rs`.

use std::collections::BTreeMap;

use super::Violation;

const NAME: &str = "raft-progress";

/// One reading of a node's Raft metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub term: u64,
    /// The vote, as (term, committed, voted-for).
    pub vote: (u64, bool, u64),
    pub committed: u64,
    pub applied: u64,
}

#[derive(Debug, Default)]
pub struct RaftProgress {
    last: BTreeMap<u64, (u64, Progress)>,
}

impl RaftProgress {
    pub fn handle(&mut self, node: u64, incarnation: u64, now: Progress) -> Vec<Violation> {
        let mut violations = Vec::new();
        let Some((last_incarnation, last)) = self.last.insert(node, (incarnation, now)) else {
            return violations;
        };
        let went_back = |what: &str, before: u64, after: u64| {
            (after < before).then(|| {
                Violation::new(
                    NAME,
                    format!("node {node}: {what} went back from {before} to {after}"),
                )
            })
        };
        if last_incarnation != incarnation {
            return violations;
        }
        violations.extend(went_back("term", last.term, now.term));
        violations.extend(went_back("vote term", last.vote.0, now.vote.0));
        // Two granted (uncommitted) votes in one term; a vote that turns into the known
        // leader's committed vote is how Raft learns who won.
        let granted_twice = !last.vote.1 && !now.vote.1;
        if last.vote.0 == now.vote.0 && last.vote.2 != now.vote.2 && granted_twice {
            violations.push(Violation::new(
                NAME,
                format!(
                    "node {node}: voted for {} and then {} in term {}",
                    last.vote.2, now.vote.2, now.vote.0
                ),
            ));
        }
        violations.extend(went_back("commit index", last.committed, now.committed));
        violations.extend(went_back("applied index", last.applied, now.applied));
        violations
    }
}
