//! Sessions and lock guards. A session is a lease kept alive by a background task that
//! pings the leader every quarter of the TTL. It declares the session lost once its
//! lease may have run out: the leader never expires a lease earlier than TTL after the
//! ping it acknowledged was *sent*, so the task counts from the send and gives up a
//! margin before that, while the lease is still certainly the holder's. A ping not
//! answered within a short silence (an eighth of the TTL, 250 ms to 1 s) is given up and
//! the stream reopened on another member, so a dead or paused leader costs the session
//! one election, not its lease (`docs/semantics.md`, failover).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use lockmgr_proto::v1::{self, LeaseKeepAliveRequest};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument, debug, warn};

use crate::{client::Client, error::Error};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Exclusive,
    Shared,
    /// One of `permits` holders of a semaphore (every holder names the same permits).
    Semaphore {
        permits: u32,
    },
}

impl LockMode {
    /// The mode and the permits, as the wire says them.
    pub(crate) fn wire(self) -> (i32, u32) {
        match self {
            LockMode::Exclusive => (v1::LockMode::Exclusive.into(), 0),
            LockMode::Shared => (v1::LockMode::Shared.into(), 0),
            LockMode::Semaphore { permits } => (v1::LockMode::Semaphore.into(), permits),
        }
    }
}

/// A lease kept alive in the background. Cheap to clone; the keepalive stops when the
/// session is closed or the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<SessionInner>,
}

#[derive(Debug)]
struct SessionInner {
    client: Client,
    lease_id: i64,
    ttl: Duration,
    next_request_id: AtomicU64,
    lost: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

// Sessions are built on the client, never the other way round: this is the client's
// door to them.
impl Client {
    /// Opens a session: a lease of `ttl`, kept alive in the background.
    pub async fn session(&self, ttl: Duration) -> Result<Session, Error> {
        Session::open(self.clone(), ttl).await
    }
}

impl Session {
    async fn open(client: Client, ttl: Duration) -> Result<Session, Error> {
        let asked_at = Instant::now();
        let granted = client.grant_lease(ttl).await?;
        let ttl = Duration::from_millis(granted.ttl_ms.max(0) as u64);
        let (lost_sender, lost) = watch::channel(false);
        let (stop, stopped) = watch::channel(false);
        let keepalive = KeepAlive {
            client: client.clone(),
            lease_id: granted.lease_id,
            ttl,
            safe_until: asked_at + ttl - margin(ttl),
        };
        tokio::spawn(keepalive.run(lost_sender, stopped));
        let inner = SessionInner {
            client,
            lease_id: granted.lease_id,
            ttl,
            next_request_id: AtomicU64::new(1),
            lost,
            stop,
        };
        Ok(Session { inner: Arc::new(inner) })
    }

    pub fn lease_id(&self) -> i64 {
        self.inner.lease_id
    }

    /// The TTL the cluster granted.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    pub fn is_lost(&self) -> bool {
        *self.inner.lost.borrow()
    }

    /// Resolves once the session is lost: stop writing under its locks.
    pub async fn lost(&self) {
        let mut lost = self.inner.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    fn request_id(&self) -> u64 {
        self.inner.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.request_id()
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Waits up to `wait` for an exclusive lock on `path`.
    pub async fn lock(&self, path: &str, wait: Duration) -> Result<LockGuard, Error> {
        self.acquire(path, LockMode::Exclusive, wait).await?.ok_or_else(|| unexpected_busy(path))
    }

    /// Waits up to `wait` for a shared lock on `path`.
    pub async fn lock_shared(&self, path: &str, wait: Duration) -> Result<LockGuard, Error> {
        self.acquire(path, LockMode::Shared, wait).await?.ok_or_else(|| unexpected_busy(path))
    }

    /// An exclusive lock on `path` if it is free now, else `None`.
    pub async fn try_lock(&self, path: &str) -> Result<Option<LockGuard>, Error> {
        self.acquire(path, LockMode::Exclusive, Duration::ZERO).await
    }

    /// Waits up to `wait` for one of the `permits` places of the semaphore `path`.
    pub async fn acquire_permit(
        &self,
        path: &str,
        permits: u32,
        wait: Duration,
    ) -> Result<LockGuard, Error> {
        let mode = LockMode::Semaphore { permits };
        self.acquire(path, mode, wait).await?.ok_or_else(|| unexpected_busy(path))
    }

    /// A place of the semaphore `path` if one is free now, else `None`.
    pub async fn try_acquire_permit(
        &self,
        path: &str,
        permits: u32,
    ) -> Result<Option<LockGuard>, Error> {
        self.acquire(path, LockMode::Semaphore { permits }, Duration::ZERO).await
    }

    pub(crate) fn lock_request(
        &self,
        path: &str,
        mode: LockMode,
        wait: Duration,
    ) -> v1::LockRequest {
        let (wire_mode, permits) = mode.wire();
        v1::LockRequest {
            path: path.into(),
            lease_id: self.lease_id(),
            mode: wire_mode,
            wait_timeout_ms: wait.as_millis() as u64,
            holder_id: self.inner.client.config().holder_id.clone(),
            request_id: self.request_id(),
            permits,
        }
    }

    /// A lock in `mode`, waiting up to `wait` (zero: a try-lock, `None` if busy).
    pub async fn acquire(
        &self,
        path: &str,
        mode: LockMode,
        wait: Duration,
    ) -> Result<Option<LockGuard>, Error> {
        if self.is_lost() {
            return Err(Error::SessionLost(self.lease_id()));
        }
        let request = self.lock_request(path, mode, wait);
        let span = tracing::info_span!(
            "lock.acquire",
            otel.kind = "client",
            lock.path = path,
            lock.operation = "acquire",
            lock.fencing_token = tracing::field::Empty,
            lock.wait_time_ms = tracing::field::Empty,
            rpc.service = "LockService",
            rpc.method = "Lock",
        );
        let response = self.inner.client.lock(request).instrument(span.clone()).await?;
        span.record("lock.wait_time_ms", response.wait_time_ms);
        span.in_scope(|| {
            if response.wait_time_ms > 0 {
                tracing::info!(wait_time_ms = response.wait_time_ms, "lock.queued");
            }
            if response.acquired {
                tracing::info!(fencing_token = response.fencing_token, "lock.acquired");
            }
        });
        if !response.acquired {
            return Ok(None);
        }
        span.record("lock.fencing_token", response.fencing_token);
        Ok(Some(LockGuard {
            session: self.clone(),
            path: path.into(),
            token: response.fencing_token,
            mode,
            released: false,
        }))
    }

    /// Revokes the lease: every lock it holds is released.
    pub async fn close(self) -> Result<(), Error> {
        let _ = self.inner.stop.send(true);
        self.inner.client.revoke_lease(self.lease_id()).await.map(|_| ())
    }

    async fn release(&self, path: &str, token: u64) -> Result<(), Error> {
        let request = v1::UnlockRequest {
            path: path.into(),
            lease_id: self.lease_id(),
            fencing_token: token,
            request_id: self.request_id(),
        };
        self.inner.client.unlock(request).await.map(|_| ())
    }
}

fn unexpected_busy(path: &str) -> Error {
    Error::Invalid(format!("{path} was busy and the request did not wait"))
}

/// A held lock. Give [`LockGuard::fencing_token`] to every resource written under it.
/// Released by [`LockGuard::unlock`], or in the background when dropped.
#[derive(Debug)]
pub struct LockGuard {
    session: Session,
    path: String,
    token: u64,
    mode: LockMode,
    released: bool,
}

impl LockGuard {
    pub(crate) fn new(session: Session, path: &str, token: u64, mode: LockMode) -> LockGuard {
        LockGuard { session, path: path.into(), token, mode, released: false }
    }

    pub fn fencing_token(&self) -> u64 {
        self.token
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn mode(&self) -> LockMode {
        self.mode
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub async fn unlock(mut self) -> Result<(), Error> {
        self.released = true;
        self.session.release(&self.path, self.token).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (session, path, token) = (self.session.clone(), self.path.clone(), self.token);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = session.release(&path, token).await {
                    debug!(%error, path, "release on drop failed; the lease will release it");
                }
            });
        }
    }
}

/// How much earlier than the server could expire the lease the client gives up.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(200)).min(ttl / 2)
}

/// How long a ping may go unanswered before the stream is given up for another member.
fn silence(ttl: Duration) -> Duration {
    (ttl / 8).clamp(Duration::from_millis(250), Duration::from_secs(1))
}

/// An open keepalive stream: where to send pings, the answers, and the member it is on.
type Stream =
    (mpsc::Sender<LeaseKeepAliveRequest>, tonic::Streaming<v1::LeaseKeepAliveResponse>, String);

struct KeepAlive {
    client: Client,
    lease_id: i64,
    ttl: Duration,
    /// Until when the lease is certainly alive.
    safe_until: Instant,
}

impl KeepAlive {
    async fn run(mut self, lost: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let interval = self.ttl / 4;
        let mut stream: Option<Stream> = None;
        loop {
            if Instant::now() >= self.safe_until {
                warn!(
                    lease_id = self.lease_id,
                    "Session lost: the lease could not be renewed in time"
                );
                let _ = lost.send(true);
                return;
            }
            match self.ping(&mut stream).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(lease_id = self.lease_id, "lease is gone: session lost");
                    let _ = lost.send(true);
                    return;
                }
                Err(error) => {
                    tracing::error!(lease_id = self.lease_id, %error, "Lease renew failed");
                    stream = None;
                }
            }
            let pause = if stream.is_some() { interval } else { Duration::from_millis(100) };
            let wake = (Instant::now() + pause).min(self.safe_until);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One ping; `Ok(false)` if the lease is gone.
    async fn ping(&mut self, stream: &mut Option<Stream>) -> Result<bool, String> {
        if stream.is_none() {
            let (pings, outgoing) = mpsc::channel(4);
            // Opening may wait for an election on the server: never past the lease.
            let patience = self.safe_until.saturating_duration_since(Instant::now());
            let opening = self.client.open_keepalive(ReceiverStream::new(outgoing));
            let (responses, address) = tokio::time::timeout(patience, opening)
                .await
                .map_err(|_| "no keepalive stream in time".to_owned())?
                .map_err(|s| s.to_string())?;
            *stream = Some((pings, responses, address));
        }
        let (pings, responses, address) = stream.as_mut().expect("opened above");
        let sent_at = Instant::now();
        pings
            .send(LeaseKeepAliveRequest { lease_id: self.lease_id })
            .await
            .map_err(|e| e.to_string())?;
        let left = self.safe_until.saturating_duration_since(tokio::time::Instant::now());
        let silence = silence(self.ttl);
        let answer = tokio::time::timeout(left.min(silence), responses.next()).await;
        if answer.is_err() && left > silence {
            self.client.skip(address);
            return Err(format!("no keepalive answer from {address} within {silence:?}"));
        }
        match answer {
            Ok(Some(Ok(response))) if response.ttl_ms > 0 => {
                let ttl = Duration::from_millis(response.ttl_ms as u64);
                self.safe_until = sent_at + ttl - margin(ttl);
                Ok(true)
            }
            Ok(Some(Ok(_))) => Ok(false),
            Ok(Some(Err(status))) => Err(status.to_string()),
            Ok(None) => Err("keepalive stream closed".into()),
            Err(_) => Err("no keepalive answer in time".into()),
        }
    }
}
