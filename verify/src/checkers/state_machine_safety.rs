//! State machine safety: no two nodes apply different commands (or get different
//! outcomes) at the same log index, and no node applies an index twice in one life or
//! skips back. The first application of each index is kept: it is the run's applied log,
//! which the fencing, mutual exclusion, lease safety and lost-acknowledgement checkers read.

use std::collections::BTreeMap;

use lockmgr_core::{Applied, Command};

use super::Violation;

const NAME: &str = "state-machine-safety";

/// An index as first applied.
#[derive(Clone, Debug)]
pub struct LogRecord {
    pub command: Command,
    pub applied: Applied,
    pub node: u64,
    /// When it was first applied, in simulated microseconds.
    pub applied_us: u64,
}

#[derive(Debug, Default)]
pub struct StateMachineSafety {
    pub log: BTreeMap<u64, LogRecord>,
    last_index: BTreeMap<u64, (u64, u64)>,
}

impl StateMachineSafety {
    pub fn handle_applied(
        &mut self,
        node: u64,
        incarnation: u64,
        index: u64,
        command: &Command,
        applied: &Applied,
        now_us: u64,
    ) -> Option<Violation> {
        if let Some((last_incarnation, last)) = self.last_index.insert(node, (incarnation, index))
            && last_incarnation == incarnation
            && index <= last
        {
            return Some(Violation::new(
                NAME,
                format!("node {node} applied index {index} after index {last}"),
            ));
        }
        match self.log.get(&index) {
            None => {
                let record = LogRecord {
                    command: command.clone(),
                    applied: applied.clone(),
                    node,
                    applied_us: now_us,
                };
                self.log.insert(index, record);
                None
            }
            Some(first) if first.command != *command => Some(Violation::new(
                NAME,
                format!(
                    "index {index}: node {} applied {:?}, node {node} applied {command:?}",
                    first.node, first.command
                ),
            )),
            Some(first) if first.applied != *applied => Some(Violation::new(
                NAME,
                format!(
                    "index {index} ({command:?}): node {} got {:?}, node {node} got {applied:?}",
                    first.node, first.applied
                ),
            )),
            Some(_) => None,
        }
    }
}
