//! `LockService.LockStream`: a lock whose acquisition is a stream of states. The request
//! is the leader's to serve (a follower relays the stream); the leader proposes the lock,
//! then follows the path: its place in the queue as the queue moves, the grant, whether
//! its lease is being renewed (the lessor's deadline), and the grant's end.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::Stream;
use lockmgr_core::{
    Command, FencingToken, LockOutcome, LockRequest, ReleaseReason, Reply, Revision, WatchEvent,
    WatchEventKind,
};
use lockmgr_proto::v1::{
    self, AcquisitionState, LockStreamResponse, lock_service_client::LockServiceClient,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{holder_to_wire, lock::LockApi};
use crate::{
    context::Route,
    forward::{forwarded, is_forwarded, relayed},
    proposer::propose,
    status,
};

pub type LockStateStream = Pin<Box<dyn Stream<Item = Result<LockStreamResponse, Status>> + Send>>;

type Out = mpsc::Sender<Result<LockStreamResponse, Status>>;
type Live = broadcast::Receiver<Arc<WatchEvent>>;

/// A lease is in jeopardy once the leader has heard no keepalive for this share of its
/// TTL (sessions renew every quarter TTL, so a healthy one never gets there).
const JEOPARDY_AFTER: (u64, u64) = (1, 3);

impl LockApi {
    pub(super) async fn lock_stream_rpc(
        &self,
        request: Request<v1::LockRequest>,
    ) -> Result<Response<LockStateStream>, Status> {
        let command = self.command(request.get_ref())?;
        match self.ctx.route_waiting().await {
            Route::Here => {}
            Route::Leader { id, node } => {
                if is_forwarded(&request) {
                    return Err(status::not_leader(Some((id, &node))));
                }
                let channel = self.ctx.forwarder.channel(&node.client_address)?;
                let limit = self.ctx.config.server.grpc_message_bytes_max;
                let mut client = LockServiceClient::new(channel)
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit);
                let answer = client
                    .lock_stream(forwarded(request))
                    .await
                    .map_err(|status| relayed(&self.ctx, status))?;
                return Ok(answer.map(|stream| Box::pin(stream) as LockStateStream));
            }
            Route::NoLeader => return Err(status::not_leader(None)),
        }
        // Subscribed before the proposal: no change of the path after it is missed.
        let live = self.subscribe();
        let result = propose(&self.ctx, Command::Lock(command.clone())).await?;
        let (out, responses) = mpsc::channel(16);
        let stage = match result.reply {
            Some(Reply::Lock(LockOutcome::Granted { token, .. })) => Stage::Held(token),
            Some(Reply::Lock(LockOutcome::Queued { queued_revision, .. })) => {
                Stage::Queued(queued_revision)
            }
            Some(Reply::Lock(LockOutcome::Busy { holders, .. })) => {
                let busy = LockStreamResponse {
                    header: self.ctx.header(result.revision),
                    state: AcquisitionState::Busy.into(),
                    holders: holders.iter().map(|holder| holder_to_wire(holder, 0)).collect(),
                    ..LockStreamResponse::default()
                };
                let _ = out.send(Ok(busy)).await;
                return Ok(Response::new(Box::pin(ReceiverStream::new(responses))));
            }
            Some(Reply::Rejected(rejection)) => return Err(status::rejection(&rejection)),
            other => {
                return Err(status::internal(format!("unexpected reply to a lock: {other:?}")));
            }
        };
        tokio::spawn(follow(self.clone(), command, stage, live, out));
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }

    fn subscribe(&self) -> Live {
        let replica = self.ctx.store.lock();
        replica.observer.hub.live()
    }

    /// The request's place in the queue and how many holders and waiters are ahead of it.
    fn place(&self, request: &LockRequest) -> Option<(u32, u32)> {
        let view = self.ctx.store.lock().machine.lock(&request.path)?;
        let position = view.waiters.iter().position(|w| w.lease_id == request.lease_id)?;
        Some((position as u32, (view.holders.len() + position) as u32))
    }

    /// Whether the grant of `token` still stands, and the lease's time left on this
    /// leader's clock (`None`: this member no longer leads).
    fn standing(&self, request: &LockRequest, token: FencingToken) -> Standing {
        let now_ms = self.ctx.clock.now_ms();
        let replica = self.ctx.store.lock();
        let held = replica.machine.lock(&request.path).is_some_and(|view| {
            view.holders.iter().any(|h| h.lease_id == request.lease_id && h.token == token)
        });
        let Some(lease) = replica.machine.lease(request.lease_id).filter(|_| held) else {
            return Standing::Ended;
        };
        match replica.observer.lessor.remaining_ms(now_ms, request.lease_id) {
            Some(remaining_ms) => Standing::Held { remaining_ms, ttl_ms: lease.ttl_ms },
            None => Standing::NotLeader,
        }
    }

    fn message(&self, state: AcquisitionState) -> LockStreamResponse {
        LockStreamResponse {
            header: self.ctx.current_header(),
            state: state.into(),
            ..LockStreamResponse::default()
        }
    }
}

enum Stage {
    Queued(Revision),
    Held(FencingToken),
}

enum Standing {
    Held { remaining_ms: u64, ttl_ms: u64 },
    Ended,
    NotLeader,
}

/// Follows one acquisition until its grant ends, its wait fails, or the caller leaves (a
/// caller that leaves a wait detaches from it: `LockApi::wait`'s abandonment rule).
async fn follow(api: LockApi, request: LockRequest, stage: Stage, mut live: Live, out: Out) {
    let token = match stage {
        Stage::Held(token) => token,
        Stage::Queued(queued_revision) => {
            match wait_in_queue(&api, &request, queued_revision, &mut live, &out).await {
                Some(token) => token,
                None => return,
            }
        }
    };
    hold(&api, &request, token, &mut live, &out).await;
}

async fn wait_in_queue(
    api: &LockApi,
    request: &LockRequest,
    queued_revision: Revision,
    live: &mut Live,
    out: &Out,
) -> Option<FencingToken> {
    let wait = api.wait(request, queued_revision);
    tokio::pin!(wait);
    let mut told = None;
    loop {
        if let Some((position, ahead)) = api.place(request)
            && told != Some((position, ahead))
        {
            told = Some((position, ahead));
            let queued =
                LockStreamResponse { position, ahead, ..api.message(AcquisitionState::Queued) };
            out.send(Ok(queued)).await.ok()?;
        }
        tokio::select! {
            result = &mut wait => {
                return match result {
                    Ok(granted) => Some(granted.into_inner().fencing_token),
                    Err(status) => {
                        let _ = out.send(Err(status)).await;
                        None
                    }
                };
            }
            () = next_change(api, request, live) => {}
            () = out.closed() => return None,
        }
    }
}

async fn hold(
    api: &LockApi,
    request: &LockRequest,
    token: FencingToken,
    live: &mut Live,
    out: &Out,
) {
    let acquired =
        LockStreamResponse { fencing_token: token, ..api.message(AcquisitionState::Acquired) };
    if out.send(Ok(acquired)).await.is_err() {
        return;
    }
    let mut jeopardy = false;
    let mut ended = None;
    loop {
        let (remaining_ms, ttl_ms) = match api.standing(request, token) {
            Standing::Held { remaining_ms, ttl_ms } => (remaining_ms, ttl_ms),
            Standing::Ended => {
                let lost = LockStreamResponse {
                    fencing_token: token,
                    reason: release_reason(ended).into(),
                    ..api.message(AcquisitionState::Lost)
                };
                let _ = out.send(Ok(lost)).await;
                return;
            }
            Standing::NotLeader => {
                let leader = api.ctx.leader_info().filter(|(id, _)| *id != api.ctx.node_id);
                let _ = out
                    .send(Err(status::not_leader(leader.as_ref().map(|(id, n)| (*id, n)))))
                    .await;
                return;
            }
        };
        let (part, whole) = JEOPARDY_AFTER;
        let low = remaining_ms.saturating_mul(whole) < ttl_ms.saturating_mul(whole - part);
        if low != jeopardy {
            jeopardy = low;
            let message = if low {
                LockStreamResponse {
                    fencing_token: token,
                    remaining_ttl_ms: remaining_ms as i64,
                    ..api.message(AcquisitionState::Jeopardy)
                }
            } else {
                LockStreamResponse {
                    fencing_token: token,
                    ..api.message(AcquisitionState::Acquired)
                }
            };
            if out.send(Ok(message)).await.is_err() {
                return;
            }
        }
        let tick = Duration::from_millis((ttl_ms / 10).clamp(50, 1_000));
        tokio::select! {
            reason = released(request, token, live) => ended = reason.or(ended),
            () = tokio::time::sleep(tick) => {}
            () = out.closed() => return,
        }
    }
}

/// Resolves at the next event of the request's path (or when events were missed, so the
/// caller re-reads the state).
async fn next_change(api: &LockApi, request: &LockRequest, live: &mut Live) {
    loop {
        match live.recv().await {
            Ok(event) if event.path != request.path => {}
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            // The member's state was replaced by a snapshot: follow the new stream.
            Err(broadcast::error::RecvError::Closed) => {
                *live = api.subscribe();
                return;
            }
        }
    }
}

/// Resolves at the next event of the path, with the reason if it released `token`.
async fn released(
    request: &LockRequest,
    token: FencingToken,
    live: &mut Live,
) -> Option<ReleaseReason> {
    loop {
        match live.recv().await {
            Ok(event) if event.path != request.path => {}
            Ok(event) => {
                return match event.kind {
                    WatchEventKind::Released { token: ended, reason } if ended == token => {
                        Some(reason)
                    }
                    _ => None,
                };
            }
            // Missed events or a replaced state: the caller re-reads it (after its tick,
            // so a closed stream does not spin).
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return None;
            }
        }
    }
}

fn release_reason(reason: Option<ReleaseReason>) -> v1::ReleaseReason {
    match reason {
        Some(ReleaseReason::Released) => v1::ReleaseReason::Released,
        Some(ReleaseReason::Revoked) => v1::ReleaseReason::Revoked,
        Some(ReleaseReason::Expired) => v1::ReleaseReason::Expired,
        None => v1::ReleaseReason::Unspecified,
    }
}
