//! The leader's driver: the one task that turns the pure lessor and timers into
//! proposals. On becoming leader (once the log of earlier terms is applied) it promotes
//! them from the replicated state; on losing leadership it demotes them; in between it
//! sleeps until their next deadline and proposes `ExpireLease`, `CheckpointLeases`,
//! `CancelWait` and `EndLockDelay`. Checkpoints and the checkpoint clears keepalives ask
//! for are proposed here, one after another, so a clear always lands after the
//! checkpoint it undoes.

use std::time::Duration;

use lockmgr_core::{Command, LeaseCheckpoint};
use openraft::{ReadPolicy, ServerState, async_runtime::WatchReceiver};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::{
    context::{ClearRequest, SharedCtx},
    proposer::propose,
};

/// How long "Lost leadership" waits to name the new leader before it says "unknown".
const LOST_LEADER_PATIENCE: Duration = Duration::from_secs(2);

/// Runs until `shutdown` turns true.
pub async fn run(
    ctx: SharedCtx,
    mut clears: tokio::sync::mpsc::Receiver<ClearRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = ctx.raft.metrics();
    let mut leading_term: Option<u64> = None;
    let mut known_leader: Option<u64> = None;
    // Leadership lost in this term, since then, not logged yet: "Lost leadership" names
    // the new leader, which a stepping-down leader rarely knows at once.
    let mut lost: Option<(u64, tokio::time::Instant)> = None;
    loop {
        let (leads, term, leader) = {
            let m = metrics.borrow_watched();
            let leads = m.state == ServerState::Leader && m.current_leader == Some(ctx.node_id);
            (leads, m.current_term, m.current_leader)
        };
        crate::logging::note_raft_term(term);
        if leader.is_some() && leader != known_leader {
            ctx.metrics.raft_leader_changes_total.inc();
            known_leader = leader;
        }
        if let Some((lost_term, since)) = lost {
            let successor = leader.filter(|id| *id != ctx.node_id);
            if let Some(new_leader) = successor {
                info!(term = lost_term, node = ctx.node_id, new_leader, "Lost leadership");
                lost = None;
            } else if leads || since.elapsed() >= LOST_LEADER_PATIENCE {
                info!(
                    term = lost_term,
                    node = ctx.node_id,
                    new_leader = "unknown",
                    "Lost leadership"
                );
                lost = None;
            }
        }
        if leads && leading_term != Some(term) {
            // Leading a new term without having been seen to lose the old one (the metrics
            // channel keeps only the latest value): the old term's lessor must stop first.
            // Otherwise it renews leases while `promote` waits, and `promote` then resets
            // those deadlines from the state, shortening leases a client was just promised
            // (found by the simulator, seed 171).
            if leading_term.take().is_some() {
                demote(&ctx);
            }
            if promote(&ctx).await {
                leading_term = Some(term);
                info!(term, node = ctx.node_id, "Became leader");
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        } else if !leads && leading_term.is_some() {
            demote(&ctx);
            lost = Some((leading_term.unwrap_or(term), tokio::time::Instant::now()));
            leading_term = None;
            continue;
        }
        let next_ms = if leading_term.is_some() { tick(&ctx).await } else { None };
        let wake_at = next_ms.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(1),
            |ms| ctx.clock.instant_at(ms),
        );
        tokio::select! {
            changed = metrics.changed() => {
                // Raft stopped (a failed write is fatal): nothing is left to drive, and
                // looping on the closed channel would spin (found by the simulator).
                if changed.is_err() {
                    demote(&ctx);
                    return;
                }
            }
            () = ctx.wake.notified() => {}
            Some(first) = clears.recv() => clear_checkpoints(&ctx, first, &mut clears).await,
            () = tokio::time::sleep_until(wake_at) => {}
            _ = shutdown.changed() => {
                demote(&ctx);
                return;
            }
        }
    }
}

/// Confirms leadership with a read-index (which waits for this term's first entry to be
/// applied), then arms the lessor and timers from the state.
async fn promote(ctx: &SharedCtx) -> bool {
    if let Err(error) = ctx.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        debug!(%error, "leadership not confirmed yet");
        return false;
    }
    // Entries already in this leader's log may carry an `ExpireLease` decided before it led
    // (by an earlier leader, or by itself in an earlier life: openraft resumes leading the
    // same term after a restart without a new entry, so the read-index above does not
    // cover them). Apply them all before answering any keepalive, or a lease renewed now
    // could be expired later by that stale decision (found by the simulator).
    let last_log_index = ctx.raft.metrics().borrow_watched().last_log_index;
    let applied = ctx.raft.wait(Some(Duration::from_secs(5)));
    if let Err(error) = applied.applied_index_at_least(last_log_index, "promote").await {
        debug!(%error, "this leader's log is not applied yet");
        return false;
    }
    let now_ms = ctx.clock.now_ms();
    let mut replica = ctx.store.lock();
    let replica = &mut *replica;
    replica.observer.lessor.promote(now_ms, replica.machine.lease_ttls());
    replica.observer.timers.promote(now_ms, &replica.machine);
    true
}

fn demote(ctx: &SharedCtx) {
    let mut replica = ctx.store.lock();
    replica.observer.lessor.demote();
    replica.observer.timers.demote();
}

/// Proposes what is due; returns when to come back.
async fn tick(ctx: &SharedCtx) -> Option<u64> {
    let (expired, checkpoints, due, next_ms) = {
        let now_ms = ctx.clock.now_ms();
        let mut replica = ctx.store.lock();
        let effects = &mut replica.observer;
        let expired = effects.lessor.poll_expired(now_ms);
        let checkpoints = effects.lessor.poll_checkpoints(now_ms);
        let due = effects.timers.poll_due(now_ms);
        let next_ms = [effects.lessor.poll_timeout(), effects.timers.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        (expired, checkpoints, due, next_ms)
    };
    for lease_id in expired {
        let held_locks =
            ctx.store.lock().machine.lease(lease_id).map_or(0, |lease| lease.held.len());
        warn!(lease_id = lease_id.0, held_locks, "Lease expired");
        spawn_proposal(ctx, Command::ExpireLease { lease_id });
    }
    for command in due {
        spawn_proposal(ctx, command);
    }
    if !checkpoints.is_empty() {
        let batch_max = ctx.config.limits.checkpoint_batch_max;
        for batch in checkpoints.chunks(batch_max) {
            let command = Command::CheckpointLeases { checkpoints: batch.to_vec() };
            if let Err(error) = propose(ctx, command).await {
                debug!(%error, "lease checkpoint not proposed");
            }
        }
    }
    next_ms
}

fn spawn_proposal(ctx: &SharedCtx, command: Command) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(error) = propose(&ctx, command.clone()).await {
            debug!(%error, %command, "timer proposal failed; it is retried");
        }
    });
}

/// Clears the checkpoints of every lease waiting for it, in one proposal.
async fn clear_checkpoints(
    ctx: &SharedCtx,
    first: ClearRequest,
    clears: &mut tokio::sync::mpsc::Receiver<ClearRequest>,
) {
    let mut requests = vec![first];
    while requests.len() < ctx.config.limits.checkpoint_batch_max {
        match clears.try_recv() {
            Ok(request) => requests.push(request),
            Err(_) => break,
        }
    }
    let checkpoints = requests
        .iter()
        .map(|request| LeaseCheckpoint { lease_id: request.lease_id, remaining_ttl_ms: None })
        .collect();
    let result = propose(ctx, Command::CheckpointLeases { checkpoints }).await.map(|_| ());
    for request in requests {
        let _ = request.done.send(result.clone());
    }
}
