//! Exactly-once: each lease remembers the replies to its most recent request ids, so a
//! proposal retried after a lost reply (or a leader change) is answered, not re-applied.
//! Ids need not arrive in order (a client may have several requests in flight), but an
//! id older than everything remembered is refused rather than guessed at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{reply::Reply, types::RequestId};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestWindow {
    replies: BTreeMap<RequestId, Reply>,
    /// Ids below this were forgotten.
    floor: RequestId,
}

pub(crate) enum Seen {
    New,
    Repeat(Reply),
    TooOld { oldest_kept: RequestId },
}

impl RequestWindow {
    pub(crate) fn check(&self, request_id: RequestId) -> Seen {
        if request_id == 0 {
            return Seen::New;
        }
        if let Some(reply) = self.replies.get(&request_id) {
            return Seen::Repeat(reply.clone());
        }
        if request_id < self.floor {
            return Seen::TooOld { oldest_kept: self.floor };
        }
        Seen::New
    }

    pub(crate) fn record(&mut self, request_id: RequestId, reply: &Reply, capacity: usize) {
        if request_id == 0 {
            return;
        }
        self.replies.insert(request_id, reply.clone());
        while self.replies.len() > capacity {
            let (forgotten, _) = self.replies.pop_first().expect("len > capacity >= 1");
            self.floor = self.floor.max(forgotten + 1);
        }
    }

    /// A queued request's final outcome replaces its `Queued` reply, so a retry learns
    /// how the wait ended.
    pub(crate) fn resolve(&mut self, request_id: RequestId, reply: Reply) {
        if let Some(slot) = self.replies.get_mut(&request_id) {
            *slot = reply;
        }
    }
}
