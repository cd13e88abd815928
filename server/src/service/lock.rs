//! `LockService`: acquire (and wait in the queue), release by token, inspect, validate a
//! fencing token.

use std::time::Duration;

use lockmgr_core::{
    CancelReason, Command, DequeueReason, LeaseId, LockOutcome, LockPath, LockRequest, LockView,
    Rejection, Reply, Revision, check_prefix,
};
use lockmgr_proto::v1::{
    self, ErrorReason, GetLockRequest, GetLockResponse, ListLocksRequest, ListLocksResponse,
    LockResponse, UnlockRequest, UnlockResponse, ValidateFenceRequest, ValidateFenceResponse,
    lock_service_client::LockServiceClient, lock_service_server::LockService,
};
use tonic::{Code, Request, Response, Status};
use tracing::warn;

use super::{
    holder_to_wire, mode_from_wire, mode_to_wire, parse_path, read_barrier, wants_linearizable,
};
use crate::{
    context::SharedCtx,
    effects::{AttachmentId, WaitOutcome, settled},
    forward::lead_or_forward,
    proposer::propose,
    status,
};

#[derive(Clone, Debug)]
pub struct LockApi {
    pub(super) ctx: SharedCtx,
}

impl LockApi {
    pub fn new(ctx: SharedCtx) -> LockApi {
        LockApi { ctx }
    }

    pub(super) fn command(&self, request: &v1::LockRequest) -> Result<LockRequest, Status> {
        let limits = &self.ctx.config.limits;
        let path = parse_path(&self.ctx, &request.path)?;
        if request.holder_id.len() > limits.holder_id_bytes_max {
            let message = format!(
                "holder_id is {} bytes; the limit is {} bytes",
                request.holder_id.len(),
                limits.holder_id_bytes_max
            );
            return Err(status::invalid(ErrorReason::InvalidHolderId, message));
        }
        if request.wait_timeout_ms > limits.wait_timeout_ms_max {
            let message = format!(
                "wait_timeout_ms {} exceeds the limit of {} ms",
                request.wait_timeout_ms, limits.wait_timeout_ms_max
            );
            return Err(status::invalid(ErrorReason::InvalidWaitTimeout, message));
        }
        Ok(LockRequest {
            path,
            lease_id: LeaseId(request.lease_id),
            mode: mode_from_wire(request.mode, request.permits, limits.semaphore_permits_max)?,
            wait_timeout_ms: request.wait_timeout_ms,
            holder_id: request.holder_id.clone(),
            request_id: request.request_id,
        })
    }

    fn granted(
        &self,
        token: u64,
        mode: lockmgr_core::LockMode,
        revision: Revision,
    ) -> Response<LockResponse> {
        Response::new(LockResponse {
            header: self.ctx.header(revision),
            acquired: true,
            fencing_token: token,
            mode: mode_to_wire(mode),
            holders: Vec::new(),
            lock_delay: false,
            wait_time_ms: 0,
        })
    }

    /// Waits for a queued request's grant, time-out or loss of its lease. Every caller of
    /// the request (its retries included) attaches to the one wait and learns its outcome.
    pub(super) async fn wait(
        &self,
        request: &LockRequest,
        queued_revision: Revision,
    ) -> Result<Response<LockResponse>, Status> {
        let registered = {
            let mut replica = self.ctx.store.lock();
            let replica = &mut *replica;
            replica.observer.register_wait(
                &replica.machine,
                &request.path,
                request.lease_id,
                queued_revision,
                request.request_id,
            )
        };
        let outcome = match registered {
            Err(outcome) => outcome,
            Ok((attachment, receiver)) => {
                let mut guard = Attached {
                    ctx: Some(self.ctx.clone()),
                    request: request.clone(),
                    queued_revision,
                    attachment,
                };
                let limit = Duration::from_millis(
                    request.wait_timeout_ms + self.ctx.config.server.wait_grace_ms,
                );
                let mut receiver = receiver;
                let outcome = match tokio::time::timeout(limit, &mut receiver).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => return Err(status::shutting_down()),
                    Err(_) => {
                        // Still attached while the cancel goes through: a grant (or a
                        // dequeue) applied before it wakes this caller, and is what it is
                        // told, even if the lease has ended since (found by the
                        // simulator: a grant just before the cancel was answered as a
                        // time-out once its lease had expired).
                        let judged = cancel_wait(
                            &self.ctx,
                            request,
                            queued_revision,
                            CancelReason::WaitTimeout,
                        )
                        .await?;
                        receiver.try_recv().unwrap_or(judged)
                    }
                };
                guard.detach();
                guard.ctx = None;
                outcome
            }
        };
        let revision = self.ctx.store.lock().machine.revision();
        match outcome {
            WaitOutcome::Granted { token, mode } => Ok(self.granted(token, mode, revision)),
            WaitOutcome::Ended(reason) => Err(wait_ended(request, reason)),
        }
    }
}

/// What a lock request met: nothing in its way, a holder that refused it at once (a
/// try-lock), or a queue it waited in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contention {
    None,
    Refused,
    Queued,
}

/// The `status` label of `lock_acquire_total` (see `metrics.rs`).
fn acquire_status(result: &Result<Response<LockResponse>, Status>) -> &'static str {
    match result {
        Ok(response) if response.get_ref().acquired => "success",
        Ok(_) => "busy",
        Err(status) => match status.code() {
            Code::DeadlineExceeded => "timeout",
            Code::Aborted | Code::Cancelled => "aborted",
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::ResourceExhausted => "rejected",
            _ => "failure",
        },
    }
}

fn wait_ended(request: &LockRequest, reason: DequeueReason) -> Status {
    match reason {
        DequeueReason::WaitTimeout => {
            warn!(lock_path = %request.path, holder_id = %request.holder_id, wait_time_ms = request.wait_timeout_ms, "Lock wait timeout");
            status::error(
                Code::DeadlineExceeded,
                ErrorReason::WaitTimeout,
                format!(
                    "timed out after {} ms waiting for {}",
                    request.wait_timeout_ms, request.path
                ),
            )
        }
        DequeueReason::Cancelled => {
            status::rejection(&Rejection::WaitCancelled { path: request.path.clone() })
        }
        DequeueReason::Revoked | DequeueReason::Expired => status::error(
            Code::Aborted,
            ErrorReason::LeaseLost,
            format!("lease {} ended while waiting for {}", request.lease_id, request.path),
        ),
    }
}

/// Proposes `CancelWait` for this request's wait (a wait that a later request took over
/// is not this request's to end) and reports how the wait really ended for this caller
/// (it may have been granted just before).
async fn cancel_wait(
    ctx: &SharedCtx,
    request: &LockRequest,
    queued_revision: Revision,
    reason: CancelReason,
) -> Result<WaitOutcome, Status> {
    let command = Command::CancelWait {
        path: request.path.clone(),
        lease_id: request.lease_id,
        queued_revision,
        request_id: request.request_id,
        reason,
    };
    propose(ctx, command).await?;
    let replica = ctx.store.lock();
    let settled = settled(
        &replica.machine,
        &request.path,
        request.lease_id,
        queued_revision,
        request.request_id,
    );
    Ok(match settled {
        Some(granted @ WaitOutcome::Granted { .. }) => granted,
        // Ended, or still waiting for the later request that took the wait over.
        _ => WaitOutcome::Ended(DequeueReason::WaitTimeout),
    })
}

/// One caller attached to a wait. A caller that goes away (a cancelled call, a lost
/// connection, a forwarding member that died) detaches; the wait keeps its place for
/// `server.abandoned_wait_grace_ms`, so that a retry with the same request_id (or a new
/// request from the lease) takes it up again, and is cancelled only if no caller
/// attached meanwhile.
struct Attached {
    ctx: Option<SharedCtx>,
    request: LockRequest,
    queued_revision: Revision,
    attachment: AttachmentId,
}

impl Attached {
    /// Detaches this caller; says whether others are still attached.
    fn detach(&self) -> bool {
        let Some(ctx) = &self.ctx else { return false };
        let request = &self.request;
        ctx.store.lock().observer.forget_wait(
            &request.path,
            request.lease_id,
            self.queued_revision,
            self.attachment,
        )
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if self.detach() {
            return;
        }
        let Some(ctx) = self.ctx.take() else { return };
        let request = self.request.clone();
        let queued_revision = self.queued_revision;
        let grace = Duration::from_millis(ctx.config.server.abandoned_wait_grace_ms);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let abandoned = {
                let replica = ctx.store.lock();
                let waiting =
                    replica.observer.is_attached(&request.path, request.lease_id, queued_revision);
                !waiting
                    && settled(
                        &replica.machine,
                        &request.path,
                        request.lease_id,
                        queued_revision,
                        request.request_id,
                    )
                    .is_none()
            };
            if abandoned {
                let _ = cancel_wait(&ctx, &request, queued_revision, CancelReason::Cancelled).await;
            }
        });
    }
}

fn lock_view_to_wire(ctx: &SharedCtx, view: &LockView) -> v1::LockInfo {
    let replica = ctx.store.lock();
    let ages = &replica.observer;
    v1::LockInfo {
        path: view.path.to_string(),
        holders: view.holders.iter().map(|h| holder_to_wire(h, ages.age_ms(h.token))).collect(),
        waiters: view
            .waiters
            .iter()
            .map(|w| v1::Waiter {
                lease_id: w.lease_id.0,
                holder_id: w.holder_id.clone(),
                mode: mode_to_wire(w.mode),
                wait_timeout_ms: w.wait_timeout_ms,
                queued_revision: w.queued_revision,
                waited_ms: ages.age_ms(w.queued_revision),
                permits: super::permits_to_wire(w.mode),
            })
            .collect(),
        lock_delay: view.lock_delay,
    }
}

impl LockApi {
    pub(super) async fn lock_rpc(
        &self,
        request: Request<v1::LockRequest>,
    ) -> Result<Response<LockResponse>, Status> {
        let command = self.command(request.get_ref())?;
        let _request = lead_or_forward!(self.ctx, request, LockServiceClient, lock);
        let started = tokio::time::Instant::now();
        let (mut result, contention) = self.acquire(&command).await;
        let status = acquire_status(&result);
        let seconds = started.elapsed().as_secs_f64();
        // Only a request that queued waited; one refused at once (busy) reports 0.
        if let (Ok(response), Contention::Queued) = (&mut result, contention) {
            response.get_mut().wait_time_ms = started.elapsed().as_millis() as u64;
        }
        let contended = contention != Contention::None;
        self.ctx.metrics.acquired(command.path.as_str(), status, seconds, contended);
        result
    }

    /// Proposes the lock and waits if it queued; says what contention it met.
    async fn acquire(
        &self,
        command: &LockRequest,
    ) -> (Result<Response<LockResponse>, Status>, Contention) {
        let result = match propose(&self.ctx, Command::Lock(command.clone())).await {
            Ok(result) => result,
            Err(status) => return (Err(status), Contention::None),
        };
        match result.reply {
            Some(Reply::Lock(LockOutcome::Granted { token, mode })) => {
                (Ok(self.granted(token, mode, result.revision)), Contention::None)
            }
            Some(Reply::Lock(LockOutcome::Busy { holders, lock_delay })) => {
                let busy = LockResponse {
                    header: self.ctx.header(result.revision),
                    acquired: false,
                    fencing_token: 0,
                    mode: mode_to_wire(command.mode),
                    holders: holders.iter().map(|h| holder_to_wire(h, 0)).collect(),
                    lock_delay,
                    wait_time_ms: 0,
                };
                (Ok(Response::new(busy)), Contention::Refused)
            }
            Some(Reply::Lock(LockOutcome::Queued { queued_revision, .. })) => {
                (self.wait(command, queued_revision).await, Contention::Queued)
            }
            Some(Reply::Rejected(rejection)) => {
                (Err(status::rejection(&rejection)), Contention::None)
            }
            other => {
                let message = format!("unexpected reply to a lock: {other:?}");
                (Err(status::internal(message)), Contention::None)
            }
        }
    }

    pub(super) async fn unlock_rpc(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let path = parse_path(&self.ctx, &request.get_ref().path)?;
        let request = lead_or_forward!(self.ctx, request, LockServiceClient, unlock);
        let unlock = request.into_inner();
        let command = Command::Unlock {
            path: path.clone(),
            lease_id: LeaseId(unlock.lease_id),
            token: unlock.fencing_token,
            request_id: unlock.request_id,
        };
        let result = propose(&self.ctx, command).await?;
        match result.reply {
            Some(Reply::Unlocked { .. }) => {
                Ok(Response::new(UnlockResponse { header: self.ctx.header(result.revision) }))
            }
            Some(Reply::Rejected(rejection)) => Err(status::rejection(&rejection)),
            other => Err(status::internal(format!("unexpected reply to an unlock: {other:?}"))),
        }
    }

    async fn get_lock_rpc(
        &self,
        request: Request<GetLockRequest>,
    ) -> Result<Response<GetLockResponse>, Status> {
        let path = parse_path(&self.ctx, &request.get_ref().path)?;
        if wants_linearizable(request.get_ref().consistency)? {
            let _request = lead_or_forward!(self.ctx, request, LockServiceClient, get_lock);
            read_barrier(&self.ctx).await?;
        }
        let (view, revision) = {
            let replica = self.ctx.store.lock();
            (replica.machine.lock(&path), replica.machine.revision())
        };
        let lock = view.map(|view| lock_view_to_wire(&self.ctx, &view));
        Ok(Response::new(GetLockResponse { header: self.ctx.header(revision), lock }))
    }

    async fn list_locks_rpc(
        &self,
        request: Request<ListLocksRequest>,
    ) -> Result<Response<ListLocksResponse>, Status> {
        let list = request.get_ref().clone();
        check_prefix(&list.prefix, self.ctx.config.limits.path_rules())
            .map_err(|e| status::invalid_path(&e))?;
        let after = match list.page_token.as_str() {
            "" => None,
            token => {
                Some(LockPath::parse(token, self.ctx.config.limits.path_rules()).map_err(|e| {
                    status::invalid(ErrorReason::InvalidArgument, format!("bad page_token: {e}"))
                })?)
            }
        };
        let settings = &self.ctx.config.server;
        let limit = match list.limit {
            0 => settings.list_page_size_default,
            n => n.min(settings.list_page_size_max),
        } as usize;
        if wants_linearizable(list.consistency)? {
            let _request = lead_or_forward!(self.ctx, request, LockServiceClient, list_locks);
            read_barrier(&self.ctx).await?;
        }
        // One more than the page says whether another page follows.
        let (mut views, revision) = {
            let replica = self.ctx.store.lock();
            let views = replica.machine.locks(&list.prefix, after.as_ref(), limit + 1);
            (views, replica.machine.revision())
        };
        let next_page_token = if views.len() > limit {
            views.truncate(limit);
            views.last().map(|v| v.path.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        let locks = views.iter().map(|view| lock_view_to_wire(&self.ctx, view)).collect();
        Ok(Response::new(ListLocksResponse {
            header: self.ctx.header(revision),
            locks,
            next_page_token,
        }))
    }

    async fn validate_fence_rpc(
        &self,
        request: Request<ValidateFenceRequest>,
    ) -> Result<Response<ValidateFenceResponse>, Status> {
        let path = parse_path(&self.ctx, &request.get_ref().path)?;
        let token = request.get_ref().fencing_token;
        if wants_linearizable(request.get_ref().consistency)? {
            let _request = lead_or_forward!(self.ctx, request, LockServiceClient, validate_fence);
            read_barrier(&self.ctx).await?;
        }
        let (check, revision) = {
            let replica = self.ctx.store.lock();
            (replica.machine.validate_fence(&path, token), replica.machine.revision())
        };
        Ok(Response::new(ValidateFenceResponse {
            header: self.ctx.header(revision),
            valid: check.valid,
            current_tokens: check.current_tokens,
        }))
    }
}

#[tonic::async_trait]
impl LockService for LockApi {
    type LockStreamStream = super::lock_stream::LockStateStream;

    async fn lock_stream(
        &self,
        request: Request<v1::LockRequest>,
    ) -> Result<Response<Self::LockStreamStream>, Status> {
        let parent = crate::context::trace_parent(&request);
        self.ctx.observe("LockStream", parent, self.lock_stream_rpc(request)).await
    }

    async fn lock(
        &self,
        request: Request<v1::LockRequest>,
    ) -> Result<Response<LockResponse>, Status> {
        self.ctx
            .observe("Lock", crate::context::trace_parent(&request), self.lock_rpc(request))
            .await
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        self.ctx
            .observe("Unlock", crate::context::trace_parent(&request), self.unlock_rpc(request))
            .await
    }

    async fn get_lock(
        &self,
        request: Request<GetLockRequest>,
    ) -> Result<Response<GetLockResponse>, Status> {
        self.ctx
            .observe("GetLock", crate::context::trace_parent(&request), self.get_lock_rpc(request))
            .await
    }

    async fn list_locks(
        &self,
        request: Request<ListLocksRequest>,
    ) -> Result<Response<ListLocksResponse>, Status> {
        self.ctx
            .observe(
                "ListLocks",
                crate::context::trace_parent(&request),
                self.list_locks_rpc(request),
            )
            .await
    }

    async fn validate_fence(
        &self,
        request: Request<ValidateFenceRequest>,
    ) -> Result<Response<ValidateFenceResponse>, Status> {
        self.ctx
            .observe(
                "ValidateFence",
                crate::context::trace_parent(&request),
                self.validate_fence_rpc(request),
            )
            .await
    }
}
