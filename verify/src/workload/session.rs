//! One lease's session: the steps a client takes on its paths (locks, unlocks, reads,
//! fenced writes, a misused request id now and then), each retried as a real client
//! retries, each recorded in the history with its request id and outcome.

use std::{collections::BTreeMap, time::Duration};

use lockmgr_core::LockMode;
use lockmgr_proto::{
    error_detail,
    v1::{
        ErrorReason, GetLockRequest, LeaderKey, LeaderRequest, LeaseRevokeRequest,
        LeaseTimeToLiveRequest, ListLocksRequest, LockRequest, ProclaimRequest, ReadConsistency,
        ResignRequest, UnlockRequest, ValidateFenceRequest,
        election_service_client::ElectionServiceClient, lease_service_client::LeaseServiceClient,
        lock_service_client::LockServiceClient,
    },
};
use rand::{RngExt, rngs::SmallRng};
use tonic::transport::Channel;

use super::{
    CALL_TIMEOUT, Shared, Via, call, call_status, core_mode, lock_once, path_name, path_permits,
    proto_mode,
};
use crate::{
    history::{Misuse, Op, OpKind, Outcome},
    now_us,
};

pub(super) struct Session<'a> {
    /// The lease's last request id: retries of a request reuse its id, so the state
    /// machine answers them instead of applying them twice.
    pub(super) request_id: u64,
    pub(super) shared: &'a Shared,
    pub(super) rng: &'a mut SmallRng,
    pub(super) client: usize,
    pub(super) lease: i64,
    /// The path of the step at hand, one of `paths`, the lease's paths.
    pub(super) path: usize,
    pub(super) paths: Vec<usize>,
    pub(super) ttl_ms: u64,
    /// The last request the state machine decided: its id, and the mode if it was a lock
    /// (an unlock otherwise). A misuse reuses its id for another request.
    pub(super) last_decided: Option<(u64, Option<LockMode>)>,
}

/// Chance that a blocking lock's first attempt is abandoned while it waits.
const IMPATIENT_CHANCE: f64 = 0.2;
/// Chance that a blocking lock is joined by a try-lock of the same lease meanwhile.
const SECOND_REQUEST_CHANCE: f64 = 0.15;
/// Chance that a step reuses the last request id for another request.
const MISUSE_CHANCE: f64 = 0.05;
/// Chance that a blocking exclusive lock is an election's campaign, its unlock a
/// resignation, a read of its holder the election's `Leader`.
const ELECTION_CHANCE: f64 = 0.3;
/// Chance that another lock is sent as a `LockStream`.
const STREAM_CHANCE: f64 = 0.2;

impl Session<'_> {
    fn next_request_id(&mut self) -> u64 {
        self.request_id += 1;
        self.request_id
    }

    /// Attempts for a retried request: as long as the lease could still be alive.
    fn retries(&self) -> u32 {
        let attempt_ms = CALL_TIMEOUT.as_millis() as u64;
        (self.ttl_ms * 2 / attempt_ms).max(2) as u32
    }

    /// Runs `attempt` against a random member until its outcome is definite, at most
    /// `attempts` times. A retry that finds the lease gone cannot tell whether an earlier
    /// attempt took effect: it answers `gone_on_retry`.
    async fn until_definite<F, Fut>(
        &mut self,
        attempts: u32,
        gone_on_retry: Outcome,
        mut attempt: F,
    ) -> Outcome
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let mut outcome = Outcome::Unknown;
        for n in 0..attempts {
            outcome = attempt(self.shared.channel(self.rng)).await;
            if n > 0 && outcome == Outcome::LeaseGone {
                outcome = gone_on_retry.clone();
            }
            if outcome != Outcome::Unknown {
                break;
            }
        }
        outcome
    }

    fn record(&self, kind: OpKind, outcome: Outcome, request_id: u64, invoke_us: u64) {
        self.record_at(kind, outcome, request_id, invoke_us, now_us());
    }

    fn record_at(
        &self,
        kind: OpKind,
        outcome: Outcome,
        request_id: u64,
        invoke_us: u64,
        at_us: u64,
    ) {
        let complete_us = (outcome != Outcome::Unknown).then_some(at_us);
        let op = Op {
            client: self.client,
            path: self.path,
            lease: self.lease,
            kind,
            outcome,
            request_id,
            invoke_us,
            complete_us,
        };
        self.shared.history().ops.push(op);
    }

    fn locks(&mut self) -> LockServiceClient<Channel> {
        LockServiceClient::new(self.shared.channel(self.rng))
    }

    /// Operations on the lease's path; `false` if the lease was abandoned.
    pub(super) async fn run(&mut self) -> bool {
        // Per path: the grant held, and the tokens of earlier grants.
        let mut grants: BTreeMap<usize, (u64, LockMode)> = BTreeMap::new();
        let mut olds: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for _ in 0..self.rng.random_range(3..20) {
            if now_us() >= self.shared.stop_us {
                break;
            }
            let think_ms = self.rng.random_range(0..10);
            tokio::time::sleep(Duration::from_millis(think_ms)).await;
            self.path = self.paths[self.rng.random_range(0..self.paths.len())];
            let held = grants.get(&self.path).copied();
            let old_tokens = olds.get(&self.path).cloned().unwrap_or_default();
            let stale = !old_tokens.is_empty()
                && self.rng.random_bool(self.shared.shape.stale_unlock_chance);
            if self.last_decided.is_some() && self.rng.random_bool(MISUSE_CHANCE) {
                self.misuse().await;
                continue;
            }
            let outcome = if stale {
                let token = old_tokens[self.rng.random_range(0..old_tokens.len())];
                self.unlock(token, false).await
            } else if let Some((token, mode)) = held {
                match self.rng.random_range(0..10) {
                    0..=5 => {
                        let resign =
                            mode == LockMode::Exclusive && self.rng.random_bool(ELECTION_CHANCE);
                        let outcome = self.unlock(token, resign).await;
                        if outcome == Outcome::Done {
                            grants.remove(&self.path);
                            olds.entry(self.path).or_default().push(token);
                        }
                        outcome
                    }
                    6 if self.rng.random_bool(0.3) => self.lease_ttl().await,
                    6 => self.read().await,
                    7 if mode == LockMode::Exclusive && self.rng.random_bool(ELECTION_CHANCE) => {
                        let token = if old_tokens.is_empty() || self.rng.random_bool(0.8) {
                            token
                        } else {
                            old_tokens[self.rng.random_range(0..old_tokens.len())]
                        };
                        self.proclaim(token).await
                    }
                    7 => {
                        let token = if old_tokens.is_empty() || self.rng.random_bool(0.5) {
                            token
                        } else {
                            old_tokens[self.rng.random_range(0..old_tokens.len())]
                        };
                        self.fence(token).await
                    }
                    _ => {
                        if mode == LockMode::Exclusive {
                            self.write(token).await;
                        }
                        Outcome::Done
                    }
                }
            } else {
                let wait_ms = self.rng.random_range(200..2_000);
                let (mode, wait_ms) = match self.rng.random_range(0..10) {
                    0..=2 => (LockMode::Exclusive, 0),
                    3 | 4 => (LockMode::Shared, 0),
                    5..=7 => (LockMode::Exclusive, wait_ms),
                    8 => (LockMode::Shared, wait_ms),
                    _ => {
                        if self.rng.random_bool(0.5) {
                            self.read().await;
                        } else {
                            // A token this lease never held: stale, or never granted.
                            let token = self.rng.random_range(1..1_000_000);
                            self.fence(token).await;
                        }
                        continue;
                    }
                };
                // A semaphore path is asked for with its permits, whatever the mode drawn.
                let mode = match path_permits(self.path, self.shared.shape.paths) {
                    Some(permits) => LockMode::Semaphore { permits },
                    None => mode,
                };
                let outcome = self.lock(mode, wait_ms).await;
                if let Outcome::Granted { token } = outcome {
                    grants.insert(self.path, (token, mode));
                }
                outcome
            };
            if matches!(outcome, Outcome::Unknown | Outcome::LeaseGone) {
                return false;
            }
        }
        true
    }

    async fn lock(&mut self, mode: LockMode, wait_timeout_ms: u64) -> Outcome {
        let request_id = self.next_request_id();
        let request = self.lock_request(mode, wait_timeout_ms, request_id);
        let invoke_us = now_us();
        let timeout = CALL_TIMEOUT + Duration::from_millis(wait_timeout_ms);
        // A blocking lock's first attempt is sometimes abandoned while it waits; the
        // retry, at once and with the same id, must find the wait.
        let via = if wait_timeout_ms > 0
            && mode == LockMode::Exclusive
            && self.rng.random_bool(ELECTION_CHANCE)
        {
            Via::Campaign
        } else if self.rng.random_bool(STREAM_CHANCE) {
            Via::Stream
        } else {
            Via::Lock
        };
        let impatient = (wait_timeout_ms > 0 && self.rng.random_bool(IMPATIENT_CHANCE))
            .then(|| Duration::from_millis(self.rng.random_range(50..=wait_timeout_ms)));
        // Meanwhile the lease sometimes asks again with a try-lock (a new request).
        let second =
            (wait_timeout_ms > 0 && self.rng.random_bool(SECOND_REQUEST_CHANCE)).then(|| {
                let delay = Duration::from_millis(self.rng.random_range(20..400));
                let request_id = self.next_request_id();
                let request = self.lock_request(mode, 0, request_id);
                (delay, request, self.shared.channel(self.rng))
            });
        let mut attempt = 0;
        let blocking = self.until_definite(self.retries(), Outcome::Unknown, |channel| {
            let request = request.clone();
            attempt += 1;
            let limit = if attempt == 1 { impatient.unwrap_or(timeout) } else { timeout };
            async move { lock_once(channel, request, limit, via).await }
        });
        let second = async move {
            let (delay, request, channel) = second?;
            tokio::time::sleep(delay).await;
            let invoke_us = now_us();
            let request_id = request.request_id;
            let outcome = lock_once(channel, request, CALL_TIMEOUT, Via::Lock).await;
            Some((outcome, request_id, invoke_us, now_us()))
        };
        let (outcome, second) = futures_util::future::join(blocking, second).await;
        let kind = OpKind::Lock { mode, wait: wait_timeout_ms > 0 };
        self.record(kind, outcome.clone(), request_id, invoke_us);
        if outcome != Outcome::Unknown {
            self.last_decided = Some((request_id, Some(mode)));
        }
        if let Some((second, second_id, invoke_us, complete_us)) = second {
            let kind = OpKind::Lock { mode, wait: false };
            self.record_at(kind, second, second_id, invoke_us, complete_us);
        }
        outcome
    }

    fn lock_request(&self, mode: LockMode, wait_timeout_ms: u64, request_id: u64) -> LockRequest {
        let (mode, permits) = proto_mode(mode);
        LockRequest {
            path: path_name(self.path),
            lease_id: self.lease,
            mode,
            wait_timeout_ms,
            holder_id: format!("c{}", self.client),
            request_id,
            permits,
        }
    }

    /// Unlocks `token`'s grant (as an election's `Resign` if `resign`).
    async fn unlock(&mut self, token: u64, resign: bool) -> Outcome {
        let request_id = self.next_request_id();
        let request = UnlockRequest {
            path: path_name(self.path),
            lease_id: self.lease,
            fencing_token: token,
            request_id,
        };
        let invoke_us = now_us();
        let outcome = self
            .until_definite(self.retries(), Outcome::Unknown, |channel| {
                let request = request.clone();
                async move {
                    let done = if resign {
                        let leader = LeaderKey {
                            name: request.path,
                            lease_id: request.lease_id,
                            fencing_token: request.fencing_token,
                        };
                        let resign =
                            ResignRequest { leader: Some(leader), request_id: request.request_id };
                        call(ElectionServiceClient::new(channel).resign(resign)).await.map(drop)
                    } else {
                        call(LockServiceClient::new(channel).unlock(request)).await.map(drop)
                    };
                    match done {
                        Ok(()) => Outcome::Done,
                        Err(outcome) => outcome,
                    }
                }
            })
            .await;
        self.record(OpKind::Unlock { token }, outcome.clone(), request_id, invoke_us);
        if outcome != Outcome::Unknown {
            self.last_decided = Some((request_id, None));
        }
        outcome
    }

    /// An election's `Proclaim` of a new value by the holder of `token` (current or
    /// stale), retried with its request id until definite.
    async fn proclaim(&mut self, token: u64) -> Outcome {
        let request_id = self.next_request_id();
        let leader =
            LeaderKey { name: path_name(self.path), lease_id: self.lease, fencing_token: token };
        let request = ProclaimRequest {
            leader: Some(leader),
            value: format!("c{}-{request_id}", self.client),
            request_id,
        };
        let invoke_us = now_us();
        let outcome = self
            .until_definite(self.retries(), Outcome::Unknown, |channel| {
                let request = request.clone();
                async move {
                    match call(ElectionServiceClient::new(channel).proclaim(request)).await {
                        Ok(_) => Outcome::Done,
                        Err(outcome) => outcome,
                    }
                }
            })
            .await;
        self.record(OpKind::Proclaim { token }, outcome.clone(), request_id, invoke_us);
        // A reused proclaim id is not one of the misuses the workload judges.
        if outcome != Outcome::Unknown {
            self.last_decided = None;
        }
        outcome
    }

    /// Reuses the last decided request's id for another request (a try-lock in the other
    /// mode, or a try-lock where that id unlocked): it must be refused as a reused id,
    /// and take no effect. Only definite answers are judged.
    async fn misuse(&mut self) {
        let Some((request_id, first_mode)) = self.last_decided else { return };
        let mode = match first_mode {
            Some(LockMode::Exclusive) => LockMode::Shared,
            Some(LockMode::Shared | LockMode::Semaphore { .. }) | None => LockMode::Exclusive,
        };
        let first = match first_mode {
            Some(mode) => format!("a {mode} lock"),
            None => "an unlock".to_owned(),
        };
        let request = self.lock_request(mode, 0, request_id);
        let mut locks = self.locks();
        let wrong_answer = match call_status(locks.lock(request)).await {
            Ok(response) => Some(format!(
                "acquired={} fencing_token={}",
                response.acquired, response.fencing_token
            )),
            Err(status) => match error_detail(&status).map(|detail| detail.reason()) {
                Some(ErrorReason::RequestIdReused) => None,
                // Unavailable (no leader, not the leader, stopping, a member the cluster
                // removed), lost, or the lease is gone: nothing to judge.
                None
                | Some(
                    ErrorReason::NoLeader
                    | ErrorReason::NotLeader
                    | ErrorReason::ShuttingDown
                    | ErrorReason::MemberRemoved
                    | ErrorReason::DeadlineExceeded
                    | ErrorReason::LeaseNotFound,
                ) => return,
                Some(reason) => {
                    Some(format!("{:?} {:?}: {}", status.code(), reason, status.message()))
                }
            },
        };
        let misuse = Misuse {
            lease: self.lease,
            request_id,
            first,
            reused_for: format!("a {mode} try-lock of {}", path_name(self.path)),
            wrong_answer,
        };
        self.shared.history().misuses.push(misuse);
    }

    /// A linearizable read of the path's holders: GetLock, or ListLocks of the path.
    async fn read(&mut self) -> Outcome {
        let invoke_us = now_us();
        let mut locks = self.locks();
        let linearizable = ReadConsistency::Linearizable as i32;
        let election = path_permits(self.path, self.shared.shape.paths).is_none()
            && self.rng.random_bool(ELECTION_CHANCE);
        if election {
            // The election's view of the path: its exclusive holder, if any (a path held
            // shared is not an election, and the read is refused: no effect to record).
            let request = LeaderRequest { name: path_name(self.path), consistency: linearizable };
            let mut elections = ElectionServiceClient::new(self.shared.channel(self.rng));
            let Ok(response) = call(elections.leader(request)).await else { return Outcome::Done };
            let holders = response
                .leader
                .map(|key| vec![(key.lease_id, LockMode::Exclusive, key.fencing_token)])
                .unwrap_or_default();
            let outcome = Outcome::Holders(holders);
            self.record(OpKind::Get, outcome.clone(), 0, invoke_us);
            return outcome;
        }
        let lock = if self.rng.random_bool(0.5) {
            let request = GetLockRequest { path: path_name(self.path), consistency: linearizable };
            call(locks.get_lock(request)).await.map(|response| response.lock)
        } else {
            let request = ListLocksRequest {
                prefix: path_name(self.path),
                page_token: String::new(),
                limit: 0,
                consistency: linearizable,
            };
            call(locks.list_locks(request)).await.map(|response| {
                response.locks.into_iter().find(|lock| lock.path == path_name(self.path))
            })
        };
        match lock {
            Ok(lock) => {
                let holders = lock
                    .map(|lock| lock.holders)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| (h.lease_id, core_mode(h.mode, h.permits), h.fencing_token))
                    .collect();
                let outcome = Outcome::Holders(holders);
                self.record(OpKind::Get, outcome.clone(), 0, invoke_us);
                outcome
            }
            // A failed read has no effect to account for.
            Err(_) => Outcome::Done,
        }
    }

    /// The lease's TimeToLive: which of its paths it holds, judged path by path.
    async fn lease_ttl(&mut self) -> Outcome {
        let invoke_us = now_us();
        let request = LeaseTimeToLiveRequest { lease_id: self.lease };
        let mut leases = LeaseServiceClient::new(self.shared.channel(self.rng));
        let answer = call(leases.time_to_live(request)).await;
        let complete_us = now_us();
        let current = self.path;
        let outcome = match answer {
            Ok(response) => {
                for path in self.paths.clone() {
                    self.path = path;
                    let holds = response.held_paths.contains(&path_name(path));
                    let outcome = Outcome::LeaseHolds { holds };
                    self.record_at(OpKind::LeaseTtl, outcome, 0, invoke_us, complete_us);
                }
                Outcome::Done
            }
            Err(Outcome::LeaseGone) => {
                self.record_at(OpKind::LeaseTtl, Outcome::LeaseGone, 0, invoke_us, complete_us);
                Outcome::LeaseGone
            }
            // A failed read has no effect to account for.
            Err(_) => Outcome::Done,
        };
        self.path = current;
        outcome
    }

    /// A linearizable ValidateFence of `token` on the lease's path.
    async fn fence(&mut self, token: u64) -> Outcome {
        let request = ValidateFenceRequest {
            path: path_name(self.path),
            fencing_token: token,
            consistency: ReadConsistency::Linearizable as i32,
        };
        let invoke_us = now_us();
        let mut locks = self.locks();
        match call(locks.validate_fence(request)).await {
            Ok(response) => {
                let outcome =
                    Outcome::Fence { valid: response.valid, current: response.current_tokens };
                self.record(OpKind::Fence { token }, outcome, 0, invoke_us);
                Outcome::Done
            }
            Err(_) => Outcome::Done,
        }
    }

    async fn write(&mut self, token: u64) {
        if self.rng.random_bool(self.shared.shape.stall_chance) {
            // A holder stalls (GC pause, slow disk) past its lease, then writes.
            tokio::time::sleep(Duration::from_millis(self.ttl_ms * 3 / 2)).await;
        }
        let shared = self.shared;
        let mut history = shared.history();
        let mut resource =
            shared.resource.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        resource.write(&mut history, self.path, token, self.lease);
    }

    /// Revokes the lease, retrying until the answer is definite: revoked by this call, or
    /// gone (if an earlier attempt may have revoked it: `Ended`).
    pub(super) async fn revoke(&mut self) {
        let invoke_us = now_us();
        let request = LeaseRevokeRequest { lease_id: self.lease };
        let outcome = self
            .until_definite(self.retries(), Outcome::Ended, |channel| async move {
                match call(LeaseServiceClient::new(channel).revoke(request)).await {
                    Ok(_) => Outcome::Done,
                    Err(outcome) => outcome,
                }
            })
            .await;
        // The revoke ends the lease on each of its paths: one operation in each path's
        // history (paths are checked one by one).
        let complete_us = now_us();
        for path in self.paths.clone() {
            self.path = path;
            self.record_at(OpKind::Revoke, outcome.clone(), 0, invoke_us, complete_us);
        }
    }
}
