//! Leader election and the acquisition stream, on a [`Session`]. An election is an
//! exclusive lock on its name whose holder id is the leader's value, so a [`Leadership`]
//! carries a fencing token and ends exactly when the session's lease does (or on
//! [`Leadership::resign`]). An [`Acquisition`] is a lock whose progress is reported as it
//! happens: its place in the queue, the grant, a lease in jeopardy, the loss.

use std::time::Duration;

use lockmgr_proto::v1::{
    self, AcquisitionState, LeaderKey, election_service_client::ElectionServiceClient,
};
use tonic::{Code, Streaming};
use tracing::debug;

use crate::{
    client::{Client, traced},
    error::Error,
    session::{LockGuard, LockMode, Session},
};

/// The election service's calls and the lock stream, each retried as the other calls
/// are (the same request id on every member, following the leader).
impl Client {
    /// One `LockStream` call, opened again as is (same request id) until a member
    /// answers; the stream of acquisition states is the caller's to follow.
    pub async fn lock_stream(
        &self,
        request: v1::LockRequest,
    ) -> Result<Streaming<v1::LockStreamResponse>, Error> {
        self.retrying(|c| {
            let request = traced(tonic::Request::new(request.clone()));
            async move { Ok(Self::lock_service(c).lock_stream(request).await?.into_inner()) }
        })
        .await
    }

    /// One `Campaign` call, retried as is (same request id) until answered: the leader
    /// key once the lease leads. `wait_timeout_ms` 0 waits as long as the server allows.
    pub async fn campaign(
        &self,
        request: v1::CampaignRequest,
    ) -> Result<v1::CampaignResponse, Error> {
        // 0 waits as long as the server allows, which only the server knows.
        let patience = match request.wait_timeout_ms {
            0 => self.waiting_patience(u64::MAX),
            ms => self.waiting_patience(ms),
        };
        self.retrying_within(patience, |c| {
            let mut request = traced(tonic::Request::new(request.clone()));
            request.set_timeout(patience);
            async move { Ok(ElectionServiceClient::new(c).campaign(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn proclaim(
        &self,
        request: v1::ProclaimRequest,
    ) -> Result<v1::ProclaimResponse, Error> {
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(ElectionServiceClient::new(c).proclaim(request).await?.into_inner()) }
        })
        .await
    }

    pub async fn resign(&self, request: v1::ResignRequest) -> Result<v1::ResignResponse, Error> {
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(ElectionServiceClient::new(c).resign(request).await?.into_inner()) }
        })
        .await
    }

    /// The election's current leader (a linearizable read), if any.
    pub async fn leader(&self, name: &str) -> Result<v1::LeaderResponse, Error> {
        let request = v1::LeaderRequest { name: name.into(), consistency: 0 };
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(ElectionServiceClient::new(c).leader(request).await?.into_inner()) }
        })
        .await
    }

    /// Streams the election's leadership: the leader now (or the changes from
    /// `start_revision`), then every change.
    pub async fn observe(
        &self,
        name: &str,
        start_revision: u64,
    ) -> Result<Streaming<v1::ObserveResponse>, Error> {
        let request = v1::ObserveRequest { name: name.into(), start_revision };
        self.retrying(|c| {
            let request = request.clone();
            async move { Ok(ElectionServiceClient::new(c).observe(request).await?.into_inner()) }
        })
        .await
    }
}

impl Session {
    /// Campaigns for the election `name` with `value`, waiting up to `wait` (zero: as
    /// long as the server allows) until this session leads it.
    pub async fn campaign(
        &self,
        name: &str,
        value: &str,
        wait: Duration,
    ) -> Result<Leadership, Error> {
        if self.is_lost() {
            return Err(Error::SessionLost(self.lease_id()));
        }
        let request = v1::CampaignRequest {
            name: name.into(),
            lease_id: self.lease_id(),
            value: value.into(),
            wait_timeout_ms: wait.as_millis() as u64,
            request_id: self.next_request_id(),
        };
        let response = self.client().campaign(request).await?;
        let key = response
            .leader
            .ok_or_else(|| Error::Invalid("the server's campaign answer has no leader".into()))?;
        Ok(Leadership { session: self.clone(), key, value: value.into(), resigned: false })
    }

    /// A lock in `mode` whose acquisition is followed as a stream of [`LockState`]s.
    pub async fn lock_stream(
        &self,
        path: &str,
        mode: LockMode,
        wait: Duration,
    ) -> Result<Acquisition, Error> {
        if self.is_lost() {
            return Err(Error::SessionLost(self.lease_id()));
        }
        let request = self.lock_request(path, mode, wait);
        let stream = self.client().lock_stream(request.clone()).await?;
        Ok(Acquisition { session: self.clone(), mode, request, stream, token: None })
    }
}

/// This session leads an election. Give [`Leadership::fencing_token`] to every resource
/// the leader writes to. Resigned by [`Leadership::resign`], or in the background when
/// dropped.
#[derive(Debug)]
pub struct Leadership {
    session: Session,
    key: LeaderKey,
    value: String,
    resigned: bool,
}

impl Leadership {
    pub fn name(&self) -> &str {
        &self.key.name
    }

    pub fn fencing_token(&self) -> u64 {
        self.key.fencing_token
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Changes the leader's value, keeping leadership (and the token).
    pub async fn proclaim(&mut self, value: &str) -> Result<(), Error> {
        let request = v1::ProclaimRequest {
            leader: Some(self.key.clone()),
            value: value.into(),
            request_id: self.session.next_request_id(),
        };
        self.session.client().proclaim(request).await?;
        value.clone_into(&mut self.value);
        Ok(())
    }

    /// Resolves once this leadership may have ended: the session is lost, or the
    /// election names another leader (or none). Stop acting as the leader then.
    pub async fn lost(&self) {
        tokio::select! {
            () = self.session.lost() => {}
            () = self.superseded() => {}
        }
    }

    /// Follows the election until it names someone else (or nobody).
    async fn superseded(&self) {
        let mut from = 0;
        loop {
            let stream = self.session.client().observe(&self.key.name, from).await;
            let Ok(mut stream) = stream else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            while let Ok(Some(change)) = stream.message().await {
                if change.compacted {
                    from = 0;
                    break;
                }
                from = change.revision + 1;
                if change.leader.as_ref().is_none_or(|leader| *leader != self.key) {
                    return;
                }
            }
        }
    }

    /// Gives up leadership: the next candidate, if any, leads.
    pub async fn resign(mut self) -> Result<(), Error> {
        self.resigned = true;
        let request = v1::ResignRequest {
            leader: Some(self.key.clone()),
            request_id: self.session.next_request_id(),
        };
        self.session.client().resign(request).await.map(|_| ())
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if self.resigned {
            return;
        }
        let (session, key) = (self.session.clone(), self.key.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let request =
                    v1::ResignRequest { leader: Some(key), request_id: session.next_request_id() };
                if let Err(error) = session.client().resign(request).await {
                    debug!(%error, "resign on drop failed; the lease will end it");
                }
            });
        }
    }
}

/// Where a lock's acquisition stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockState {
    /// In the queue: `position` (0: next) and how many holders and waiters are ahead.
    Queued { position: u32, ahead: u32 },
    /// Granted (or renewed again after a jeopardy).
    Acquired { token: u64 },
    /// The leader has not heard from the lease for a third of its TTL: the lock may be
    /// lost in `remaining`.
    Jeopardy { token: u64, remaining: Duration },
    /// The grant ended (`reason`: released, revoked, expired, or the session was lost).
    Lost { token: u64, reason: String },
    /// A try-lock found the path taken.
    Busy,
}

/// How long a lost session waits for the server to say how the grant ended.
const LOST_VERDICT_WAIT: Duration = Duration::from_secs(1);

/// A lock being acquired and held, reported state by state ([`Acquisition::next`]).
#[derive(Debug)]
pub struct Acquisition {
    session: Session,
    mode: LockMode,
    request: v1::LockRequest,
    stream: Streaming<v1::LockStreamResponse>,
    token: Option<u64>,
}

impl Acquisition {
    /// The next state; `None` once the stream ended (after `Lost` or `Busy`). A stream
    /// cut by a failover is opened again with the same request id (the retry finds the
    /// same wait, or the same grant).
    pub async fn next(&mut self) -> Result<Option<LockState>, Error> {
        loop {
            let message = tokio::select! {
                biased;
                message = self.stream.message() => message,
                () = self.session.lost() => {
                    // The server's own verdict (with its reason) is usually on its way.
                    let verdict = tokio::time::timeout(LOST_VERDICT_WAIT, self.stream.message());
                    if let Ok(Ok(Some(message))) = verdict.await {
                        return Ok(Some(self.state(&message)));
                    }
                    let Some(token) = self.token.take() else {
                        return Err(Error::SessionLost(self.session.lease_id()));
                    };
                    return Ok(Some(LockState::Lost { token, reason: "session lost".into() }));
                }
            };
            match message {
                Ok(Some(message)) => return Ok(Some(self.state(&message))),
                Ok(None) => return Ok(None),
                Err(status) if reopens(&status) && !self.session.is_lost() => {
                    self.stream = self.session.client().lock_stream(self.request.clone()).await?;
                }
                Err(status) => return Err(Error::Rpc(status)),
            }
        }
    }

    fn state(&mut self, message: &v1::LockStreamResponse) -> LockState {
        let token = message.fencing_token;
        match AcquisitionState::try_from(message.state) {
            Ok(AcquisitionState::Queued) => {
                LockState::Queued { position: message.position, ahead: message.ahead }
            }
            Ok(AcquisitionState::Jeopardy) => LockState::Jeopardy {
                token,
                remaining: Duration::from_millis(message.remaining_ttl_ms.max(0) as u64),
            },
            Ok(AcquisitionState::Lost) => {
                self.token = None;
                let reason =
                    v1::ReleaseReason::try_from(message.reason).map_or("unknown", |reason| {
                        match reason {
                            v1::ReleaseReason::Released => "released",
                            v1::ReleaseReason::Revoked => "revoked",
                            v1::ReleaseReason::Expired => "expired",
                            _ => "unknown",
                        }
                    });
                LockState::Lost { token, reason: reason.into() }
            }
            Ok(AcquisitionState::Busy) => LockState::Busy,
            _ => {
                self.token = Some(token);
                LockState::Acquired { token }
            }
        }
    }

    /// A guard of the grant, once acquired: unlocking it (or dropping it) releases the
    /// lock. The stream goes on reporting until the grant ends.
    pub fn guard(&self) -> Option<LockGuard> {
        let token = self.token?;
        Some(LockGuard::new(self.session.clone(), &self.request.path, token, self.mode))
    }
}

/// A stream error after which the same request is sent again: the member stopped,
/// stepped down or could not be reached (a refusal of the request itself is final).
fn reopens(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled)
        && !matches!(
            lockmgr_proto::error_detail(status).map(|detail| detail.reason()),
            Some(v1::ErrorReason::MemberRemoved)
        )
}
