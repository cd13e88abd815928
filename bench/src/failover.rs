//! The failover workload: the leader of an idle cluster is killed with `-9` (`--kills`
//! times, restarted after each) and stopped with SIGSTOP for longer than a session's TTL
//! (`--pauses` times). Each time it measures how long a client waits, from the signal,
//! for its first answered Lock, and whether a session with the minimum TTL survives.
//!
//! Both systems are treated alike:
//! - **The probe**: one client of the system's own library, given every member, connected
//!   and answered once before the fault, holding a 60 s lease granted before it. After the
//!   fault it asks for a lock on a fresh path every 250 ms, as a busy service would, none
//!   cancelled (each library does its own retries within an attempt: lockmgr's moves to
//!   another member after 1 s of silence, etcd-client's balances over its endpoints); the
//!   time is to the first attempt answered.
//! - **The session**: a fresh client per trial holding one lock on a lease of the TTL,
//!   kept alive the way the system's client keeps it. lockmgr: `lockmgr_client::Session`.
//!   etcd: the Rust client has no session, so this is clientv3's (`concurrency.Session`,
//!   `lease.go`): a keepalive when a third of the TTL has passed since the last answer,
//!   the stream reopened 500 ms after it fails, the session lost once no answer came for
//!   a TTL since the last (clientv3 checks every 500 ms; this every 100 ms, which only
//!   helps etcd). A session survives if its client never declared it lost and the
//!   cluster still has its lease a second after the fault (kills) or at the end of the
//!   pause.
//! - Between trials every member runs again and agrees on a leader, then both wait a
//!   second; the session waits a little longer each trial (a different phase of its
//!   keepalive cycle at the fault).

use std::time::{Duration, Instant};

use crate::system::Result;

/// How often the probe starts another attempt while none has been answered.
const ATTEMPT_EVERY: Duration = Duration::from_millis(250);
/// A fault that no client gets past in this long fails the run.
const GIVE_UP: Duration = Duration::from_secs(30);

/// What the failover workload needs of a cluster beyond [`crate::system::System`].
pub(crate) trait Faulty {
    type Probe;
    type Kept;
    /// Waits until every running member answers and all agree on a leader: its index.
    async fn leader(&mut self) -> Result<usize>;
    fn pid(&self, index: usize) -> Option<u32>;
    fn kill(&mut self, index: usize);
    fn restart(&mut self, index: usize) -> Result<()>;
    async fn probe(&self) -> Result<Self::Probe>;
    /// One lock on a fresh `path` with the probe's lease.
    async fn probe_lock(&self, probe: &Self::Probe, path: &str) -> Result<()>;
    /// A new client's session of `ttl` holding `path`.
    async fn keep(&self, ttl: Duration, path: &str) -> Result<Self::Kept>;
    /// The session's client has not declared it lost.
    fn kept(kept: &Self::Kept) -> bool;
    /// The cluster still has the session's lease.
    async fn lease_alive(&self, probe: &mut Self::Probe, kept: &Self::Kept) -> Result<bool>;
}

#[derive(Debug, Default)]
pub(crate) struct FailoverRun {
    /// Milliseconds from each kill to the first answered lock.
    pub kills: Vec<f64>,
    pub sessions_lost_on_kill: usize,
    /// Milliseconds from each SIGSTOP to the first answered lock.
    pub pauses: Vec<f64>,
    pub sessions_lost_on_pause: usize,
}

fn signal(pid: u32, name: &str) -> Result<()> {
    let status = std::process::Command::new("kill").args([name, &pid.to_string()]).status()?;
    if !status.success() {
        return Err(format!("kill {name} {pid} failed").into());
    }
    Ok(())
}

/// Starts a lock attempt every [`ATTEMPT_EVERY`] from `since` on until one is answered.
async fn first_answer<S: Faulty>(
    system: &S,
    probe: &S::Probe,
    trial: usize,
    since: Instant,
) -> Result<Duration> {
    use futures_util::StreamExt;
    let mut attempts = futures_util::stream::FuturesUnordered::new();
    let mut next = 0;
    let mut ticks = tokio::time::interval(ATTEMPT_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if since.elapsed() > GIVE_UP {
                    return Err(format!("no lock answered within {GIVE_UP:?} of the fault").into());
                }
                let path = format!("/bench/failover/{trial}/probe-{next}");
                next += 1;
                attempts.push(async move { system.probe_lock(probe, &path).await });
            }
            Some(answered) = attempts.next() => {
                if answered.is_ok() {
                    return Ok(since.elapsed());
                }
            }
        }
    }
}

pub(crate) async fn failover<S: Faulty>(
    system: &mut S,
    kills: usize,
    pauses: usize,
    ttl: Duration,
    pause: Duration,
) -> Result<FailoverRun> {
    let mut run = FailoverRun::default();
    for trial in 0..kills + pauses {
        let kill = trial < kills;
        system.leader().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut probe = system.probe().await?;
        system.probe_lock(&probe, &format!("/bench/failover/{trial}/warm")).await?;
        let kept = system.keep(ttl, &format!("/bench/failover/{trial}/session")).await?;
        let phase = Duration::from_millis((trial as u64 * 277) % 1_000);
        tokio::time::sleep(ttl / 2 + phase).await;
        // The leader now: the session's renewal may have moved nothing, but check.
        let leader = system.leader().await?;
        let pid = system.pid(leader).ok_or("the leader has no process")?;
        let faulted = Instant::now();
        if kill {
            system.kill(leader);
        } else {
            signal(pid, "-STOP")?;
        }
        let waited = first_answer(system, &probe, trial, faulted).await;
        let checked_at = faulted + if kill { ttl + Duration::from_secs(1) } else { pause };
        tokio::time::sleep_until(checked_at.into()).await;
        let survived = S::kept(&kept) && system.lease_alive(&mut probe, &kept).await?;
        if kill {
            system.restart(leader)?;
        } else {
            signal(pid, "-CONT")?;
        }
        let waited = waited?.as_secs_f64() * 1_000.0;
        if kill {
            run.kills.push(waited);
            run.sessions_lost_on_kill += usize::from(!survived);
        } else {
            run.pauses.push(waited);
            run.sessions_lost_on_pause += usize::from(!survived);
        }
        eprintln!(
            "  {} {trial}: first lock after {waited:.0} ms, session {}",
            if kill { "kill" } else { "pause" },
            if survived { "kept" } else { "LOST" }
        );
    }
    Ok(run)
}

/// `values`' minimum, median and maximum (zeros if empty).
pub(crate) fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.as_slice() {
        [] => (0.0, 0.0, 0.0),
        all => {
            let middle = all.len() / 2;
            let median = if all.len() % 2 == 0 {
                f64::midpoint(all[middle - 1], all[middle])
            } else {
                all[middle]
            };
            (all[0], median, all[all.len() - 1])
        }
    }
}

mod lockmgr {
    use std::time::Duration;

    use lockmgr_client::{Client, ClientConfig, Code, LockGuard, Session};
    use lockmgr_proto::v1;

    use super::Faulty;
    use crate::{lockmgr::Lockmgr, system::Result};

    pub(crate) struct Probe {
        client: Client,
        lease_id: i64,
        next_request_id: std::sync::atomic::AtomicU64,
    }

    pub(crate) struct Kept {
        session: Session,
        _lock: LockGuard,
        _client: Client,
    }

    impl Faulty for Lockmgr {
        type Probe = Probe;
        type Kept = Kept;

        async fn leader(&mut self) -> Result<usize> {
            let leader = self.cluster.wait_for_leader(Duration::from_secs(30)).await;
            Ok(self.cluster.index_of(leader))
        }

        fn pid(&self, index: usize) -> Option<u32> {
            self.cluster.members[index].pid()
        }

        fn kill(&mut self, index: usize) {
            self.cluster.kill(index);
        }

        fn restart(&mut self, index: usize) -> Result<()> {
            self.cluster.restart(index);
            Ok(())
        }

        async fn probe(&self) -> Result<Probe> {
            let client = Client::connect(ClientConfig::new(self.cluster.endpoints())).await?;
            let lease_id = client.grant_lease(Duration::from_mins(1)).await?.lease_id;
            Ok(Probe { client, lease_id, next_request_id: 1.into() })
        }

        async fn probe_lock(&self, probe: &Probe, path: &str) -> Result<()> {
            let request_id =
                probe.next_request_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let request = v1::LockRequest {
                path: path.into(),
                lease_id: probe.lease_id,
                mode: v1::LockMode::Exclusive.into(),
                wait_timeout_ms: 0,
                holder_id: "failover-probe".into(),
                request_id,
                permits: 0,
            };
            probe.client.lock(request).await?;
            Ok(())
        }

        async fn keep(&self, ttl: Duration, path: &str) -> Result<Kept> {
            let client = Client::connect(ClientConfig::new(self.cluster.endpoints())).await?;
            let session = client.session(ttl).await?;
            let lock = session.try_lock(path).await?.ok_or("the session's path was busy")?;
            Ok(Kept { session, _lock: lock, _client: client })
        }

        fn kept(kept: &Kept) -> bool {
            !kept.session.is_lost()
        }

        async fn lease_alive(&self, probe: &mut Probe, kept: &Kept) -> Result<bool> {
            match probe.client.time_to_live(kept.session.lease_id()).await {
                Ok(answer) => Ok(answer.remaining_ttl_ms > 0),
                Err(error) if error.code() == Some(Code::NotFound) => Ok(false),
                Err(error) => Err(error.into()),
            }
        }
    }
}

mod etcd {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::{Duration, Instant},
    };

    use etcd_client::{Client, LockOptions};
    use tokio::task::JoinHandle;

    use super::Faulty;
    use crate::{etcd::Etcd, system::Result};

    pub(crate) struct Probe {
        client: Client,
        lease: i64,
    }

    pub(crate) struct Kept {
        lease: i64,
        lost: Arc<AtomicBool>,
        keepalive: JoinHandle<()>,
    }

    impl Drop for Kept {
        fn drop(&mut self) {
            self.keepalive.abort();
        }
    }

    /// clientv3's keepalive of one lease (see the module's comment).
    async fn keep_alive(mut client: Client, lease: i64, ttl: Duration, lost: Arc<AtomicBool>) {
        let mut deadline = Instant::now() + ttl;
        'streams: loop {
            if Instant::now() > deadline {
                lost.store(true, Ordering::Relaxed);
                return;
            }
            let opened =
                tokio::time::timeout(Duration::from_secs(1), client.lease_keep_alive(lease));
            let Ok(Ok((mut keeper, mut answers))) = opened.await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let mut next = Instant::now();
            loop {
                if Instant::now() > deadline {
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
                if Instant::now() >= next {
                    if keeper.keep_alive().await.is_err() {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue 'streams;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, answers.message()).await {
                        Ok(Ok(Some(answer))) if answer.ttl() > 0 => {
                            let granted = Duration::from_secs(answer.ttl() as u64);
                            deadline = Instant::now() + granted;
                            next = Instant::now() + granted / 3;
                        }
                        Ok(Ok(Some(_))) => {
                            lost.store(true, Ordering::Relaxed);
                            return;
                        }
                        Ok(_) => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue 'streams;
                        }
                        Err(_) => continue,
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    impl Faulty for Etcd {
        type Probe = Probe;
        type Kept = Kept;

        async fn leader(&mut self) -> Result<usize> {
            let started = Instant::now();
            loop {
                let mut views = Vec::new();
                for (index, endpoint) in self.endpoints.iter().enumerate() {
                    if self.members[index].is_none() {
                        continue;
                    }
                    let status = async {
                        let mut client = Client::connect([endpoint], None).await?;
                        client.status().await
                    };
                    if let Ok(Ok(status)) =
                        tokio::time::timeout(Duration::from_secs(1), status).await
                    {
                        let member =
                            status.header().map_or(0, etcd_client::ResponseHeader::member_id);
                        views.push((index, member, status.leader()));
                    }
                }
                let all_answered = views.len() == self.members.iter().flatten().count();
                let leader = views.first().map_or(0, |view| view.2);
                let agreed = all_answered && leader != 0 && views.iter().all(|v| v.2 == leader);
                if agreed && let Some(view) = views.iter().find(|view| view.1 == leader) {
                    return Ok(view.0);
                }
                if started.elapsed() > Duration::from_secs(30) {
                    return Err("etcd agreed on no leader within 30 s".into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        fn pid(&self, index: usize) -> Option<u32> {
            self.members[index].as_ref().map(|member| member.0.id())
        }

        fn kill(&mut self, index: usize) {
            self.members[index] = None;
        }

        fn restart(&mut self, index: usize) -> Result<()> {
            self.spawn(index)
        }

        async fn probe(&self) -> Result<Probe> {
            let mut client = Client::connect(&self.endpoints, None).await?;
            let lease = client.lease_grant(60, None).await?.id();
            Ok(Probe { client, lease })
        }

        async fn probe_lock(&self, probe: &Probe, path: &str) -> Result<()> {
            let mut client = probe.client.clone();
            client.lock(path, Some(LockOptions::new().with_lease(probe.lease))).await?;
            Ok(())
        }

        async fn keep(&self, ttl: Duration, path: &str) -> Result<Kept> {
            let mut client = Client::connect(&self.endpoints, None).await?;
            let lease = client.lease_grant(ttl.as_secs().max(1) as i64, None).await?.id();
            client.lock(path, Some(LockOptions::new().with_lease(lease))).await?;
            let lost = Arc::new(AtomicBool::new(false));
            let keepalive = tokio::spawn(keep_alive(client, lease, ttl, lost.clone()));
            Ok(Kept { lease, lost, keepalive })
        }

        fn kept(kept: &Kept) -> bool {
            !kept.lost.load(Ordering::Relaxed)
        }

        async fn lease_alive(&self, probe: &mut Probe, kept: &Kept) -> Result<bool> {
            // As lockmgr's client does inside: ask again, elsewhere, for a while.
            let started = Instant::now();
            loop {
                match probe.client.lease_time_to_live(kept.lease, None).await {
                    Ok(answer) => return Ok(answer.ttl() > 0),
                    Err(_) if started.elapsed() < Duration::from_secs(15) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
}
