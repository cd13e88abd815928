//! `ClusterService`: status, membership (learner first, then voter), leadership transfer.

use std::{collections::BTreeSet, pin::Pin, time::Duration};

use futures_util::Stream;

use lockmgr_io::NodeInfo;
use lockmgr_proto::v1::{
    AddMemberRequest, AddMemberResponse, ErrorReason, ListMembersRequest, ListMembersResponse,
    Member, RemoveMemberRequest, RemoveMemberResponse, SaveSnapshotRequest, SaveSnapshotResponse,
    StatusRequest, StatusResponse, TransferLeaderRequest, TransferLeaderResponse,
    cluster_service_client::ClusterServiceClient, cluster_service_server::ClusterService,
};
use openraft::{ChangeMembers, async_runtime::WatchReceiver, error::RaftError};
use tonic::{Code, Request, Response, Status};
use tracing::{info, warn};

use crate::{context::SharedCtx, forward::lead_or_forward, status};

#[derive(Debug)]
pub struct ClusterApi {
    ctx: SharedCtx,
}

impl ClusterApi {
    pub fn new(ctx: SharedCtx) -> ClusterApi {
        ClusterApi { ctx }
    }

    fn members(&self) -> Vec<Member> {
        let metrics = self.ctx.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                node_id: *id,
                peer_address: node.peer_address.clone(),
                client_address: node.client_address.clone(),
                is_learner: !voters.contains(id),
                is_leader: metrics.current_leader == Some(*id),
            })
            .collect()
    }
}

/// etcd's warning for an even number of voters: accepted, but it tolerates no more
/// failures than one voter fewer.
fn even_voters(voters: usize) -> Vec<String> {
    if voters == 0 || voters % 2 == 1 {
        return Vec::new();
    }
    let message = format!(
        "the cluster now has {voters} voters: an even count tolerates no more failures than {} voters and needs one more for a majority",
        voters - 1
    );
    warn!("{message}");
    vec![message]
}

fn raft_failure<E: std::fmt::Display>(error: &RaftError<lockmgr_io::TypeConfig, E>) -> Status {
    match error {
        RaftError::Fatal(_) => status::shutting_down(),
        RaftError::APIError(error) => {
            status::error(Code::FailedPrecondition, ErrorReason::InvalidArgument, error.to_string())
        }
    }
}

impl ClusterApi {
    fn status_rpc(&self, _request: Request<StatusRequest>) -> Response<StatusResponse> {
        let (locks, leases, revision) = {
            let replica = self.ctx.store.lock();
            (
                replica.machine.lock_count() as u64,
                replica.machine.lease_count() as u64,
                replica.machine.revision(),
            )
        };
        // The header reads the Raft metrics too: take it before holding them, since a
        // second read while openraft waits to publish new metrics would deadlock.
        let header = self.ctx.header(revision);
        let metrics = self.ctx.raft.metrics();
        let metrics = metrics.borrow_watched();
        let is_learner =
            !metrics.membership_config.membership().voter_ids().any(|id| id == self.ctx.node_id);
        Response::new(StatusResponse {
            header,
            leader_id: metrics.current_leader.unwrap_or(0),
            version: env!("CARGO_PKG_VERSION").into(),
            committed_index: metrics.local_committed.map_or(0, |id| id.index),
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            snapshot_index: metrics.snapshot.map_or(0, |id| id.index),
            locks,
            leases,
            is_learner,
            removed: self.ctx.removed.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    fn list_members_rpc(
        &self,
        _request: Request<ListMembersRequest>,
    ) -> Response<ListMembersResponse> {
        Response::new(ListMembersResponse {
            header: self.ctx.current_header(),
            members: self.members(),
        })
    }

    async fn add_member_rpc(
        &self,
        request: Request<AddMemberRequest>,
    ) -> Result<Response<AddMemberResponse>, Status> {
        let add = request.get_ref().clone();
        if add.node_id == 0 || add.peer_address.is_empty() || add.client_address.is_empty() {
            return Err(status::invalid(
                ErrorReason::InvalidArgument,
                "a member needs node_id > 0, peer_address and client_address",
            ));
        }
        let _request = lead_or_forward!(self.ctx, request, ClusterServiceClient, add_member);
        let (known, is_voter, voter_count) = {
            let metrics = self.ctx.raft.metrics();
            let metrics = metrics.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                membership.get_node(&add.node_id).cloned(),
                membership.voter_ids().any(|id| id == add.node_id),
                membership.voter_ids().count(),
            )
        };
        match &known {
            Some(node)
                if node.peer_address != add.peer_address
                    || node.client_address != add.client_address =>
            {
                return Err(status::error(
                    Code::FailedPrecondition,
                    ErrorReason::InvalidArgument,
                    format!(
                        "node {} is already a member at {}/{}: remove it first to give it other addresses",
                        add.node_id, node.peer_address, node.client_address
                    ),
                ));
            }
            // Already what was asked for: nothing to change.
            Some(_) if is_voter || add.learner_only => {
                return Ok(Response::new(AddMemberResponse {
                    header: self.ctx.current_header(),
                    members: self.members(),
                    warnings: Vec::new(),
                }));
            }
            // A learner from an earlier call: catch it up and promote it.
            Some(_) => {}
            None => {
                let node = NodeInfo {
                    peer_address: add.peer_address.clone(),
                    client_address: add.client_address.clone(),
                };
                self.ctx
                    .raft
                    .add_learner(add.node_id, node, false)
                    .await
                    .map_err(|e| raft_failure(&e))?;
                info!(node_id = add.node_id, peer_address = %add.peer_address, "Member added as learner");
            }
        }
        let mut warnings = Vec::new();
        if !add.learner_only {
            self.caught_up(add.node_id).await?;
            let voters = BTreeSet::from([add.node_id]);
            let written = self
                .ctx
                .raft
                .change_membership(ChangeMembers::AddVoterIds(voters), false)
                .await
                .map_err(|e| raft_failure(&e))?;
            self.settled(written.log_id.index).await;
            info!(node_id = add.node_id, "Member promoted to voter");
            warnings.extend(even_voters(voter_count + 1));
        }
        Ok(Response::new(AddMemberResponse {
            header: self.ctx.current_header(),
            members: self.members(),
            warnings,
        }))
    }

    /// Waits (briefly) until this member's metrics show the membership written at
    /// `index`, so that the answer lists the members as they now are.
    async fn settled(&self, index: u64) {
        let mut metrics = self.ctx.raft.metrics();
        let settle = async {
            while metrics.borrow_watched().membership_config.log_id().map_or(0, |id| id.index)
                < index
            {
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), settle).await;
    }

    /// Waits until `node_id` has replicated the leader's log as it is now, up to the
    /// catch-up time-out. A member that never answered has replicated nothing, so it is
    /// never promoted (openraft's own check counts a learner within its lag threshold
    /// as caught up even when nothing reached it).
    async fn caught_up(&self, node_id: u64) -> Result<(), Status> {
        let timeout = Duration::from_millis(self.ctx.config.server.member_catch_up_timeout_ms);
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let mut metrics = self.ctx.raft.metrics();
        let target = metrics.borrow_watched().last_log_index.unwrap_or(0);
        let mut report_at = started + Duration::from_secs(2);
        loop {
            let (leads, matched) = {
                let now = metrics.borrow_watched();
                let matched = now
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&node_id).copied().flatten())
                    .map(|log_id| log_id.index);
                (now.current_leader == Some(self.ctx.node_id), matched)
            };
            if !leads {
                return Err(status::not_leader(
                    self.ctx.leader_info().as_ref().map(|(id, n)| (*id, n)),
                ));
            }
            if matched.is_some_and(|index| index >= target) {
                info!(
                    node_id,
                    target,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "Learner caught up"
                );
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let progress = matched.map_or_else(
                    || "it never answered".to_owned(),
                    |index| format!("it replicated up to index {index} of {target}"),
                );
                return Err(status::error(
                    Code::FailedPrecondition,
                    ErrorReason::MemberNotCaughtUp,
                    format!(
                        "node {node_id} did not catch up with the leader within {timeout:?} ({progress}): it stays a learner, not a voter. Start it (empty, with --join) and run `cluster add` again to promote it, or `cluster remove {node_id}`"
                    ),
                ));
            }
            if now >= report_at {
                info!(node_id, matched = matched.unwrap_or(0), target, "Learner catching up");
                report_at = now + Duration::from_secs(2);
            }
            let wake = deadline.min(report_at);
            let wait = wake.saturating_duration_since(tokio::time::Instant::now());
            if let Ok(Err(_)) = tokio::time::timeout(wait, metrics.changed()).await {
                return Err(status::shutting_down());
            }
        }
    }

    async fn remove_member_rpc(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<RemoveMemberResponse>, Status> {
        let node_id = request.get_ref().node_id;
        let _request = lead_or_forward!(self.ctx, request, ClusterServiceClient, remove_member);
        let (is_voter, is_member) = {
            let metrics = self.ctx.raft.metrics();
            let metrics = metrics.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                membership.voter_ids().any(|id| id == node_id),
                membership.get_node(&node_id).is_some(),
            )
        };
        if !is_member {
            return Err(status::error(
                Code::NotFound,
                ErrorReason::MemberNotFound,
                format!("node {node_id} is not a member"),
            ));
        }
        let ids = BTreeSet::from([node_id]);
        let change = if is_voter {
            ChangeMembers::RemoveVoters(ids)
        } else {
            ChangeMembers::RemoveNodes(ids)
        };
        let written =
            self.ctx.raft.change_membership(change, false).await.map_err(|e| raft_failure(&e))?;
        self.settled(written.log_id.index).await;
        info!(node_id, "Member removed");
        let voters = self.members().iter().filter(|member| !member.is_learner).count();
        Ok(Response::new(RemoveMemberResponse {
            header: self.ctx.current_header(),
            members: self.members(),
            warnings: if is_voter { even_voters(voters) } else { Vec::new() },
        }))
    }

    async fn transfer_leader_rpc(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        let wanted = request.get_ref().target_node_id;
        let _request = lead_or_forward!(self.ctx, request, ClusterServiceClient, transfer_leader);
        let target = if wanted == 0 { self.best_successor()? } else { wanted };
        let is_voter = self
            .ctx
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == target);
        if !is_voter {
            return Err(status::error(
                Code::NotFound,
                ErrorReason::MemberNotFound,
                format!("node {target} is not a voter"),
            ));
        }
        if target != self.ctx.node_id {
            self.ctx
                .raft
                .trigger()
                .transfer_leader(target)
                .await
                .map_err(|_| status::shutting_down())?;
            let mut metrics = self.ctx.raft.metrics();
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(self.ctx.config.server.propose_timeout_ms);
            while metrics.borrow_watched().current_leader != Some(target) {
                let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                // A closed channel (Raft stopped) ends the wait too, rather than spinning.
                if !matches!(tokio::time::timeout(wait, metrics.changed()).await, Ok(Ok(()))) {
                    return Err(status::error(
                        Code::Unavailable,
                        ErrorReason::NoLeader,
                        format!("node {target} did not take over in time"),
                    ));
                }
            }
        }
        Ok(Response::new(TransferLeaderResponse {
            header: self.ctx.current_header(),
            leader_id: target,
        }))
    }
}

/// The size of one message of a backup stream.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

type SaveSnapshotStream = Pin<Box<dyn Stream<Item = Result<SaveSnapshotResponse, Status>> + Send>>;

impl ClusterApi {
    /// The backup file's bytes, as of a read barrier: every write acknowledged before the
    /// call is in it. Encoded under the replica's lock, so it is one applied state.
    async fn save_snapshot_rpc(
        &self,
        _request: Request<SaveSnapshotRequest>,
    ) -> Result<Response<SaveSnapshotStream>, Status> {
        crate::service::read_barrier(&self.ctx).await?;
        let taken_at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        // Only the encoding of the state holds the lock (applies wait on it); the file
        // and its digest are made after.
        let (header, state) = {
            let replica = self.ctx.store.lock();
            let header = lockmgr_io::backup::BackupHeader::of(
                &replica.machine,
                replica.last_applied,
                self.ctx.config.cluster_id,
                self.ctx.node_id,
                taken_at_unix_ms,
            );
            (header, replica.machine.snapshot())
        };
        let bytes = lockmgr_io::backup::encode_backup(&header, &state);
        let (revision, index) = (header.revision, header.index);
        info!(revision, index, bytes = bytes.len(), "backup taken");
        let header = self.ctx.header(revision);
        let total = bytes.len();
        let messages: Vec<Result<SaveSnapshotResponse, Status>> = bytes
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .enumerate()
            .map(|(at, chunk)| {
                let end = (at * SNAPSHOT_CHUNK_BYTES + chunk.len()) as u64;
                Ok(SaveSnapshotResponse {
                    header: if at == 0 { header } else { None },
                    chunk: chunk.to_vec(),
                    remaining_bytes: total as u64 - end,
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(messages))))
    }
}

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    type SaveSnapshotStream = SaveSnapshotStream;

    async fn save_snapshot(
        &self,
        request: Request<SaveSnapshotRequest>,
    ) -> Result<Response<SaveSnapshotStream>, Status> {
        self.ctx
            .observe(
                "SaveSnapshot",
                crate::context::trace_parent(&request),
                self.save_snapshot_rpc(request),
            )
            .await
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.ctx
            .observe("Status", crate::context::trace_parent(&request), async {
                Ok(self.status_rpc(request))
            })
            .await
    }

    async fn list_members(
        &self,
        request: Request<ListMembersRequest>,
    ) -> Result<Response<ListMembersResponse>, Status> {
        self.ctx
            .observe("ListMembers", crate::context::trace_parent(&request), async {
                Ok(self.list_members_rpc(request))
            })
            .await
    }

    async fn add_member(
        &self,
        request: Request<AddMemberRequest>,
    ) -> Result<Response<AddMemberResponse>, Status> {
        self.ctx
            .observe(
                "AddMember",
                crate::context::trace_parent(&request),
                self.add_member_rpc(request),
            )
            .await
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<RemoveMemberResponse>, Status> {
        self.ctx
            .observe(
                "RemoveMember",
                crate::context::trace_parent(&request),
                self.remove_member_rpc(request),
            )
            .await
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        self.ctx
            .observe(
                "TransferLeader",
                crate::context::trace_parent(&request),
                self.transfer_leader_rpc(request),
            )
            .await
    }
}

impl ClusterApi {
    /// The voter other than this node whose log matches the leader's furthest.
    fn best_successor(&self) -> Result<u64, Status> {
        let metrics = self.ctx.raft.metrics();
        let metrics = metrics.borrow_watched();
        let matched = metrics.replication.clone().unwrap_or_default();
        metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != self.ctx.node_id)
            .max_by_key(|id| matched.get(id).copied().flatten().map_or(0, |log_id| log_id.index))
            .ok_or_else(|| {
                status::error(
                    Code::FailedPrecondition,
                    ErrorReason::MemberNotFound,
                    "there is no other voter to hand leadership to",
                )
            })
    }
}
