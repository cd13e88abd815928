//! The operators' HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the
//! process is up), `/readyz` (this node is a member of a cluster with a known leader).

use std::net::SocketAddr;

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use openraft::{ServerState, async_runtime::WatchReceiver};

use crate::context::{Route, SharedCtx};

pub async fn serve(ctx: SharedCtx, address: SocketAddr) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(ctx.clone());
    let listener = tokio::net::TcpListener::bind(address).await?;
    let mut stopped = ctx.shutdown.subscribe();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
}

async fn metrics(State(ctx): State<SharedCtx>) -> impl IntoResponse {
    refresh(&ctx);
    let headers = [("content-type", "text/plain; version=0.0.4; charset=utf-8")];
    (headers, ctx.metrics.render())
}

async fn ready(State(ctx): State<SharedCtx>) -> impl IntoResponse {
    let member = {
        let raft = ctx.raft.metrics();
        let raft = raft.borrow_watched();
        raft.membership_config.membership().get_node(&ctx.node_id).is_some()
    };
    if ctx.removed.load(std::sync::atomic::Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "removed from the cluster\n");
    }
    match ctx.route() {
        Route::NoLeader => (StatusCode::SERVICE_UNAVAILABLE, "no leader\n"),
        _ if !member => (StatusCode::SERVICE_UNAVAILABLE, "not a member\n"),
        _ => (StatusCode::OK, "ready\n"),
    }
}

/// Reads the gauges that are states, not events, at scrape time.
fn refresh(ctx: &SharedCtx) {
    let metrics = &ctx.metrics;
    {
        let raft = ctx.raft.metrics();
        let raft = raft.borrow_watched();
        let leads = raft.state == ServerState::Leader && raft.current_leader == Some(ctx.node_id);
        metrics.raft_is_leader.set(i64::from(leads));
        metrics.raft_term.set(raft.current_term as i64);
        metrics.raft_committed_index.set(raft.local_committed.map_or(0, |id| id.index) as i64);
        metrics.raft_applied_index.set(raft.last_applied.map_or(0, |id| id.index) as i64);
        metrics.snapshot_last_index.set(raft.snapshot.map_or(0, |id| id.index) as i64);
        let last_log_index = raft.last_log_index.unwrap_or(0);
        metrics.raft_last_log_index.set(last_log_index as i64);
        metrics.raft_replication_lag_entries.reset();
        if leads {
            for (follower, matched) in raft.replication.iter().flatten() {
                if *follower == ctx.node_id {
                    continue;
                }
                let lag = last_log_index.saturating_sub(matched.map_or(0, |id| id.index));
                metrics
                    .raft_replication_lag_entries
                    .with_label_values(&[&follower.to_string()])
                    .set(lag as i64);
            }
        }
    }
    metrics.leases_active_total.set(ctx.store.lock().machine.lease_count() as i64);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        metrics.tokio_tasks_alive.set(runtime.metrics().num_alive_tasks() as i64);
    }
    if let Some((read_bytes, write_bytes)) = crate::metrics::process_disk_io() {
        metrics.observe_disk(read_bytes, write_bytes);
    }
}
