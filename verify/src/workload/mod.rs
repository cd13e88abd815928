//! The workload: clients on the client node, each granting a lease, binding it to one to
//! three paths, and doing what users do with it (try-locks and blocking locks, exclusive and
//! shared, reads of the holders, unlocks, occasionally with a stale token, keepalives, a
//! revoke or a lapse), every call to a random member with a time-out. Holders write to a
//! fenced resource, sometimes after stalling past their lease. Everything goes into the
//! [`History`] with its invoke and complete times; an answer that does not say whether the
//! operation took effect is recorded as unknown, and the client abandons that lease.
//!
//! Clients retry the way real ones do: every lock and unlock is retried with the same
//! request_id until its answer is definite (after a time-out, a lost connection, a dead
//! member), a blocking lock's first attempt is sometimes abandoned while it still waits
//! and retried at once (the retry must find its wait), a queued lease sometimes sends a
//! try-lock of its path meanwhile (it must keep its place), and a few requests reuse the
//! lease's last request id for another request on purpose (`history.misuses`: each must
//! be refused). Reads use every read RPC: GetLock, ListLocks of the path, and
//! ValidateFence with current, stale and never-granted tokens, and the lease's TimeToLive.
//!
//! Here: the shape, the shared state, the calls and a client's life (lease, keepalive);
//! `session.rs` is one lease's steps; `watcher.rs` the watch streams.

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
        self, CampaignRequest, ErrorReason, LeaseGrantRequest, LeaseKeepAliveRequest, LockRequest,
        election_service_client::ElectionServiceClient, lease_service_client::LeaseServiceClient,
        lock_service_client::LockServiceClient,
    },
};
use rand::{RngExt, SeedableRng, rngs::SmallRng};
use tonic::transport::Channel;

mod session;
mod watcher;

pub use watcher::{WATCHERS, watcher};

use self::session::Session;
use crate::{
    history::{FencedResource, History, Outcome},
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
        // Given up after its callers left and no retry came: the waiter is gone.
        ErrorReason::WaitTimeout | ErrorReason::WaitAbandoned => Outcome::WaitTimedOut,
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

async fn call_status<T>(
    future: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(result) => result.map(tonic::Response::into_inner),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
    }
}

/// Which RPC a lock is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Lock,
    /// The election service's `Campaign` (a blocking exclusive lock whose holder id is
    /// the value).
    Campaign,
    /// `LockStream`, followed until the grant (the stream is then dropped: the grant
    /// stays).
    Stream,
}

/// One attempt of a lock, abandoned after `limit`.
async fn lock_once(channel: Channel, request: LockRequest, limit: Duration, via: Via) -> Outcome {
    if via == Via::Stream {
        let mut locks = LockServiceClient::new(channel);
        let followed = tokio::time::timeout(limit, async move {
            let mut stream = locks.lock_stream(request).await?.into_inner();
            while let Some(message) = stream.message().await? {
                match v1::AcquisitionState::try_from(message.state) {
                    Ok(v1::AcquisitionState::Acquired) => {
                        return Ok(Outcome::Granted { token: message.fencing_token });
                    }
                    Ok(v1::AcquisitionState::Busy) => return Ok(Outcome::Busy),
                    _ => {}
                }
            }
            Ok::<_, tonic::Status>(Outcome::Unknown)
        })
        .await;
        return match followed {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(status)) => classify(&status),
            Err(_) => Outcome::Unknown,
        };
    }
    if via == Via::Campaign {
        let campaign = CampaignRequest {
            name: request.path,
            lease_id: request.lease_id,
            value: request.holder_id,
            wait_timeout_ms: request.wait_timeout_ms,
            request_id: request.request_id,
        };
        let mut elections = ElectionServiceClient::new(channel);
        return match call_within(limit, elections.campaign(campaign)).await {
            Ok(response) => match response.leader {
                Some(leader) => Outcome::Granted { token: leader.fencing_token },
                None => Outcome::Unknown,
            },
            Err(outcome) => outcome,
        };
    }
    let mut locks = LockServiceClient::new(channel);
    match call_within(limit, locks.lock(request)).await {
        Ok(response) if response.acquired => Outcome::Granted { token: response.fencing_token },
        Ok(_) => Outcome::Busy,
        Err(outcome) => outcome,
    }
}

/// The semaphore's permits if the workload uses `path` as a semaphore (path 1 of three or
/// more; every client asks for the same permits there), `None` for a lock.
pub fn path_permits(path: usize, paths: usize) -> Option<u32> {
    (paths >= 3 && path == 1).then_some(2)
}

/// A mode as the wire says it: the mode and the permits.
fn proto_mode(mode: LockMode) -> (i32, u32) {
    match mode {
        LockMode::Exclusive => (v1::LockMode::Exclusive as i32, 0),
        LockMode::Shared => (v1::LockMode::Shared as i32, 0),
        LockMode::Semaphore { permits } => (v1::LockMode::Semaphore as i32, permits),
    }
}

fn core_mode(mode: i32, permits: u32) -> LockMode {
    match v1::LockMode::try_from(mode) {
        Ok(v1::LockMode::Shared) => LockMode::Shared,
        Ok(v1::LockMode::Semaphore) => LockMode::Semaphore { permits },
        _ => LockMode::Exclusive,
    }
}

/// One client's life: leases one after another until the run's fault phase ends.
pub async fn client(shared: Arc<Shared>, client: usize) {
    let mut rng = SmallRng::seed_from_u64(shared.shape.seed ^ (client as u64 + 1) << 32);
    while now_us() < shared.stop_us {
        let Some((lease, ttl_ms)) = grant(&shared, &mut rng).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Most leases use one path; some hold and wait for two or three at once, so that
        // a revoke or an expiry ends several locks and waits in one command.
        let count = match rng.random_range(0..20) {
            0..=11 => 1,
            12..=16 => 2,
            _ => 3,
        };
        let mut paths: Vec<usize> = Vec::new();
        while paths.len() < count.min(shared.shape.paths) {
            let path = rng.random_range(0..shared.shape.paths);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        {
            let mut history = shared.history();
            let record = history.leases.entry(lease).or_default();
            record.paths.clone_from(&paths);
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
        let mut session = Session {
            request_id: 0,
            shared: &shared,
            rng: &mut rng,
            client,
            lease,
            path: paths[0],
            paths,
            ttl_ms,
            last_decided: None,
        };
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
