//! Proposing a command through Raft and waiting for its reply. A leader that was just
//! elected refuses writes briefly (`ForwardToLeader` naming itself, reason
//! `LeaseExpired`): those are retried until the proposal time-out. A refusal naming
//! another leader becomes `UNAVAILABLE` with its address; an entry discarded by a leader
//! change is ambiguous and says so (a retry with the same request id is safe).

use std::time::Duration;

use lockmgr_core::Command;
use lockmgr_io::ApplyResult;
use lockmgr_io::TypeConfig;
use lockmgr_proto::v1::ErrorReason;
use openraft::{error::ClientWriteError, impls::ProgressResponder, raft::ClientWriteResult};
use tonic::{Code, Status};
use tracing::Instrument;

use crate::{context::Ctx, status};

const RETRY_PAUSE: Duration = Duration::from_millis(20);

pub async fn propose(ctx: &Ctx, command: Command) -> Result<ApplyResult, Status> {
    let started = tokio::time::Instant::now();
    let result = propose_once(ctx, command).await;
    let status = if result.is_ok() { "success" } else { "failure" };
    let elapsed = started.elapsed();
    ctx.metrics.raft_proposals_total.with_label_values(&[status]).inc();
    ctx.metrics
        .raft_proposal_duration_seconds
        .with_label_values(&[status])
        .observe(elapsed.as_secs_f64());
    if elapsed >= SLOW_PROPOSAL {
        tracing::warn!(latency_ms = elapsed.as_millis() as u64, "Slow proposal");
    }
    if let Err(error) = &result {
        tracing::error!(error = %error.message(), "Proposal failed");
    }
    result
}

/// Proposals slower than this are logged.
const SLOW_PROPOSAL: Duration = Duration::from_millis(500);

/// One write, traced in its three stages: handing it to Raft (`raft-propose`), until a
/// quorum has it (`raft-replicate`), until it is applied (`apply-state-machine`).
async fn traced_write(
    ctx: &Ctx,
    command: Command,
) -> Result<ClientWriteResult<TypeConfig>, Status> {
    let (responder, committed, applied) =
        ProgressResponder::<TypeConfig, ClientWriteResult<TypeConfig>>::new();
    let submitted = ctx.raft.client_write_ff(command, Some(responder));
    if submitted.instrument(tracing::info_span!("raft-propose")).await.is_err() {
        return Err(status::shutting_down());
    }
    // No commit notice comes for a refused write; the outcome then says why.
    let _ = committed.instrument(tracing::info_span!("raft-replicate")).await;
    applied
        .instrument(tracing::info_span!("apply-state-machine"))
        .await
        .map_err(|_| status::shutting_down())
}

async fn propose_once(ctx: &Ctx, command: Command) -> Result<ApplyResult, Status> {
    let deadline = tokio::time::Instant::now() + ctx.config.propose_timeout();
    loop {
        let error = match traced_write(ctx, command.clone()).await? {
            Ok(response) => return Ok(response.data),
            Err(error) => error,
        };
        match error {
            ClientWriteError::ForwardToLeader(forward) => {
                let other_leader = forward.leader_id.filter(|id| *id != ctx.node_id);
                if let (Some(id), Some(node)) = (other_leader, forward.leader_node.as_ref()) {
                    return Err(status::not_leader(Some((id, node))));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(status::not_leader(None));
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            ClientWriteError::LogEntryDiscarded(_) => {
                return Err(status::error(
                    Code::Unavailable,
                    ErrorReason::NoLeader,
                    "the leader changed before the request committed; its outcome is unknown; \
                     retry it (with the same request_id, it is applied at most once)",
                ));
            }
            other => return Err(status::internal(other)),
        }
    }
}
