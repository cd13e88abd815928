//! The Raft network, server side: the peer gRPC service that hands each message to the
//! local openraft node.

use futures_util::StreamExt;
use lockmgr_proto::raft::{RaftPayload, SnapshotChunk, raft_service_server::RaftService};
use serde::{Serialize, de::DeserializeOwned};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    Raft,
    log_store::{decode, encode},
    state_machine::ApplyObserver,
    types::{Snapshot, SnapshotMeta, Vote},
};

/// Serves `lockmgr.raft.v1.RaftService` for one node.
#[derive(Clone)]
pub struct PeerService<O: ApplyObserver> {
    raft: Raft<O>,
    snapshot_bytes_max: usize,
}

impl<O: ApplyObserver> std::fmt::Debug for PeerService<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService").finish_non_exhaustive()
    }
}

impl<O: ApplyObserver> PeerService<O> {
    pub fn new(raft: Raft<O>, snapshot_bytes_max: usize) -> Self {
        PeerService { raft, snapshot_bytes_max }
    }
}

fn parse<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    decode(&request.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let data = encode(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { data }))
}

fn failed(error: &impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft node unavailable: {error}"))
}

#[tonic::async_trait]
impl<O: ApplyObserver> RaftService for PeerService<O> {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let response = self.raft.append_entries(parse(request)?).await.map_err(|e| failed(&e))?;
        reply(&response)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let response = self.raft.vote(parse(request)?).await.map_err(|e| failed(&e))?;
        reply(&response)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let response = self.raft.pre_vote(parse(request)?).await.map_err(|e| failed(&e))?;
        reply(&response)
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let response =
            self.raft.handle_transfer_leader(parse(request)?).await.map_err(|e| failed(&e))?;
        reply(&response)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
        let mut chunks = request.into_inner();
        let mut header = None;
        let mut data = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if header.is_none() {
                let parsed: (Vote, SnapshotMeta) = decode(&chunk.header)
                    .map_err(|e| Status::invalid_argument(format!("bad snapshot header: {e}")))?;
                header = Some(parsed);
            }
            if data.len() + chunk.data.len() > self.snapshot_bytes_max {
                return Err(Status::resource_exhausted(format!(
                    "snapshot exceeds snapshot_bytes_max ({} bytes)",
                    self.snapshot_bytes_max
                )));
            }
            data.extend_from_slice(&chunk.data);
        }
        let (vote, meta) =
            header.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let snapshot = Snapshot { meta, snapshot: data };
        let response =
            self.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| failed(&e))?;
        reply(&response)
    }
}
