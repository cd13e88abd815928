//! etcd under test: a cluster of Debian's `etcd` processes (v3 API, fsync on, default
//! settings), driven through the `etcd-client` crate with etcd's own lock API bound to a
//! lease, as `etcdctl lock` and clientv3's concurrency package do. Each connection is
//! given the one member the route picks (as lockmgr's are); bare lease keepalives go on a
//! gRPC channel of their own to that member, as lockmgr's do, in the same model (one
//! shared stream per worker, or one per lease: etcd's `LeaseKeepAlive` stream takes any
//! lease id, though etcd-client binds each stream to one).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use etcd_client::{Client, LockOptions};
use lockmgr_tests::{KillOnDrop, free_port};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Streaming, codegen::http::uri::PathAndQuery, transport::Channel};

use crate::system::{Conn, KeepaliveModel, Result, Route, Router, Setup, Streams, System};

#[derive(Debug)]
pub struct Etcd {
    binary: String,
    pub(crate) endpoints: Vec<String>,
    /// Each member's arguments (a restart reuses them) and its process, while it runs.
    specs: Vec<Vec<String>>,
    pub(crate) members: Vec<Option<KillOnDrop>>,
    root: tempfile::TempDir,
    router: Router,
    keepalive: KeepaliveModel,
}

impl Etcd {
    /// Starts `nodes` members on loopback and waits until the cluster answers.
    pub async fn start(binary: &str, nodes: usize) -> Result<Etcd> {
        let root = tempfile::tempdir()?;
        let ports: Vec<(u16, u16)> = (0..nodes).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let specs: Vec<Vec<String>> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                let data_dir = root.path().join(format!("e{i}")).display().to_string();
                [
                    "--name",
                    &format!("e{i}"),
                    "--data-dir",
                    &data_dir,
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                    "--listen-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                    "--initial-cluster",
                    &initial_cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "lockmgr-bench",
                    "--logger",
                    "zap",
                    "--log-level",
                    "warn",
                ]
                .map(String::from)
                .to_vec()
            })
            .collect();
        let endpoints: Vec<String> =
            ports.iter().map(|(client, _)| format!("http://127.0.0.1:{client}")).collect();
        let router = Router::new(Route::Leader, endpoints[0].clone(), endpoints.clone());
        let mut etcd = Etcd {
            router,
            keepalive: KeepaliveModel::Shared,
            binary: binary.to_owned(),
            endpoints,
            members: specs.iter().map(|_| None).collect(),
            specs,
            root,
        };
        for index in 0..nodes {
            etcd.spawn(index)?;
        }
        let started = Instant::now();
        loop {
            let ready = async {
                let mut client = Client::connect(&etcd.endpoints, None).await?;
                client.put("/lockmgr-bench/ready", "1", None).await?;
                Ok::<_, etcd_client::Error>(())
            };
            match tokio::time::timeout(Duration::from_secs(5), ready).await {
                Ok(Ok(())) => return Ok(etcd),
                _ if started.elapsed() > Duration::from_mins(1) => {
                    return Err("etcd did not become ready within 60 s".into());
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Etcd {
    /// Routes new connections by `setup`, the leader being member `leader`.
    pub fn configure(&mut self, setup: Setup, leader: usize) {
        let address = self.endpoints[leader].clone();
        self.router = Router::new(setup.route, address, self.endpoints.clone());
        self.keepalive = setup.keepalive;
    }

    /// Starts member `index` (again) on its data directory.
    pub(crate) fn spawn(&mut self, index: usize) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join(format!("e{index}.log")))?;
        let child = Command::new(&self.binary)
            .args(&self.specs[index])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| {
                format!("cannot start {} (apt-get install etcd-server): {e}", self.binary)
            })?;
        self.members[index] = Some(KillOnDrop(child));
        Ok(())
    }
}

impl System for Etcd {
    type Conn = EtcdConn;

    async fn connect(&self) -> Result<EtcdConn> {
        let member = self.router.next();
        let client = Client::connect([member.as_str()], None).await?;
        let leases = Channel::from_shared(member)?.connect().await?;
        Ok(EtcdConn { client, leases, keepalive: self.keepalive })
    }

    fn pids(&self) -> Vec<u32> {
        self.members.iter().flatten().map(|member| member.0.id()).collect()
    }

    fn fsyncs(&self) -> Vec<u64> {
        let count = |endpoint: &String| {
            let address = endpoint.trim_start_matches("http://");
            let (_, metrics) = lockmgr_tests::http_get(address, "/metrics");
            crate::procfs::metric_total(&metrics, "etcd_disk_wal_fsync_duration_seconds_count")
                + crate::procfs::metric_total(
                    &metrics,
                    "etcd_disk_backend_commit_duration_seconds_count",
                )
        };
        self.endpoints.iter().map(count).collect()
    }
}

pub struct EtcdConn {
    client: Client,
    leases: Channel,
    keepalive: KeepaliveModel,
}

/// etcd's `etcdserverpb.LeaseKeepAliveRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeepAliveRequest {
    #[prost(int64, tag = "1")]
    id: i64,
}

/// etcd's `etcdserverpb.LeaseKeepAliveResponse` (its header is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeepAliveResponse {
    #[prost(int64, tag = "2")]
    id: i64,
    #[prost(int64, tag = "3")]
    ttl: i64,
}

/// A keepalive stream: where pings go, and their answers.
pub type Stream = (mpsc::Sender<KeepAliveRequest>, Streaming<KeepAliveResponse>);

impl EtcdConn {
    /// A new stream, its first ping (of `lease`) already queued: a gRPC server may send
    /// the stream's headers only with its first answer (grpc-go does).
    async fn open(&mut self, lease: i64) -> Result<Stream> {
        let mut grpc = tonic::client::Grpc::new(self.leases.clone());
        grpc.ready().await?;
        let (requests, outgoing) = mpsc::channel(16);
        requests.send(KeepAliveRequest { id: lease }).await?;
        let path = PathAndQuery::from_static("/etcdserverpb.Lease/LeaseKeepAlive");
        let codec = tonic_prost::ProstCodec::<KeepAliveRequest, KeepAliveResponse>::default();
        let request = tonic::Request::new(ReceiverStream::new(outgoing));
        let answers = grpc.streaming(request, path, codec).await?.into_inner();
        Ok((requests, answers))
    }
}

impl std::fmt::Debug for EtcdConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EtcdConn")
    }
}

/// A lease and the task that keeps it alive (clientv3's `concurrency.Session`).
#[derive(Debug)]
pub struct EtcdSession {
    lease: i64,
    keepalive: JoinHandle<()>,
}

impl Drop for EtcdSession {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

pub type Keeper = Streams<Stream>;

fn whole_seconds(ttl: Duration) -> i64 {
    ttl.as_secs().max(1) as i64
}

impl Conn for EtcdConn {
    type Session = EtcdSession;
    type Held = Vec<u8>;
    type Keeper = Keeper;

    async fn session(&mut self, ttl: Duration) -> Result<EtcdSession> {
        let lease = self.client.lease_grant(whole_seconds(ttl), None).await?.id();
        let (mut keeper, mut answers) = self.client.lease_keep_alive(lease).await?;
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                if keeper.keep_alive().await.is_err()
                    || !matches!(answers.message().await, Ok(Some(_)))
                {
                    return;
                }
            }
        });
        Ok(EtcdSession { lease, keepalive })
    }

    async fn lock(&mut self, session: &EtcdSession, path: &str) -> Result<Vec<u8>> {
        let options = LockOptions::new().with_lease(session.lease);
        Ok(self.client.lock(path, Some(options)).await?.key().to_vec())
    }

    async fn unlock(&mut self, held: Vec<u8>) -> Result<()> {
        self.client.unlock(held).await?;
        Ok(())
    }

    async fn grant(&mut self, ttl: Duration) -> Result<i64> {
        Ok(self.client.lease_grant(whole_seconds(ttl), None).await?.id())
    }

    async fn revoke(&mut self, lease: i64) -> Result<()> {
        self.client.lease_revoke(lease).await?;
        Ok(())
    }

    async fn keeper(&mut self) -> Result<Keeper> {
        Ok(Streams::new(self.keepalive))
    }

    async fn keep_alive(&mut self, keeper: &mut Keeper, lease: i64) -> Result<bool> {
        let ((requests, answers), fresh) = keeper.get(lease, self.open(lease)).await?;
        if !fresh {
            requests.send(KeepAliveRequest { id: lease }).await?;
        }
        let answer = answers.message().await?.ok_or("the keepalive stream ended")?;
        if answer.id != lease {
            return Err(
                format!("a keepalive of lease {lease} was answered for {}", answer.id).into()
            );
        }
        Ok(answer.ttl > 0)
    }

    async fn alive(&mut self, lease: i64) -> Result<bool> {
        Ok(self.client.lease_time_to_live(lease, None).await?.ttl() > 0)
    }
}
