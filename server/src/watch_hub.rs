//! Fan-out of watch events: a bounded history for replays from an older revision, and a
//! broadcast for live events. A watcher that asks for a revision older than the history,
//! or falls further behind than the broadcast buffer, is told it was compacted, never
//! silently skipped.

use std::{collections::VecDeque, sync::Arc};

use lockmgr_core::{Revision, WatchEvent};
use tokio::sync::broadcast;

pub struct WatchHub {
    history: VecDeque<Arc<WatchEvent>>,
    history_max: usize,
    /// Events at or below this revision are no longer available.
    compacted_revision: Revision,
    live: broadcast::Sender<Arc<WatchEvent>>,
    buffer_events: usize,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub")
            .field("compacted_revision", &self.compacted_revision)
            .finish_non_exhaustive()
    }
}

/// The start revision asked for is gone; the oldest that can be replayed is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted {
    pub oldest_revision: Revision,
}

#[derive(Debug)]
pub struct Subscription {
    pub replay: Vec<Arc<WatchEvent>>,
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
}

impl WatchHub {
    pub fn new(history_max: usize, buffer_events: usize) -> WatchHub {
        let (live, _) = broadcast::channel(buffer_events);
        WatchHub {
            history: VecDeque::new(),
            history_max,
            compacted_revision: 0,
            live,
            buffer_events,
        }
    }

    pub fn publish(&mut self, event: &WatchEvent) {
        let event = Arc::new(event.clone());
        self.history.push_back(event.clone());
        while self.history.len() > self.history_max {
            let dropped = self.history.pop_front().expect("longer than its maximum");
            self.compacted_revision = dropped.revision;
        }
        // No receivers is fine: nobody is watching.
        let _ = self.live.send(event);
    }

    /// The state was replaced (a snapshot at `revision`): earlier events are gone, and
    /// live watchers are cut off (they are told they were compacted) rather than left to
    /// miss the events the snapshot skipped (found by the simulator's watch checker).
    pub fn reset(&mut self, revision: Revision) {
        self.history.clear();
        self.compacted_revision = revision;
        self.live = broadcast::channel(self.buffer_events).0;
    }

    /// New events only, from now.
    pub fn live(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.live.subscribe()
    }

    /// Events from `start_revision` on (0: only new ones), then live ones.
    pub fn subscribe(&self, start_revision: Revision) -> Result<Subscription, Compacted> {
        let live = self.live.subscribe();
        if start_revision == 0 {
            return Ok(Subscription { replay: Vec::new(), live });
        }
        if start_revision <= self.compacted_revision {
            return Err(Compacted { oldest_revision: self.compacted_revision + 1 });
        }
        let replay =
            self.history.iter().filter(|event| event.revision >= start_revision).cloned().collect();
        Ok(Subscription { replay, live })
    }
}
