//! lockmgr under test: a cluster of `lockmgr server` processes (the test harness's), the
//! client library for sessions and locks (given the one member the route picks), and the
//! raw lease stream for bare keepalives on a channel of its own to that member.

use std::time::Duration;

use lockmgr_client::{Client, ClientConfig, LockGuard, Session};
use lockmgr_proto::v1::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, lease_service_client::LeaseServiceClient,
};
use lockmgr_tests::Cluster;
use tokio::sync::mpsc;
use tonic::{Code, Streaming, transport::Channel};

use crate::system::{Conn, KeepaliveModel, Result, Route, Router, Setup, Streams, System};

/// How long a blocking lock may wait: longer than any workload.
const WAIT: Duration = Duration::from_mins(10);

#[derive(Debug)]
pub struct Lockmgr {
    pub(crate) cluster: Cluster,
    router: Router,
    keepalive: KeepaliveModel,
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
        let router = Router::new(Route::Leader, leader, cluster.endpoints());
        Ok(Lockmgr { cluster, router, keepalive: KeepaliveModel::Shared })
    }

    /// Routes new connections by `setup`, the leader being member `leader`.
    pub fn configure(&mut self, setup: Setup, leader: usize) {
        let address = self.cluster.members[leader].client_address.clone();
        self.router = Router::new(setup.route, address, self.cluster.endpoints());
        self.keepalive = setup.keepalive;
    }
}

impl System for Lockmgr {
    type Conn = LockmgrConn;

    async fn connect(&self) -> Result<LockmgrConn> {
        let member = self.router.next();
        let client = Client::connect(ClientConfig::new([member.clone()])).await?;
        let channel = Channel::from_shared(format!("http://{member}"))?.connect().await?;
        let leases = LeaseServiceClient::new(channel);
        Ok(LockmgrConn { client, leases, keepalive: self.keepalive })
    }

    fn pids(&self) -> Vec<u32> {
        self.cluster.members.iter().filter_map(lockmgr_tests::Member::pid).collect()
    }

    fn fsyncs(&self) -> Vec<u64> {
        let count = |member: &lockmgr_tests::Member| {
            let (_, metrics) = lockmgr_tests::http_get(&member.metrics_address, "/metrics");
            crate::procfs::metric_total(&metrics, "disk_fsync_duration_seconds_count")
        };
        self.cluster.members.iter().map(count).collect()
    }
}

#[derive(Debug)]
pub struct LockmgrConn {
    client: Client,
    leases: LeaseServiceClient<Channel>,
    keepalive: KeepaliveModel,
}

/// A keepalive stream: where pings go, and their answers.
pub type Stream = (mpsc::Sender<LeaseKeepAliveRequest>, Streaming<LeaseKeepAliveResponse>);

pub type Keeper = Streams<Stream>;

impl LockmgrConn {
    /// A new stream, its first ping (of `lease`) already queued: a gRPC server may send
    /// the stream's headers only with its first answer (grpc-go does).
    async fn open(&mut self, lease: i64) -> Result<Stream> {
        let (requests, outgoing) = mpsc::channel(16);
        requests.send(LeaseKeepAliveRequest { lease_id: lease }).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(outgoing);
        let answers = self.leases.keep_alive(stream).await?.into_inner();
        Ok((requests, answers))
    }
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
        Ok(Streams::new(self.keepalive))
    }

    async fn keep_alive(&mut self, keeper: &mut Keeper, lease: i64) -> Result<bool> {
        let ((requests, answers), fresh) = keeper.get(lease, self.open(lease)).await?;
        if !fresh {
            requests.send(LeaseKeepAliveRequest { lease_id: lease }).await?;
        }
        let answer = answers.message().await?.ok_or("the keepalive stream ended")?;
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
