//! `LeaseService`: grant, keep alive (served by the leader's lessor after a read-index,
//! without a log write unless a checkpoint must be cleared), revoke, inspect.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use lockmgr_core::{Command, KeepAliveError, LeaseId, Reply};
use lockmgr_proto::v1::{
    ErrorReason, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseListRequest, LeaseListResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    lease_service_client::LeaseServiceClient, lease_service_server::LeaseService,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::{debug, info};

use super::read_barrier;
use crate::{
    context::{ClearRequest, Route, SharedCtx},
    forward::{self, lead_or_forward},
    proposer::propose,
    status,
};

#[derive(Debug)]
pub struct LeaseApi {
    ctx: SharedCtx,
}

impl LeaseApi {
    pub fn new(ctx: SharedCtx) -> LeaseApi {
        LeaseApi { ctx }
    }

    /// A follower relays a keepalive stream to the leader and the answers back. When
    /// this member learns of another leader (or campaigns itself) the relayed stream
    /// ends with `UNAVAILABLE` naming the new leader, and the client opens another: a
    /// dead or paused leader never keeps a session waiting past the election.
    async fn proxy_keepalives(
        &self,
        leader_id: u64,
        leader_address: &str,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let channel = self.ctx.forwarder.channel(leader_address)?;
        let metadata = request.metadata().clone();
        let mut inbound = request.into_inner();
        let (pings, relayed) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(Ok(ping)) = inbound.next().await {
                if pings.send(ping).await.is_err() {
                    return;
                }
            }
        });
        let onward = forward::forwarded_with(&metadata, ReceiverStream::new(relayed));
        let ctx = self.ctx.clone();
        let mut leader = LeaseServiceClient::new(channel);
        let opened = tokio::select! {
            opened = leader.keep_alive(onward) => opened,
            moved = ctx.leader_changed(leader_id) => {
                moved?;
                return Err(forward::leader_moved(&ctx));
            }
        };
        let opened = match opened {
            Ok(opened) => opened,
            Err(status) if lockmgr_proto::error_detail(&status).is_some() => return Err(status),
            // The leader cannot be reached: name the next one once there is one.
            Err(status) => {
                let wait = ctx.config.propose_timeout();
                return match tokio::time::timeout(wait, ctx.leader_changed(leader_id)).await {
                    Err(_) => Err(forward::relayed(&ctx, status)),
                    Ok(Err(stopped)) => Err(stopped),
                    Ok(Ok(())) => Err(forward::leader_moved(&ctx)),
                };
            }
        };
        let relayed_ctx = ctx.clone();
        let answers = opened
            .into_inner()
            .map(move |answer| answer.map_err(|status| forward::relayed(&relayed_ctx, status)));
        let moved_ctx = ctx.clone();
        let moved = async move {
            let _ = moved_ctx.leader_changed(leader_id).await;
        };
        let last = futures_util::stream::once(async move { Err(forward::leader_moved(&ctx)) });
        Ok(Response::new(Box::pin(answers.take_until(moved).chain(last))))
    }
}

fn lease_not_found(lease_id: i64) -> Status {
    status::error(
        Code::NotFound,
        ErrorReason::LeaseNotFound,
        format!("lease {lease_id} not found (never granted, revoked or expired)"),
    )
}

/// One keepalive: the TTL from now, 0 if the lease is gone.
async fn renew(ctx: &SharedCtx, lease_id: LeaseId) -> Result<u64, Status> {
    let result = renew_here(ctx, lease_id).await;
    let status = match &result {
        Ok(0) => "not_found",
        Ok(_) => "success",
        Err(_) => "failure",
    };
    ctx.metrics.lease_renew_total.with_label_values(&[status]).inc();
    result
}

async fn renew_here(ctx: &SharedCtx, lease_id: LeaseId) -> Result<u64, Status> {
    let renewal = {
        let now_ms = ctx.clock.now_ms();
        ctx.store.lock().observer.lessor.handle_keepalive(now_ms, lease_id)
    };
    match renewal {
        Ok(renewal) if renewal.needs_checkpoint_clear => {
            let (done, cleared) = oneshot::channel();
            ctx.clears
                .send(ClearRequest { lease_id, done })
                .await
                .map_err(|_| status::shutting_down())?;
            cleared.await.map_err(|_| status::shutting_down())??;
            Ok(renewal.ttl_ms)
        }
        Ok(renewal) => Ok(renewal.ttl_ms),
        Err(KeepAliveError::NotFound(_) | KeepAliveError::Expired(_)) => Ok(0),
        Err(KeepAliveError::NotPrimary) => {
            Err(status::not_leader(ctx.leader_info().as_ref().map(|(id, node)| (*id, node))))
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

/// Serves one keepalive stream: per batch of pings that arrived together, one read-index.
async fn serve_keepalives(
    ctx: SharedCtx,
    mut pings: Streaming<LeaseKeepAliveRequest>,
    out: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) {
    while let Some(first) = pings.next().await {
        let mut batch = vec![first];
        while let Some(Some(next)) = futures_util::FutureExt::now_or_never(pings.next()) {
            batch.push(next);
        }
        let answers = match read_barrier(&ctx).await {
            Ok(()) => {
                let mut answers = Vec::with_capacity(batch.len());
                for ping in batch {
                    let answer = match ping {
                        Ok(ping) => renew(&ctx, LeaseId(ping.lease_id)).await.map(|ttl_ms| {
                            debug!(lease_id = ping.lease_id, new_ttl_ms = ttl_ms, "Lease renewed");
                            LeaseKeepAliveResponse {
                                header: ctx.current_header(),
                                lease_id: ping.lease_id,
                                ttl_ms: ttl_ms as i64,
                            }
                        }),
                        Err(status) => Err(status),
                    };
                    answers.push(answer);
                }
                answers
            }
            Err(status) => vec![Err(status)],
        };
        for answer in answers {
            let failed = answer.is_err();
            if out.send(answer).await.is_err() || failed {
                return;
            }
        }
    }
}

impl LeaseApi {
    async fn grant_rpc(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let ttl_ms = request.get_ref().ttl_ms;
        let client = request.remote_addr().map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        if ttl_ms < 0 {
            return Err(status::invalid(
                ErrorReason::InvalidTtl,
                format!("ttl_ms {ttl_ms} is negative"),
            ));
        }
        let _request = lead_or_forward!(self.ctx, request, LeaseServiceClient, grant);
        let result = propose(&self.ctx, Command::GrantLease { ttl_ms: ttl_ms as u64 }).await?;
        match result.reply {
            Some(Reply::LeaseGranted { lease_id, ttl_ms }) => {
                info!(lease_id = lease_id.0, ttl_ms, %client, "Lease granted");
                Ok(Response::new(LeaseGrantResponse {
                    header: self.ctx.header(result.revision),
                    lease_id: lease_id.0,
                    ttl_ms: ttl_ms as i64,
                }))
            }
            Some(Reply::Rejected(rejection)) => Err(status::rejection(&rejection)),
            other => Err(status::internal(format!("unexpected reply to a grant: {other:?}"))),
        }
    }

    async fn keep_alive_rpc(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        match self.ctx.route_waiting().await {
            Route::Here => {}
            Route::Leader { id, node } if !forward::is_forwarded(&request) => {
                return self.proxy_keepalives(id, &node.client_address, request).await;
            }
            Route::Leader { id, node } => return Err(status::not_leader(Some((id, &node)))),
            Route::NoLeader => return Err(status::not_leader(None)),
        }
        let (out, answers) = mpsc::channel(64);
        tokio::spawn(serve_keepalives(self.ctx.clone(), request.into_inner(), out));
        Ok(Response::new(Box::pin(ReceiverStream::new(answers))))
    }

    async fn revoke_rpc(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let lease_id = request.get_ref().lease_id;
        let _request = lead_or_forward!(self.ctx, request, LeaseServiceClient, revoke);
        let result =
            propose(&self.ctx, Command::RevokeLease { lease_id: LeaseId(lease_id) }).await?;
        match result.reply {
            Some(Reply::LeaseEnded { .. }) => {
                info!(lease_id, "Lease revoked");
                Ok(Response::new(LeaseRevokeResponse { header: self.ctx.header(result.revision) }))
            }
            Some(Reply::Rejected(rejection)) => Err(status::rejection(&rejection)),
            other => Err(status::internal(format!("unexpected reply to a revoke: {other:?}"))),
        }
    }

    async fn time_to_live_rpc(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let lease_id = request.get_ref().lease_id;
        let _request = lead_or_forward!(self.ctx, request, LeaseServiceClient, time_to_live);
        read_barrier(&self.ctx).await?;
        let now_ms = self.ctx.clock.now_ms();
        let replica = self.ctx.store.lock();
        let Some(view) = replica.machine.lease(LeaseId(lease_id)) else {
            return Err(lease_not_found(lease_id));
        };
        let Some(remaining_ms) = replica.observer.lessor.remaining_ms(now_ms, LeaseId(lease_id))
        else {
            return Err(status::not_leader(None));
        };
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: self.ctx.header(replica.machine.revision()),
            lease_id,
            granted_ttl_ms: view.ttl_ms as i64,
            remaining_ttl_ms: remaining_ms as i64,
            held_paths: view.held.iter().map(ToString::to_string).collect(),
            waiting_paths: view.waiting.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn list_rpc(
        &self,
        request: Request<LeaseListRequest>,
    ) -> Result<Response<LeaseListResponse>, Status> {
        let settings = &self.ctx.config.server;
        let limit = match request.get_ref().limit {
            0 => settings.list_page_size_default,
            n => n.min(settings.list_page_size_max),
        } as usize;
        let after = Some(LeaseId(request.get_ref().after_lease_id)).filter(|id| id.0 > 0);
        let _request = lead_or_forward!(self.ctx, request, LeaseServiceClient, list);
        read_barrier(&self.ctx).await?;
        let replica = self.ctx.store.lock();
        // One more than the page says whether another page follows.
        let mut views = replica.machine.leases(after, limit + 1);
        let next_after_lease_id = if views.len() > limit {
            views.truncate(limit);
            views.last().map_or(0, |v| v.lease_id.0)
        } else {
            0
        };
        let leases = views
            .iter()
            .map(|view| LeaseStatus {
                lease_id: view.lease_id.0,
                granted_ttl_ms: view.ttl_ms as i64,
                held_locks: view.held.len() as u32,
                waiting: view.waiting.len() as u32,
            })
            .collect();
        Ok(Response::new(LeaseListResponse {
            header: self.ctx.header(replica.machine.revision()),
            leases,
            next_after_lease_id,
        }))
    }
}

#[tonic::async_trait]
impl LeaseService for LeaseApi {
    type KeepAliveStream = KeepAliveStream;

    async fn grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.ctx
            .observe("Grant", crate::context::trace_parent(&request), self.grant_rpc(request))
            .await
    }

    async fn keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        self.ctx
            .observe(
                "KeepAlive",
                crate::context::trace_parent(&request),
                self.keep_alive_rpc(request),
            )
            .await
    }

    async fn revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.ctx
            .observe("Revoke", crate::context::trace_parent(&request), self.revoke_rpc(request))
            .await
    }

    async fn time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.ctx
            .observe(
                "TimeToLive",
                crate::context::trace_parent(&request),
                self.time_to_live_rpc(request),
            )
            .await
    }

    async fn list(
        &self,
        request: Request<LeaseListRequest>,
    ) -> Result<Response<LeaseListResponse>, Status> {
        self.ctx
            .observe("List", crate::context::trace_parent(&request), self.list_rpc(request))
            .await
    }
}
