//! lockmgr under test: a cluster of `lockmgr server` processes (the test harness's), the
//! client library for sessions and locks, and the raw lease stream for keepalives.

use std::time::Duration;

use lockmgr_client::{Client, ClientConfig, LockGuard, Session};
use lockmgr_proto::v1::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, lease_service_client::LeaseServiceClient,
};
use lockmgr_tests::Cluster;
use tokio::sync::mpsc;
use tonic::{Code, Streaming, transport::Channel};

use crate::system::{Conn, Result, System};

/// How long a blocking lock may wait: longer than any workload.
const WAIT: Duration = Duration::from_mins(10);

#[derive(Debug)]
pub struct Lockmgr {
    pub(crate) cluster: Cluster,
    /// The leader's client address (keepalives go straight to it).
    leader: String,
}

impl Lockmgr {
    /// Starts `nodes` members (fsync on, as always) and waits for a leader.
    pub async fn start(nodes: usize) -> Result<Lockmgr> {
        let binary = lockmgr_tests::binary();
        if !binary.exists() {
            return Err(format!(
                "{} is missing: build it with `cargo build --release -p lockmgr-cli`",
                binary.display()
            )
            .into());
        }
        let mut cluster = Cluster::start(nodes, &["--log", "warn"]);
        let leader_id = cluster.wait_for_leader(Duration::from_secs(30)).await;
        let leader = cluster.members[cluster.index_of(leader_id)].client_address.clone();
        Ok(Lockmgr { cluster, leader })
    }
}

impl System for Lockmgr {
    type Conn = LockmgrConn;

    async fn connect(&self) -> Result<LockmgrConn> {
        let client = Client::connect(ClientConfig::new(self.cluster.endpoints())).await?;
        let channel = Channel::from_shared(format!("http://{}", self.leader))?.connect().await?;
        Ok(LockmgrConn { client, leases: LeaseServiceClient::new(channel) })
    }

    fn pids(&self) -> Vec<u32> {
        self.cluster.members.iter().filter_map(lockmgr_tests::Member::pid).collect()
    }
}

#[derive(Debug)]
pub struct LockmgrConn {
    client: Client,
    leases: LeaseServiceClient<Channel>,
}

#[derive(Debug)]
pub struct Keeper {
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    answers: Streaming<LeaseKeepAliveResponse>,
}

impl Conn for LockmgrConn {
    type Session = Session;
    type Held = LockGuard;
    type Keeper = Keeper;

    async fn session(&mut self, ttl: Duration) -> Result<Session> {
        Ok(self.client.session(ttl).await?)
    }

    async fn lock(&mut self, session: &Session, path: &str) -> Result<LockGuard> {
        Ok(session.lock(path, WAIT).await?)
    }

    async fn unlock(&mut self, held: LockGuard) -> Result<()> {
        Ok(held.unlock().await?)
    }

    async fn grant(&mut self, ttl: Duration) -> Result<i64> {
        Ok(self.client.grant_lease(ttl).await?.lease_id)
    }

    async fn revoke(&mut self, lease: i64) -> Result<()> {
        self.client.revoke_lease(lease).await?;
        Ok(())
    }

    async fn keeper(&mut self) -> Result<Keeper> {
        let (requests, outgoing) = mpsc::channel(16);
        let stream = tokio_stream::wrappers::ReceiverStream::new(outgoing);
        let answers = self.leases.keep_alive(stream).await?.into_inner();
        Ok(Keeper { requests, answers })
    }

    async fn keep_alive(&mut self, keeper: &mut Keeper, lease: i64) -> Result<bool> {
        keeper.requests.send(LeaseKeepAliveRequest { lease_id: lease }).await?;
        let answer = keeper.answers.message().await?.ok_or("the keepalive stream ended")?;
        Ok(answer.ttl_ms > 0)
    }

    async fn alive(&mut self, lease: i64) -> Result<bool> {
        match self.client.time_to_live(lease).await {
            Ok(answer) => Ok(answer.remaining_ttl_ms > 0),
            Err(error) if error.code() == Some(Code::NotFound) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}
