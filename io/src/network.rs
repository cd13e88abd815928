//! The Raft network, client side: openraft's `RaftNetworkV2` over the peer gRPC service
//! (`lockmgr.raft.v1.RaftService`). One lazily connected channel per peer address is
//! shared by every client openraft creates for it; each call is bounded by openraft's
//! time-to-live, and a refused connection makes openraft back off.

use std::{future::Future, sync::Arc, time::Duration};

use lockmgr_proto::Channels;
use lockmgr_proto::raft::{RaftPayload, SnapshotChunk, raft_service_client::RaftServiceClient};
use openraft::{
    OptionalSend, RaftNetworkFactory,
    errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable},
    network::{RPCOption, v2::RaftNetworkV2},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
        TransferLeaderResponse, VoteRequest, VoteResponse,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tonic::transport::Channel;

use crate::{
    log_store::{decode, encode},
    types::{NodeId, NodeInfo, Snapshot, TypeConfig, Vote},
};

/// Bytes of snapshot data per streamed chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// Told of the bytes of every message exchanged with a peer: (peer, sent, received).
pub type TrafficObserver = Arc<dyn Fn(NodeId, usize, usize) + Send + Sync>;

/// Creates peer clients; channels are shared per address.
#[derive(Clone)]
pub struct Network {
    channels: Arc<Channels>,
    traffic: TrafficObserver,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("channels", &self.channels).finish_non_exhaustive()
    }
}

impl Network {
    pub fn new(connect_timeout: Duration, traffic: TrafficObserver) -> Network {
        Network { channels: Arc::new(Channels::new(connect_timeout)), traffic }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            target,
            channel: self.channels.get(&node.peer_address),
            traffic: self.traffic.clone(),
        }
    }
}

/// One peer, as openraft sees it.
pub struct PeerClient {
    target: NodeId,
    channel: Result<Channel, String>,
    traffic: TrafficObserver,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient").field("target", &self.target).finish_non_exhaustive()
    }
}

fn unreachable(message: impl Into<String>) -> Unreachable<TypeConfig> {
    Unreachable::new(&std::io::Error::other(message.into()))
}

/// Any failed call backs replication off (`Unreachable`): a `Network` error makes openraft
/// retry at once, which spins hot against a peer that fails fast (seen in simulation with
/// a one-way partition: simulated time stopped while the leader retried).
fn rpc_error(status: &tonic::Status) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(status))
}

fn payload<T: Serialize>(value: &T) -> Result<tonic::Request<RaftPayload>, RPCError<TypeConfig>> {
    let data = encode(value).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
    Ok(tonic::Request::new(RaftPayload { data }))
}

fn answer<T: DeserializeOwned>(
    response: tonic::Response<RaftPayload>,
) -> Result<T, RPCError<TypeConfig>> {
    decode(&response.into_inner().data).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl PeerClient {
    fn client(&self) -> Result<RaftServiceClient<Channel>, Unreachable<TypeConfig>> {
        match &self.channel {
            Ok(channel) => Ok(RaftServiceClient::new(channel.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX)),
            Err(message) => Err(unreachable(message.clone())),
        }
    }

    /// Sends one unary call within openraft's time-to-live.
    async fn unary<Req, Resp, F, Fut>(
        &self,
        request: &Req,
        option: &RPCOption,
        call: F,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let client = self.client()?;
        let mut request = payload(request)?;
        let sent = request.get_ref().data.len();
        request.set_timeout(option.hard_ttl());
        match tokio::time::timeout(option.hard_ttl(), call(client, request)).await {
            Ok(Ok(response)) => {
                (self.traffic)(self.target, sent, response.get_ref().data.len());
                answer(response)
            }
            Ok(Err(status)) => Err(rpc_error(&status)),
            Err(_) => Err(RPCError::Unreachable(unreachable(format!(
                "no answer from node {} within {:?}",
                self.target,
                option.hard_ttl()
            )))),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(&rpc, &option, |mut c, r| async move { c.append_entries(r).await }).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(&rpc, &option, |mut c, r| async move { c.vote(r).await }).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(&rpc, &option, |mut c, r| async move { c.pre_vote(r).await }).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.unary(&req, &option, |mut c, r| async move { c.transfer_leader(r).await }).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client()?;
        let header = encode(&(vote, &snapshot.meta))
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let mut chunks: Vec<SnapshotChunk> = snapshot
            .snapshot
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .map(|data| SnapshotChunk { header: Vec::new(), data: data.to_vec() })
            .collect();
        if chunks.is_empty() {
            chunks.push(SnapshotChunk::default());
        }
        chunks[0].header = header;
        let sent = chunks.iter().map(|c| c.header.len() + c.data.len()).sum();
        (self.traffic)(self.target, sent, 0);
        let send = client.install_snapshot(futures_util::stream::iter(chunks));
        let result = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            result = tokio::time::timeout(option.hard_ttl().max(Duration::from_mins(1)), send) => result,
        };
        match result {
            Ok(Ok(response)) => answer(response).map_err(|e| match e {
                RPCError::Network(e) => StreamingError::Network(e),
                other => StreamingError::Unreachable(unreachable(other.to_string())),
            }),
            Ok(Err(status)) => Err(StreamingError::Unreachable(Unreachable::new(&status))),
            Err(_) => Err(StreamingError::Unreachable(unreachable("snapshot transfer timed out"))),
        }
    }
}
