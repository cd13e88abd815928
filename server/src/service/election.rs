//! `ElectionService`: leader election on the lock table. An election named `name` is an
//! exclusive lock on the path `name` whose holder id is the leader's value: a campaign
//! is a blocking lock, a resignation an unlock, a proclamation a change of the holder id
//! (`Command::Proclaim`), so a leader carries a fencing token and loses leadership
//! exactly when its lease ends, and candidates queue in FIFO order. Campaign and Resign
//! go through `LockApi` (and its forwarding, waits and retry rules) unchanged.

use std::{pin::Pin, sync::Arc};

use futures_util::Stream;
use lockmgr_core::{
    Command, HolderView, LeaseId, LockMode, LockPath, Reply, WatchEvent, WatchEventKind,
};
use lockmgr_proto::v1::{
    self, CampaignRequest, CampaignResponse, ErrorReason, LeaderKey, LeaderRequest, LeaderResponse,
    ObserveRequest, ObserveResponse, ProclaimRequest, ProclaimResponse, ResignRequest,
    ResignResponse, election_service_client::ElectionServiceClient,
    election_service_server::ElectionService,
};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::{
    lock::LockApi,
    parse_path, read_barrier, wants_linearizable,
    watch::{WatcherSlot, compacted, too_many_watchers},
};
use crate::{context::SharedCtx, forward::lead_or_forward, proposer::propose, status};

#[derive(Debug)]
pub struct ElectionApi {
    ctx: SharedCtx,
    locks: LockApi,
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<ObserveResponse, Status>> + Send>>;

impl ElectionApi {
    pub fn new(ctx: SharedCtx) -> ElectionApi {
        ElectionApi { locks: LockApi::new(ctx.clone()), ctx }
    }

    fn check_value(&self, value: &str) -> Result<(), Status> {
        let max = self.ctx.config.limits.holder_id_bytes_max;
        if value.len() > max {
            let message = format!("value is {} bytes; the limit is {max} bytes", value.len());
            return Err(status::invalid(ErrorReason::InvalidHolderId, message));
        }
        Ok(())
    }

    async fn campaign_rpc(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let campaign = request.get_ref().clone();
        let path = parse_path(&self.ctx, &campaign.name)?;
        self.check_value(&campaign.value)?;
        let wait_timeout_ms = match campaign.wait_timeout_ms {
            0 => self.ctx.config.limits.wait_timeout_ms_max,
            ms => ms,
        };
        let lock = v1::LockRequest {
            path: campaign.name.clone(),
            lease_id: campaign.lease_id,
            mode: v1::LockMode::Exclusive.into(),
            wait_timeout_ms,
            holder_id: campaign.value.clone(),
            request_id: campaign.request_id,
            permits: 0,
        };
        let (metadata, extensions, _) = request.into_parts();
        let granted = self.locks.lock_rpc(Request::from_parts(metadata, extensions, lock)).await?;
        let mut granted = granted.into_inner();
        // A lease that already leads campaigned again, maybe with a new value: it keeps
        // its leadership, and the value becomes the new one (as etcd does).
        let held_value = {
            let replica = self.ctx.store.lock();
            leader_of(&replica.machine, &path)?
                .filter(|holder| holder.token == granted.fencing_token)
                .map(|holder| holder.holder_id)
        };
        if held_value.is_some_and(|held| held != campaign.value) {
            let command = Command::Proclaim {
                path,
                lease_id: LeaseId(campaign.lease_id),
                token: granted.fencing_token,
                value: campaign.value.clone(),
                request_id: 0,
            };
            let result = propose(&self.ctx, command).await?;
            if let Some(Reply::Rejected(rejection)) = result.reply {
                return Err(status::rejection(&rejection));
            }
            granted.header = self.ctx.header(result.revision);
        }
        Ok(Response::new(CampaignResponse {
            header: granted.header,
            leader: Some(LeaderKey {
                name: campaign.name,
                lease_id: campaign.lease_id,
                fencing_token: granted.fencing_token,
            }),
            wait_time_ms: granted.wait_time_ms,
        }))
    }

    async fn proclaim_rpc(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let leader = required_leader(request.get_ref().leader.as_ref())?;
        let path = parse_path(&self.ctx, &leader.name)?;
        self.check_value(&request.get_ref().value)?;
        let request = lead_or_forward!(self.ctx, request, ElectionServiceClient, proclaim);
        let proclaim = request.into_inner();
        let command = Command::Proclaim {
            path,
            lease_id: LeaseId(leader.lease_id),
            token: leader.fencing_token,
            value: proclaim.value,
            request_id: proclaim.request_id,
        };
        let result = propose(&self.ctx, command).await?;
        match result.reply {
            Some(Reply::Proclaimed { .. }) => {
                Ok(Response::new(ProclaimResponse { header: self.ctx.header(result.revision) }))
            }
            Some(Reply::Rejected(rejection)) => Err(status::rejection(&rejection)),
            other => Err(status::internal(format!("unexpected reply to a proclaim: {other:?}"))),
        }
    }

    async fn resign_rpc(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let leader = required_leader(request.get_ref().leader.as_ref())?;
        let unlock = v1::UnlockRequest {
            path: leader.name,
            lease_id: leader.lease_id,
            fencing_token: leader.fencing_token,
            request_id: request.get_ref().request_id,
        };
        let (metadata, extensions, _) = request.into_parts();
        let done = self.locks.unlock_rpc(Request::from_parts(metadata, extensions, unlock)).await?;
        Ok(Response::new(ResignResponse { header: done.into_inner().header }))
    }

    async fn leader_rpc(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let path = parse_path(&self.ctx, &request.get_ref().name)?;
        if wants_linearizable(request.get_ref().consistency)? {
            let _request = lead_or_forward!(self.ctx, request, ElectionServiceClient, leader);
            read_barrier(&self.ctx).await?;
        }
        let (leader, revision) = {
            let replica = self.ctx.store.lock();
            (leader_of(&replica.machine, &path)?, replica.machine.revision())
        };
        let (leader, value) = split(&path, leader);
        Ok(Response::new(LeaderResponse { header: self.ctx.header(revision), leader, value }))
    }

    async fn observe_rpc(
        &self,
        request: Request<ObserveRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        let observe = request.into_inner();
        let path = parse_path(&self.ctx, &observe.name)?;
        let slot = WatcherSlot::take(&self.ctx).ok_or_else(|| too_many_watchers(&self.ctx))?;
        let (out, responses) = mpsc::channel(64);
        let start = {
            let replica = self.ctx.store.lock();
            match replica.observer.hub.subscribe(observe.start_revision) {
                Err(gone) => Err(gone.oldest_revision),
                Ok(subscription) => {
                    // From now: the leader as of this read, then what follows it (the
                    // read and the subscription are one instant: applies wait on this lock).
                    let now = if observe.start_revision == 0 {
                        let (leader, value) = split(&path, leader_of(&replica.machine, &path)?);
                        Some((leader, value, replica.machine.revision()))
                    } else {
                        None
                    };
                    Ok((subscription, now))
                }
            }
        };
        match start {
            Err(oldest) => {
                let _ = out.send(Ok(compacted_observe(&self.ctx, oldest))).await;
            }
            Ok((subscription, now)) => {
                let ctx = self.ctx.clone();
                tokio::spawn(pump(ctx, slot, path, observe.start_revision, now, subscription, out));
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }
}

/// Watch's compacted notice, as an observe answer: the stream ends; observe again from
/// `compact_revision`.
fn compacted_observe(ctx: &SharedCtx, compact_revision: u64) -> ObserveResponse {
    let gone = compacted(ctx, compact_revision);
    ObserveResponse {
        header: gone.header,
        compacted: true,
        compact_revision: gone.compact_revision,
        ..ObserveResponse::default()
    }
}

fn required_leader(leader: Option<&LeaderKey>) -> Result<LeaderKey, Status> {
    leader.cloned().ok_or_else(|| {
        let message =
            "leader is required: the key Campaign answered (name, lease_id, fencing_token)";
        status::invalid(ErrorReason::InvalidArgument, message)
    })
}

/// The leader of the election at `path`: its only exclusive holder. A path held in
/// another mode is not an election.
fn leader_of(
    machine: &lockmgr_core::StateMachine,
    path: &LockPath,
) -> Result<Option<HolderView>, Status> {
    let Some(view) = machine.lock(path) else { return Ok(None) };
    match view.holders.as_slice() {
        [] => Ok(None),
        [holder] if holder.mode == LockMode::Exclusive => Ok(Some(holder.clone())),
        [holder, ..] => Err(status::error(
            Code::FailedPrecondition,
            ErrorReason::ModeConflict,
            format!("{path} is held as a {} lock, not an election", holder.mode),
        )),
    }
}

fn split(path: &LockPath, leader: Option<HolderView>) -> (Option<LeaderKey>, String) {
    match leader {
        None => (None, String::new()),
        Some(holder) => {
            let key = LeaderKey {
                name: path.to_string(),
                lease_id: holder.lease_id.0,
                fencing_token: holder.token,
            };
            (Some(key), holder.holder_id)
        }
    }
}

/// What an event of the election's path says about its leadership, if anything.
fn change(event: &WatchEvent) -> Option<(Option<LeaderKey>, String)> {
    let key = |token| LeaderKey {
        name: event.path.to_string(),
        lease_id: event.lease_id.0,
        fencing_token: token,
    };
    match event.kind {
        _ if event.mode != LockMode::Exclusive => None,
        WatchEventKind::Acquired { .. } => {
            Some((Some(key(event.revision)), event.holder_id.clone()))
        }
        WatchEventKind::Proclaimed { token } => Some((Some(key(token)), event.holder_id.clone())),
        WatchEventKind::Released { .. } => Some((None, String::new())),
        WatchEventKind::Queued { .. } | WatchEventKind::Dequeued { .. } => None,
    }
}

async fn pump(
    ctx: SharedCtx,
    _slot: WatcherSlot,
    path: LockPath,
    start_revision: u64,
    now: Option<(Option<LeaderKey>, String, u64)>,
    subscription: crate::watch_hub::Subscription,
    out: mpsc::Sender<Result<ObserveResponse, Status>>,
) {
    let message = |leader, value, revision| ObserveResponse {
        header: ctx.header(revision),
        leader,
        value,
        revision,
        compacted: false,
        compact_revision: 0,
    };
    let mut seen_up_to = start_revision.saturating_sub(1);
    if let Some((leader, value, revision)) = now {
        seen_up_to = revision;
        if out.send(Ok(message(leader, value, revision))).await.is_err() {
            return;
        }
    }
    let crate::watch_hub::Subscription { replay, mut live } = subscription;
    let mut last_revision = seen_up_to;
    let send = |event: &Arc<WatchEvent>| {
        change(event).map(|(leader, value)| message(leader, value, event.revision))
    };
    for event in replay.iter().filter(|event| event.path == path) {
        last_revision = event.revision;
        if let Some(response) = send(event)
            && out.send(Ok(response)).await.is_err()
        {
            return;
        }
    }
    seen_up_to = seen_up_to.max(replay.last().map_or(0, |event| event.revision));
    loop {
        let received = tokio::select! {
            received = live.recv() => received,
            () = out.closed() => return,
        };
        match received {
            Ok(event) if event.revision <= seen_up_to || event.path != path => {}
            Ok(event) => {
                last_revision = event.revision;
                if let Some(response) = send(&event)
                    && out.send(Ok(response)).await.is_err()
                {
                    return;
                }
            }
            Err(RecvError::Lagged(_) | RecvError::Closed) => {
                let _ = out.send(Ok(compacted_observe(&ctx, last_revision + 1))).await;
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl ElectionService for ElectionApi {
    type ObserveStream = ObserveStream;

    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let parent = crate::context::trace_parent(&request);
        self.ctx.observe("Campaign", parent, self.campaign_rpc(request)).await
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let parent = crate::context::trace_parent(&request);
        self.ctx.observe("Proclaim", parent, self.proclaim_rpc(request)).await
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let parent = crate::context::trace_parent(&request);
        self.ctx.observe("Leader", parent, self.leader_rpc(request)).await
    }

    async fn observe(
        &self,
        request: Request<ObserveRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let parent = crate::context::trace_parent(&request);
        self.ctx.observe("Observe", parent, self.observe_rpc(request)).await
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let parent = crate::context::trace_parent(&request);
        self.ctx.observe("Resign", parent, self.resign_rpc(request)).await
    }
}
