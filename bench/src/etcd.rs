//! etcd under test: a cluster of Debian's `etcd` processes (v3 API, fsync on, default
//! settings), driven through the `etcd-client` crate with etcd's own lock API bound to a
//! lease, as `etcdctl lock` and clientv3's concurrency package do.

use std::{
    collections::{HashMap, hash_map::Entry},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper, LockOptions};
use lockmgr_tests::{KillOnDrop, free_port};
use tokio::task::JoinHandle;

use crate::system::{Conn, Result, System};

#[derive(Debug)]
pub struct Etcd {
    binary: String,
    pub(crate) endpoints: Vec<String>,
    /// Each member's arguments (a restart reuses them) and its process, while it runs.
    specs: Vec<Vec<String>>,
    pub(crate) members: Vec<Option<KillOnDrop>>,
    root: tempfile::TempDir,
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
        let mut etcd = Etcd {
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
        Ok(EtcdConn { client: Client::connect(&self.endpoints, None).await? })
    }

    fn pids(&self) -> Vec<u32> {
        self.members.iter().flatten().map(|member| member.0.id()).collect()
    }
}

pub struct EtcdConn {
    client: Client,
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

/// etcd-client keeps one lease per keepalive stream; a keeper opens them as needed.
#[derive(Debug, Default)]
pub struct Keeper {
    streams: HashMap<i64, (LeaseKeeper, LeaseKeepAliveStream)>,
}

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
        Ok(Keeper::default())
    }

    async fn keep_alive(&mut self, keeper: &mut Keeper, lease: i64) -> Result<bool> {
        let (sender, answers) = match keeper.streams.entry(lease) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(new) => new.insert(self.client.lease_keep_alive(lease).await?),
        };
        sender.keep_alive().await?;
        let answer = answers.message().await?.ok_or("the keepalive stream ended")?;
        Ok(answer.ttl() > 0)
    }

    async fn alive(&mut self, lease: i64) -> Result<bool> {
        Ok(self.client.lease_time_to_live(lease, None).await?.ttl() > 0)
    }
}
