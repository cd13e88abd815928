//! `WatchService`: a stream of a path's (or a prefix's) lock events in revision order,
//! replayed from a start revision, from this node's applied state.

use std::{
    pin::Pin,
    sync::{Arc, atomic::Ordering},
};

use futures_util::Stream;
use lockmgr_core::{LockPath, WatchEvent, check_prefix};
use lockmgr_proto::{
    status_with_detail,
    v1::{
        ErrorDetail, ErrorReason, WatchRequest, WatchResponse, watch_service_server::WatchService,
    },
};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::{event_to_wire, parse_path};
use crate::{context::SharedCtx, status, watch_hub::Subscription};

#[derive(Debug)]
pub struct WatchApi {
    ctx: SharedCtx,
}

impl WatchApi {
    pub fn new(ctx: SharedCtx) -> WatchApi {
        WatchApi { ctx }
    }
}

enum Filter {
    Path(LockPath),
    Prefix(String),
}

impl Filter {
    fn matches(&self, event: &WatchEvent) -> bool {
        match self {
            Filter::Path(path) => event.path == *path,
            Filter::Prefix(prefix) => event.path.is_under(prefix),
        }
    }
}

/// Counts a live watch stream against `watchers_max` while it exists.
pub(super) struct WatcherSlot(SharedCtx);

impl WatcherSlot {
    /// A slot, if fewer than `watchers_max` streams are live; released on drop.
    pub(super) fn take(ctx: &SharedCtx) -> Option<WatcherSlot> {
        let max = ctx.config.server.watchers_max;
        if ctx.watchers.fetch_add(1, Ordering::Relaxed) >= max {
            ctx.watchers.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        ctx.metrics.watch_streams_current.inc();
        Some(WatcherSlot(ctx.clone()))
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.watch_streams_current.dec();
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

pub(super) fn compacted(ctx: &SharedCtx, compact_revision: u64) -> WatchResponse {
    WatchResponse {
        header: ctx.current_header(),
        events: Vec::new(),
        compacted: true,
        compact_revision,
    }
}

async fn pump(
    ctx: SharedCtx,
    _slot: WatcherSlot,
    filter: Filter,
    start_revision: u64,
    subscription: Subscription,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
) {
    let Subscription { replay, mut live } = subscription;
    let mut last_revision = 0;
    let send = |event: &Arc<WatchEvent>| WatchResponse {
        header: ctx.header(event.revision),
        events: vec![event_to_wire(event)],
        compacted: false,
        compact_revision: 0,
    };
    for event in replay.iter().filter(|event| filter.matches(event)) {
        last_revision = event.revision;
        if out.send(Ok(send(event))).await.is_err() {
            return;
        }
        ctx.metrics.watch_events_sent_total.inc();
    }
    // A member behind the revision asked for applies older events first: not asked for
    // (found by the simulator's watch checker).
    let replayed_up_to =
        replay.last().map_or(0, |event| event.revision).max(start_revision.saturating_sub(1));
    loop {
        // A quiet path sends nothing: the stream's end (its client went away, and tonic
        // dropped it) must be noticed here, not at the next send, to free the slot.
        let received = tokio::select! {
            received = live.recv() => received,
            () = out.closed() => return,
        };
        match received {
            Ok(event) if event.revision <= replayed_up_to || !filter.matches(&event) => {}
            Ok(event) => {
                last_revision = event.revision;
                if out.send(Ok(send(&event))).await.is_err() {
                    return;
                }
                ctx.metrics.watch_events_sent_total.inc();
            }
            // Too far behind, or the member's state was replaced by a snapshot (or it is
            // stopping): the events in between are not here, so the watcher must re-read
            // rather than miss them.
            Err(RecvError::Lagged(_) | RecvError::Closed) => {
                let _ = out.send(Ok(compacted(&ctx, last_revision + 1))).await;
                return;
            }
        }
    }
}

impl WatchApi {
    async fn watch_rpc(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let watch = request.into_inner();
        let rules = self.ctx.config.limits.path_rules();
        let filter = if watch.prefix {
            check_prefix(&watch.path, rules).map_err(|e| status::invalid_path(&e))?;
            Filter::Prefix(watch.path)
        } else {
            Filter::Path(parse_path(&self.ctx, &watch.path)?)
        };
        let slot = WatcherSlot::take(&self.ctx).ok_or_else(|| too_many_watchers(&self.ctx))?;
        let subscription = self.ctx.store.lock().observer.hub.subscribe(watch.start_revision);
        let (out, responses) = mpsc::channel(256);
        match subscription {
            Ok(subscription) => {
                let start = watch.start_revision;
                tokio::spawn(pump(self.ctx.clone(), slot, filter, start, subscription, out));
            }
            Err(gone) => {
                let _ = out.send(Ok(compacted(&self.ctx, gone.oldest_revision))).await;
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }
}

/// `RESOURCE_EXHAUSTED` for a stream beyond `watchers_max` (watches and observes alike).
pub(super) fn too_many_watchers(ctx: &SharedCtx) -> Status {
    let max = ctx.config.server.watchers_max;
    let message = format!("limit watchers_max reached: at most {max} watch streams per node");
    let detail = ErrorDetail {
        reason: ErrorReason::TooManyWatchers.into(),
        limit: max as u64,
        ..ErrorDetail::default()
    };
    status_with_detail(Code::ResourceExhausted, message, &detail)
}

#[tonic::async_trait]
impl WatchService for WatchApi {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.ctx
            .observe("Watch", crate::context::trace_parent(&request), self.watch_rpc(request))
            .await
    }
}
