//! A member learns it was removed. The entry that removes a member is committed without
//! it, and the leader stops replicating to it, so a member removed while it was down or
//! cut off never sees it: it would campaign forever and say "no leader". So a member that
//! has had no leader for a while asks the others; when the cluster's leader twice in a row
//! lists the members without it, it stops campaigning and answers every request with
//! `UNAVAILABLE` / `MEMBER_REMOVED` (`Status` and `/readyz` say so too). If it is added
//! again (a leader replicates a membership naming it a voter) it takes part again.

use std::{sync::atomic::Ordering, time::Duration};

use lockmgr_proto::v1::{ListMembersRequest, cluster_service_client::ClusterServiceClient};
use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::context::SharedCtx;

/// Consecutive rounds in which the leader must list the members without this one.
const EVIDENCE_ROUNDS: u32 = 2;

/// What this member's own Raft state says about its membership.
struct View {
    has_leader: bool,
    /// The membership names this member as a voter.
    voter: bool,
    /// The membership names members, but not this one (it applied its own removal).
    dropped: bool,
    /// The other members' client addresses.
    peers: Vec<String>,
}

fn view(ctx: &SharedCtx) -> View {
    let metrics = ctx.raft.metrics();
    let metrics = metrics.borrow_watched();
    let membership = metrics.membership_config.membership();
    let named = membership.get_node(&ctx.node_id).is_some();
    View {
        has_leader: metrics.current_leader.is_some(),
        voter: membership.voter_ids().any(|id| id == ctx.node_id),
        dropped: !named && membership.nodes().next().is_some(),
        peers: membership
            .nodes()
            .filter(|(id, _)| **id != ctx.node_id)
            .map(|(_, node)| node.client_address.clone())
            .collect(),
    }
}

/// Whether some member that leads lists the members without this one: its node id.
async fn removed_by(ctx: &SharedCtx, peers: &[String]) -> Option<u64> {
    for address in peers {
        let Ok(channel) = ctx.forwarder.channel(address) else { continue };
        let mut peer = ClusterServiceClient::new(channel);
        let asked = peer.list_members(ListMembersRequest {});
        let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(1), asked).await else {
            continue;
        };
        let answer = answer.into_inner();
        let responder = answer.header.map_or(0, |header| header.node_id);
        let leads = answer.members.iter().any(|m| m.is_leader && m.node_id == responder);
        if leads && !answer.members.iter().any(|m| m.node_id == ctx.node_id) {
            return Some(responder);
        }
    }
    None
}

fn mark(ctx: &SharedCtx, removed: bool) {
    ctx.removed.store(removed, Ordering::Relaxed);
    ctx.raft.runtime_config().elect(!removed);
}

/// Runs until `stop`: checks every four election time-outs.
pub async fn watch(ctx: SharedCtx, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(ctx.config.raft.election_timeout_max_ms * 4);
    let mut evidence = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let now = view(&ctx);
        if ctx.removed.load(Ordering::Relaxed) {
            if now.has_leader && now.voter {
                mark(&ctx, false);
                info!(node = ctx.node_id, "This member was added to the cluster again");
            }
            continue;
        }
        let by = if now.dropped {
            Some(0)
        } else if now.has_leader {
            None
        } else {
            removed_by(&ctx, &now.peers).await
        };
        evidence = if by.is_some() { evidence + 1 } else { 0 };
        if now.dropped || evidence >= EVIDENCE_ROUNDS {
            mark(&ctx, true);
            warn!(
                node = ctx.node_id,
                leader = by.unwrap_or(0),
                "This member was removed from the cluster: it no longer campaigns or serves. Wipe its data directory and start it with --join, then `lockmgr cluster add`, to bring it back"
            );
        }
    }
}
