//! A lease as the replicated state knows it: its TTL, its last remaining-TTL checkpoint,
//! and its recent replies. The paths it holds or waits for are derived from the lock
//! table (and rebuilt from it when a snapshot is restored), never encoded.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{dedup::RequestWindow, path::LockPath};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub ttl_ms: u64,
    /// The TTL a new leader must give this lease (instead of a full `ttl_ms`), as
    /// checkpointed by an earlier leader.
    pub remaining_ttl_ms: Option<u64>,
    pub requests: RequestWindow,
    #[serde(skip)]
    pub held: BTreeSet<LockPath>,
    #[serde(skip)]
    pub waiting: BTreeSet<LockPath>,
}

impl Lease {
    pub(crate) fn new(ttl_ms: u64) -> Lease {
        Lease {
            ttl_ms,
            remaining_ttl_ms: None,
            requests: RequestWindow::default(),
            held: BTreeSet::new(),
            waiting: BTreeSet::new(),
        }
    }

    pub(crate) fn lock_count(&self) -> usize {
        self.held.len() + self.waiting.len()
    }
}
