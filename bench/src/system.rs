//! What a workload needs from a lock service, implemented for lockmgr and for etcd, and
//! the clusters of real processes each runs on (loopback, 3 members, fsync on).

use std::{future::Future, time::Duration};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// A cluster under test.
pub trait System: Send + Sync + 'static {
    type Conn: Conn;
    /// A new client connection (each worker has its own).
    fn connect(&self) -> impl Future<Output = Result<Self::Conn>> + Send;
    /// The members' process ids.
    fn pids(&self) -> Vec<u32>;
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
