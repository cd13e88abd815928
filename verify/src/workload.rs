//! The workload: clients on the client node, each granting a lease, binding it to one
//! path, and doing what users do with it (try-locks and blocking locks, exclusive and
//! shared, reads of the holders, unlocks, occasionally with a stale token, keepalives, a
//! revoke or a lapse), every call to a random member with a time-out. Holders write to a
//! fenced resource, sometimes after stalling past their lease. Everything goes into the
//! [`History`] with its invoke and complete times; an answer that does not say whether the
//! operation took effect is recorded as unknown, and the client abandons that lease.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lockmgr_core::LockMode;
use lockmgr_proto::{
    Channels, error_detail,
    v1::{
        self, ErrorReason, GetLockRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
        LeaseRevokeRequest, LockRequest, ReadConsistency, UnlockRequest, WatchRequest,
        lease_service_client::LeaseServiceClient, lock_service_client::LockServiceClient,
        watch_service_client::WatchServiceClient,
    },
};
use rand::{RngExt, SeedableRng, rngs::SmallRng};
use tonic::transport::Channel;

use crate::{
    history::{FencedResource, History, Op, OpKind, Outcome, WatchRecord},
    now_us,
};

const CALL_TIMEOUT: Duration = Duration::from_secs(3);

pub fn path_name(path: usize) -> String {
    format!("/sim/p{path}")
}

/// What the clients do: the simulator's plan draws it per seed; the chaos suite sets it.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub seed: u64,
    pub paths: usize,
    pub lease_ttl_ms: (u64, u64),
    /// Chance that a client lets its lease lapse instead of revoking it.
    pub lapse_chance: f64,
    /// Chance that a holder stalls past its lease before writing to the resource.
    pub stall_chance: f64,
    pub stale_unlock_chance: f64,
}

pub struct Shared {
    pub shape: Shape,
    pub addresses: Vec<String>,
    pub channels: Channels,
    pub history: Mutex<History>,
    pub resource: Mutex<FencedResource>,
    pub stop_us: u64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("shape", &self.shape).finish_non_exhaustive()
    }
}

impl Shared {
    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn channel(&self, rng: &mut SmallRng) -> Channel {
        let address = &self.addresses[rng.random_range(0..self.addresses.len())];
        self.channels.get(address).expect("member addresses are valid")
    }
}

fn classify(status: &tonic::Status) -> Outcome {
    let reason = error_detail(status).map_or(ErrorReason::Unspecified, |detail| detail.reason());
    match reason {
        ErrorReason::LeaseNotFound | ErrorReason::LeaseLost => Outcome::LeaseGone,
        ErrorReason::LockNotHeld | ErrorReason::StaleToken => Outcome::NotHeld,
        ErrorReason::WaitTimeout => Outcome::WaitTimedOut,
        _ => Outcome::Unknown,
    }
}

async fn call<T>(
    future: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Outcome> {
    call_within(CALL_TIMEOUT, future).await
}

async fn call_within<T>(
    timeout: Duration,
    future: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Outcome> {
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(classify(&status)),
        Err(_) => Err(Outcome::Unknown),
    }
}

fn proto_mode(mode: LockMode) -> i32 {
    match mode {
        LockMode::Exclusive => v1::LockMode::Exclusive as i32,
        LockMode::Shared => v1::LockMode::Shared as i32,
    }
}

fn core_mode(mode: i32) -> LockMode {
    if mode == v1::LockMode::Shared as i32 { LockMode::Shared } else { LockMode::Exclusive }
}

/// One client's life: leases one after another until the run's fault phase ends.
pub async fn client(shared: Arc<Shared>, client: usize) {
    let mut rng = SmallRng::seed_from_u64(shared.shape.seed ^ (client as u64 + 1) << 32);
    while now_us() < shared.stop_us {
        let Some((lease, ttl_ms)) = grant(&shared, &mut rng).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let path = rng.random_range(0..shared.shape.paths);
        {
            let mut history = shared.history();
            let record = history.leases.entry(lease).or_default();
            record.path = path;
            record.ttl_ms = ttl_ms;
        }
        let lapse = rng.random_bool(shared.shape.lapse_chance);
        let keeping = Arc::new(AtomicBool::new(true));
        let keepalive = tokio::spawn(keep_alive(
            shared.clone(),
            lease,
            ttl_ms,
            keeping.clone(),
            rng.random(),
            lapse,
        ));
        let mut session =
            Session { request_id: 0, shared: &shared, rng: &mut rng, client, lease, path, ttl_ms };
        let clean = session.run().await;
        keeping.store(false, Ordering::SeqCst);
        let _ = keepalive.await;
        // A lease with an unknown request is revoked (its end decides the request); a
        // lapsing one is left to expire.
        if !clean || !lapse {
            session.revoke().await;
        }
    }
}

async fn grant(shared: &Shared, rng: &mut SmallRng) -> Option<(i64, u64)> {
    let (low, high) = shared.shape.lease_ttl_ms;
    let ttl_ms = rng.random_range(low..=high);
    let invoke_us = now_us();
    let mut leases = LeaseServiceClient::new(shared.channel(rng));
    let response = call(leases.grant(LeaseGrantRequest { ttl_ms: ttl_ms as i64 })).await.ok()?;
    let mut history = shared.history();
    history.granted_leases.push((response.lease_id, now_us()));
    let lease = response.lease_id;
    let ttl_ms = response.ttl_ms as u64;
    history.leases.entry(lease).or_default().grant_invoke_us = invoke_us;
    Some((lease, ttl_ms))
}

async fn keep_alive(
    shared: Arc<Shared>,
    lease: i64,
    ttl_ms: u64,
    keeping: Arc<AtomicBool>,
    seed: u64,
    lapse: bool,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    // A lapsing lease is renewed a few times, then left to expire.
    let mut renewals = if lapse { rng.random_range(0..3) } else { u32::MAX };
    while keeping.load(Ordering::SeqCst) && renewals > 0 {
        tokio::time::sleep(Duration::from_millis(ttl_ms / 3)).await;
        renewals -= 1;
        let sent_us = now_us();
        let mut leases = LeaseServiceClient::new(shared.channel(&mut rng));
        let ping = futures_util::stream::iter([LeaseKeepAliveRequest { lease_id: lease }]);
        let answer = tokio::time::timeout(Duration::from_millis(ttl_ms / 3), async {
            let mut responses = leases.keep_alive(ping).await?.into_inner();
            responses.message().await
        })
        .await;
        match answer {
            Ok(Ok(Some(response))) if response.ttl_ms > 0 => {
                let mut history = shared.history();
                history.leases.entry(lease).or_default().keepalive_sent_us.push(sent_us);
            }
            // The lease is gone: nothing left to renew.
            Ok(Ok(Some(_))) => break,
            _ => {}
        }
    }
}

struct Session<'a> {
    /// The lease's last request id: retries of a request reuse its id, so the state
    /// machine answers them instead of applying them twice.
    request_id: u64,
    shared: &'a Shared,
    rng: &'a mut SmallRng,
    client: usize,
    lease: i64,
    path: usize,
    ttl_ms: u64,
}

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

    fn record(&self, kind: OpKind, outcome: Outcome, invoke_us: u64) {
        let complete_us = (outcome != Outcome::Unknown).then(now_us);
        let op = Op {
            client: self.client,
            path: self.path,
            lease: self.lease,
            kind,
            outcome,
            invoke_us,
            complete_us,
        };
        self.shared.history().ops.push(op);
    }

    fn locks(&mut self) -> LockServiceClient<Channel> {
        LockServiceClient::new(self.shared.channel(self.rng))
    }

    /// Operations on the lease's path; `false` if the lease was abandoned.
    async fn run(&mut self) -> bool {
        let mut held: Option<(u64, LockMode)> = None;
        let mut old_tokens: Vec<u64> = Vec::new();
        for _ in 0..self.rng.random_range(3..20) {
            if now_us() >= self.shared.stop_us {
                break;
            }
            let think_ms = self.rng.random_range(0..10);
            tokio::time::sleep(Duration::from_millis(think_ms)).await;
            let stale = !old_tokens.is_empty()
                && self.rng.random_bool(self.shared.shape.stale_unlock_chance);
            let outcome = if stale {
                let token = old_tokens[self.rng.random_range(0..old_tokens.len())];
                self.unlock(token).await
            } else if let Some((token, mode)) = held {
                match self.rng.random_range(0..10) {
                    0..=5 => {
                        let outcome = self.unlock(token).await;
                        if outcome == Outcome::Done {
                            held = None;
                            old_tokens.push(token);
                        }
                        outcome
                    }
                    6 => self.get().await,
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
                        self.get().await;
                        continue;
                    }
                };
                let outcome = self.lock(mode, wait_ms).await;
                if let Outcome::Granted { token } = outcome {
                    held = Some((token, mode));
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
        let request = LockRequest {
            path: path_name(self.path),
            lease_id: self.lease,
            mode: proto_mode(mode),
            wait_timeout_ms,
            holder_id: format!("c{}", self.client),
            request_id: self.next_request_id(),
        };
        let invoke_us = now_us();
        let timeout = CALL_TIMEOUT + Duration::from_millis(wait_timeout_ms);
        // A try-lock is retried until it has a definite answer (a blocking one is not:
        // its retry would queue again if the first attempt's wait ended).
        let attempts = if wait_timeout_ms == 0 { self.retries() } else { 1 };
        let outcome = self
            .until_definite(attempts, Outcome::Unknown, |channel| {
                let request = request.clone();
                async move {
                    let mut locks = LockServiceClient::new(channel);
                    match call_within(timeout, locks.lock(request)).await {
                        Ok(response) if response.acquired => {
                            Outcome::Granted { token: response.fencing_token }
                        }
                        Ok(_) => Outcome::Busy,
                        Err(outcome) => outcome,
                    }
                }
            })
            .await;
        self.record(OpKind::Lock { mode, wait: wait_timeout_ms > 0 }, outcome.clone(), invoke_us);
        outcome
    }

    async fn unlock(&mut self, token: u64) -> Outcome {
        let request = UnlockRequest {
            path: path_name(self.path),
            lease_id: self.lease,
            fencing_token: token,
            request_id: self.next_request_id(),
        };
        let invoke_us = now_us();
        let outcome = self
            .until_definite(self.retries(), Outcome::Unknown, |channel| {
                let request = request.clone();
                async move {
                    match call(LockServiceClient::new(channel).unlock(request)).await {
                        Ok(_) => Outcome::Done,
                        Err(outcome) => outcome,
                    }
                }
            })
            .await;
        self.record(OpKind::Unlock { token }, outcome.clone(), invoke_us);
        outcome
    }

    async fn get(&mut self) -> Outcome {
        let request = GetLockRequest {
            path: path_name(self.path),
            consistency: ReadConsistency::Linearizable as i32,
        };
        let invoke_us = now_us();
        let mut locks = self.locks();
        match call(locks.get_lock(request)).await {
            Ok(response) => {
                let holders = response
                    .lock
                    .map(|lock| lock.holders)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| (h.lease_id, core_mode(h.mode), h.fencing_token))
                    .collect();
                let outcome = Outcome::Holders(holders);
                self.record(OpKind::Get, outcome.clone(), invoke_us);
                outcome
            }
            // A failed read has no effect to account for.
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
    async fn revoke(&mut self) {
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
        self.record(OpKind::Revoke, outcome, invoke_us);
    }
}

/// Runs `future` for at most `limit`. Unlike `tokio::time::timeout`, the clock is asked
/// once: madsim registers a new timer every time a pending sleep is polled, and a watch
/// stream's time-out is polled for every message it receives.
async fn within<T>(limit: Duration, future: impl Future<Output = T>) {
    let (expired, expiry) = tokio::sync::oneshot::channel::<()>();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        let _ = expired.send(());
    });
    tokio::select! {
        _ = future => timer.abort(),
        _ = expiry => {}
    }
}

/// Watchers per run: each watches a path or every path, from now or resuming after the
/// last revision it saw, on a random member, for a few seconds at a time.
pub const WATCHERS: usize = 4;

pub async fn watcher(shared: Arc<Shared>, watcher: usize) {
    let mut rng = SmallRng::seed_from_u64(shared.shape.seed ^ 0x3a7c_4000 ^ watcher as u64);
    let mut resume_from = 0;
    while now_us() < shared.stop_us {
        let prefix = rng.random_bool(0.3);
        let target = if prefix {
            // A prefix is a path (no trailing '/'); it covers the paths under it.
            "/sim".to_string()
        } else {
            path_name(rng.random_range(0..shared.shape.paths))
        };
        // Resume (as a client that lost its stream would) or start from now.
        let start_revision = if rng.random_bool(0.5) { resume_from } else { 0 };
        let mut record = WatchRecord {
            watcher,
            target: target.clone(),
            prefix,
            start_revision,
            events: Vec::new(),
            compacted: false,
        };
        let length = Duration::from_millis(rng.random_range(1_000..8_000));
        let mut watch = WatchServiceClient::new(shared.channel(&mut rng));
        let request = WatchRequest { path: target, prefix, start_revision };
        let listen = async {
            let mut stream = watch.watch(request).await.ok()?.into_inner();
            while let Ok(Some(response)) = stream.message().await {
                if response.compacted {
                    record.compacted = true;
                    return None;
                }
                for event in response.events {
                    record.events.push((event.revision, event.path, event.kind, event.lease_id));
                }
            }
            None::<()>
        };
        within(length, listen).await;
        if let Some((revision, ..)) = record.events.last() {
            resume_from = revision + 1;
        } else if record.compacted {
            resume_from = 0;
        }
        shared.history().watches.push(record);
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
    }
}
