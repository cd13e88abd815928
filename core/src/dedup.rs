//! Exactly-once: each lease remembers its most recent request ids, each bound to the
//! request it named (operation, path, mode or token) and to its reply, so a proposal
//! retried after a lost reply (or a leader change) is answered, not re-applied. An id
//! that arrives again with a different request is refused: it must never get another
//! request's answer. Ids need not arrive in order (a client may have several requests
//! in flight), but an id older than everything remembered is refused rather than
//! guessed at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    path::LockPath,
    planted::{PlantedBug, planted},
    reply::Reply,
    types::{FencingToken, LockMode, RequestId},
};

/// What a request id was used for: a retry must name the same thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RequestKey {
    Lock { path: LockPath, mode: LockMode },
    Unlock { path: LockPath, token: FencingToken },
    Proclaim { path: LockPath, token: FencingToken, value: String },
}

impl std::fmt::Display for RequestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestKey::Lock { path, mode } => write!(f, "a {mode} lock of {path}"),
            RequestKey::Unlock { path, token } => write!(f, "an unlock of {path} (token {token})"),
            RequestKey::Proclaim { path, token, .. } => {
                write!(f, "a proclaim on {path} (token {token})")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    key: RequestKey,
    reply: Reply,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RequestWindow {
    replies: BTreeMap<RequestId, Remembered>,
    /// Ids below this were forgotten.
    floor: RequestId,
}

pub(crate) enum Seen {
    New,
    Repeat(Reply),
    /// The id is remembered for another request.
    Reused {
        first: RequestKey,
    },
    TooOld {
        oldest_kept: RequestId,
    },
}

impl RequestWindow {
    pub(crate) fn check(&self, request_id: RequestId, key: &RequestKey) -> Seen {
        if request_id == 0 {
            return Seen::New;
        }
        if let Some(remembered) = self.replies.get(&request_id) {
            if remembered.key != *key && !planted(PlantedBug::RequestIdIgnoresRequest) {
                return Seen::Reused { first: remembered.key.clone() };
            }
            return Seen::Repeat(remembered.reply.clone());
        }
        if request_id < self.floor {
            return Seen::TooOld { oldest_kept: self.floor };
        }
        Seen::New
    }

    pub(crate) fn record(
        &mut self,
        request_id: RequestId,
        key: RequestKey,
        reply: &Reply,
        capacity: usize,
    ) {
        if request_id == 0 {
            return;
        }
        self.replies.insert(request_id, Remembered { key, reply: reply.clone() });
        while self.replies.len() > capacity {
            let (forgotten, _) = self.replies.pop_first().expect("len > capacity >= 1");
            self.floor = self.floor.max(forgotten + 1);
        }
    }

    /// A queued request's final outcome replaces its `Queued` reply, so a retry learns
    /// how the wait ended.
    pub(crate) fn resolve(&mut self, request_id: RequestId, reply: Reply) {
        if let Some(remembered) = self.replies.get_mut(&request_id) {
            remembered.reply = reply;
        }
    }

    /// The reply remembered for `request_id`, if any.
    pub(crate) fn reply(&self, request_id: RequestId) -> Option<&Reply> {
        self.replies.get(&request_id).map(|remembered| &remembered.reply)
    }
}
