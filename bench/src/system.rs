//! What a workload needs from a lock service, implemented for lockmgr and for etcd, and
//! the clusters of real processes each runs on (loopback, 3 members, fsync on). Both are
//! set up alike ([`Setup`]): each connection talks to one member, chosen by the same
//! [`Route`]; each has its client library's connection plus one gRPC channel for bare
//! lease keepalives, sent in the same [`KeepaliveModel`].

use std::{
    collections::HashMap,
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use clap::ValueEnum;
use serde::Serialize;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// A cluster under test.
pub trait System: Send + Sync + 'static {
    type Conn: Conn;
    /// A new client connection (each worker has its own).
    fn connect(&self) -> impl Future<Output = Result<Self::Conn>> + Send;
    /// The members' process ids.
    fn pids(&self) -> Vec<u32>;
    /// Each member's fsyncs so far, from its own metrics (lockmgr's
    /// `disk_fsync_duration_seconds_count`; etcd's WAL and backend commit counts).
    fn fsyncs(&self) -> Vec<u64>;
}

/// One client's connection.
pub trait Conn: Send + 'static {
    /// A lease kept alive in the background, as the client libraries' sessions do.
    type Session: Send + Sync + 'static;
    /// A held lock.
    type Held: Send + 'static;
    /// A stream that keeps many leases alive.
    type Keeper: Send + 'static;

    fn session(&mut self, ttl: Duration) -> impl Future<Output = Result<Self::Session>> + Send;
    /// Acquires `path` exclusively for `session`, waiting as long as it takes.
    fn lock(
        &mut self,
        session: &Self::Session,
        path: &str,
    ) -> impl Future<Output = Result<Self::Held>> + Send;
    fn unlock(&mut self, held: Self::Held) -> impl Future<Output = Result<()>> + Send;
    /// A bare lease (nobody keeps it alive unless the workload does).
    fn grant(&mut self, ttl: Duration) -> impl Future<Output = Result<i64>> + Send;
    fn revoke(&mut self, lease: i64) -> impl Future<Output = Result<()>> + Send;
    fn keeper(&mut self) -> impl Future<Output = Result<Self::Keeper>> + Send;
    /// One keepalive of `lease` on `keeper`, answered: whether the lease still lives.
    fn keep_alive(
        &mut self,
        keeper: &mut Self::Keeper,
        lease: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Whether `lease` still lives (asked of the cluster, not remembered).
    fn alive(&mut self, lease: i64) -> impl Future<Output = Result<bool>> + Send;
}

/// Which member a client connection talks to (the same rule for both systems).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Every connection to the leader (found when the cluster starts).
    Leader,
    /// Connection i to member i mod n: followers forward to the leader.
    Spread,
}

/// How the `leases` workload's bare keepalives travel (the same for both systems).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepaliveModel {
    /// One stream per worker carries every lease of its share, one ping in flight.
    Shared,
    /// One stream per lease (etcd-client's and clientv3's model), one ping in flight.
    PerLease,
}

/// A worker's keepalive streams, by [`KeepaliveModel`]: its one shared stream, or one
/// per lease, each opened when first needed.
#[derive(Debug)]
pub struct Streams<S> {
    model: KeepaliveModel,
    /// By lease (`None`: the shared stream).
    open: HashMap<Option<i64>, S>,
}

impl<S> Streams<S> {
    pub fn new(model: KeepaliveModel) -> Streams<S> {
        Streams { model, open: HashMap::new() }
    }

    /// The stream that carries `lease`'s pings, opened by `open` if there is none yet, and
    /// whether it was (its first ping is then already sent).
    pub async fn get(
        &mut self,
        lease: i64,
        open: impl Future<Output = Result<S>>,
    ) -> Result<(&mut S, bool)> {
        let key = match self.model {
            KeepaliveModel::Shared => None,
            KeepaliveModel::PerLease => Some(lease),
        };
        let fresh = !self.open.contains_key(&key);
        if fresh {
            self.open.insert(key, open.await?);
        }
        Ok((self.open.get_mut(&key).expect("opened above"), fresh))
    }
}

/// How both systems' clients are set up.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Setup {
    pub route: Route,
    pub keepalive: KeepaliveModel,
}

/// Hands each new connection its member by [`Route`].
#[derive(Debug)]
pub struct Router {
    route: Route,
    leader: String,
    members: Vec<String>,
    next: AtomicUsize,
}

impl Router {
    pub fn new(route: Route, leader: String, members: Vec<String>) -> Router {
        Router { route, leader, members, next: AtomicUsize::new(0) }
    }

    /// The member the next connection talks to.
    pub fn next(&self) -> String {
        match self.route {
            Route::Leader => self.leader.clone(),
            Route::Spread => {
                let at = self.next.fetch_add(1, Ordering::Relaxed);
                self.members[at % self.members.len()].clone()
            }
        }
    }
}
