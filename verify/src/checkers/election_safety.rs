//! Election safety: at most one leader per term, over the whole run (restarts included).

use std::collections::BTreeMap;

use super::Violation;

const NAME: &str = "election-safety";

#[derive(Debug, Default)]
pub struct ElectionSafety {
    leader_of_term: BTreeMap<u64, u64>,
}

impl ElectionSafety {
    /// `node` reports that it leads `term`.
    pub fn handle_leader(&mut self, node: u64, term: u64) -> Option<Violation> {
        let leader = *self.leader_of_term.entry(term).or_insert(node);
        (leader != node).then(|| {
            Violation::new(NAME, format!("nodes {leader} and {node} both led term {term}"))
        })
    }

    pub fn terms(&self) -> usize {
        self.leader_of_term.len()
    }
}
