//! The workloads, each bounded in time or size, written once for any [`System`].

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::{
    procfs::{Usage, usage},
    system::{Conn, Result, System},
};

/// The lease TTL of the lock workloads' sessions.
const SESSION_TTL: Duration = Duration::from_secs(10);

/// Concurrent workers when a workload spreads many small requests (grants, checks).
const FAN_OUT: usize = 64;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

fn micros(elapsed: Duration) -> u64 {
    elapsed.as_micros().clamp(1, 600_000_000) as u64
}

/// What the servers spent during a workload.
#[derive(Debug)]
pub struct Cost {
    pub cpu: Duration,
    /// Largest resident set of any member at the end, and largest peak so far.
    pub rss_max: u64,
    pub peak_rss_max: u64,
    /// Summed over the members: fsyncs, bytes written, write syscalls.
    pub fsyncs: u64,
    pub write_bytes: u64,
    pub write_syscalls: u64,
    pub members: usize,
}

/// Measures what the members spent across `work`.
pub async fn costed<S: System, T>(system: &S, work: impl Future<Output = T>) -> (T, Cost) {
    let before: Vec<Usage> = system.pids().into_iter().map(usage).collect();
    let fsyncs_before: u64 = system.fsyncs().iter().sum();
    let value = work.await;
    let after: Vec<Usage> = system.pids().into_iter().map(usage).collect();
    let fsyncs_after: u64 = system.fsyncs().iter().sum();
    let spent = |field: fn(&Usage) -> u64| -> u64 {
        after.iter().zip(&before).map(|(a, b)| field(a).saturating_sub(field(b))).sum()
    };
    let cpu = after.iter().zip(&before).map(|(a, b)| a.cpu.saturating_sub(b.cpu)).sum();
    let rss_max = after.iter().map(|u| u.rss).max().unwrap_or(0);
    let peak_rss_max = after.iter().map(|u| u.peak_rss).max().unwrap_or(0);
    let cost = Cost {
        cpu,
        rss_max,
        peak_rss_max,
        fsyncs: fsyncs_after.saturating_sub(fsyncs_before),
        write_bytes: spent(|u| u.write_bytes),
        write_syscalls: spent(|u| u.write_syscalls),
        members: after.len().max(1),
    };
    (value, cost)
}

/// Lock + unlock loops.
#[derive(Debug)]
pub struct Locking {
    pub elapsed: Duration,
    pub acquire: Histogram<u64>,
    pub release: Histogram<u64>,
    pub errors: u64,
}

/// `clients` workers, each with its own connection and session, lock and unlock
/// `path(worker)` until `length` has passed.
pub async fn locking<S: System>(
    system: &S,
    clients: usize,
    length: Duration,
    path: impl Fn(usize) -> String,
) -> Result<Locking> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..clients {
        let mut conn = system.connect().await?;
        let session = conn.session(SESSION_TTL).await?;
        let (path, stop, errors) = (path(worker), stop.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let (mut acquire, mut release) = (histogram(), histogram());
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let Ok(held) = conn.lock(&session, &path).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let locked = Instant::now();
                if conn.unlock(held).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                acquire.record(micros(locked - started)).expect("in bounds");
                release.record(micros(locked.elapsed())).expect("in bounds");
            }
            (acquire, release)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acquire, mut release) = (histogram(), histogram());
    for worker in workers {
        let (a, r) = worker.await?;
        acquire.add(&a).expect("same bounds");
        release.add(&r).expect("same bounds");
    }
    Ok(Locking {
        elapsed: started.elapsed(),
        acquire,
        release,
        errors: errors.load(Ordering::Relaxed),
    })
}

type Boxed<'a, R> = Pin<Box<dyn Future<Output = R> + Send + 'a>>;

/// Runs `work` on `items` split across [`FAN_OUT`] workers, each with its own connection.
async fn fan_out<S, T, R>(
    system: &S,
    items: Vec<T>,
    work: for<'a> fn(&'a mut S::Conn, T) -> Boxed<'a, R>,
) -> Result<Vec<R>>
where
    S: System,
    T: Send + 'static,
    R: Send + 'static,
{
    let per_worker = items.len().div_ceil(FAN_OUT).max(1);
    let mut items = items.into_iter();
    let mut workers = Vec::new();
    loop {
        let chunk: Vec<T> = items.by_ref().take(per_worker).collect();
        if chunk.is_empty() {
            break;
        }
        let mut conn = system.connect().await?;
        workers.push(tokio::spawn(async move {
            let mut results = Vec::with_capacity(chunk.len());
            for item in chunk {
                results.push(work(&mut conn, item).await);
            }
            results
        }));
    }
    let mut results = Vec::new();
    for worker in workers {
        results.extend(worker.await?);
    }
    Ok(results)
}

/// Grants `count` bare leases: their ids with when each grant was sent (the earliest its
/// TTL can have started), and the grant rate.
pub async fn grant_leases<S: System>(
    system: &S,
    count: usize,
    ttl: Duration,
) -> Result<(Vec<(i64, Instant)>, f64)> {
    let started = Instant::now();
    let granted = fan_out(system, vec![ttl; count], grant_one::<S::Conn>).await?;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let leases = granted.into_iter().collect::<std::result::Result<Vec<_>, String>>()?;
    Ok((leases, rate))
}

type Granted = std::result::Result<(i64, Instant), String>;

fn grant_one<C: Conn>(conn: &mut C, ttl: Duration) -> Boxed<'_, Granted> {
    Box::pin(async move {
        let sent = Instant::now();
        conn.grant(ttl).await.map(|lease| (lease, sent)).map_err(|e| e.to_string())
    })
}

fn revoke_one<C: Conn>(conn: &mut C, lease: i64) -> Boxed<'_, bool> {
    Box::pin(async move { conn.revoke(lease).await.is_ok() })
}

/// Whether the lease lives, with what the workload knew of it.
/// Whether the lease lives (`None`: the cluster did not say), when that was asked, and
/// when its last keepalive was answered.
type Verdict = (Option<bool>, Instant, Option<Instant>);

fn check_one<C: Conn>(conn: &mut C, lease: (i64, Option<Instant>)) -> Boxed<'_, Verdict> {
    Box::pin(async move {
        for _attempt in 0..3 {
            let asked = Instant::now();
            if let Ok(alive) = conn.alive(lease.0).await {
                return (Some(alive), asked, lease.1);
            }
        }
        (None, Instant::now(), lease.1)
    })
}

pub async fn revoke_leases<S: System>(system: &S, leases: Vec<i64>) -> Result<()> {
    fan_out(system, leases, revoke_one::<S::Conn>).await?;
    Ok(())
}

/// Leases kept alive.
#[derive(Debug)]
pub struct Keeping {
    pub leases: usize,
    pub grant_rate: f64,
    pub elapsed: Duration,
    pub keepalive: Histogram<u64>,
    /// Leases found gone at the end although a keepalive had been answered within their TTL.
    pub expired_wrongly: usize,
    /// Leases gone whose last answered keepalive was longer ago than their TTL (the
    /// workload could not keep up): not the server's fault.
    pub lapsed: usize,
    /// Leases the cluster would not say anything about at the end (three tries).
    pub unchecked: usize,
    pub errors: u64,
}

/// Grants `count` leases of `ttl`, keeps them all alive (workers cycling through their
/// share, one keepalive in flight each) for `length`, then asks the cluster which live.
pub async fn keeping<S: System>(
    system: &S,
    count: usize,
    ttl: Duration,
    length: Duration,
) -> Result<Keeping> {
    let (leases, grant_rate) = grant_leases(system, count, ttl).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let per_worker = leases.len().div_ceil(FAN_OUT).max(1);
    let mut workers = Vec::new();
    let started = Instant::now();
    for share in leases.chunks(per_worker) {
        let mut conn = system.connect().await?;
        let mut keeper = conn.keeper().await?;
        let share = share.to_vec();
        let (stop, errors) = (stop.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut last_ack: Vec<Option<Instant>> =
                share.iter().map(|(_, sent)| Some(*sent)).collect();
            'outer: while !stop.load(Ordering::Relaxed) {
                for (i, (lease, _)) in share.iter().enumerate() {
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    let sent = Instant::now();
                    match conn.keep_alive(&mut keeper, *lease).await {
                        Ok(true) => {
                            latency.record(micros(sent.elapsed())).expect("in bounds");
                            last_ack[i] = Some(sent);
                        }
                        Ok(false) => last_ack[i] = last_ack[i].filter(|_| false),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            match conn.keeper().await {
                                Ok(fresh) => keeper = fresh,
                                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                            }
                        }
                    }
                }
            }
            (share, last_ack, latency)
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut keepalive = histogram();
    let mut acks = Vec::new();
    for worker in workers {
        let (share, last_ack, latency) = worker.await?;
        keepalive.add(&latency).expect("same bounds");
        acks.extend(share.into_iter().map(|(lease, _)| lease).zip(last_ack));
    }
    let elapsed = started.elapsed();
    let verdicts = fan_out(system, acks, check_one::<S::Conn>).await?;
    let mut expired_wrongly = 0;
    let mut lapsed = 0;
    let mut unchecked = 0;
    for (alive, asked, last_ack) in verdicts {
        match alive {
            Some(true) => {}
            None => unchecked += 1,
            // Promised alive until the last answered keepalive plus the TTL (less a second
            // of slack for etcd's whole-second TTLs).
            Some(false) => match last_ack {
                Some(at) if at + ttl > asked + Duration::from_secs(1) => expired_wrongly += 1,
                _ => lapsed += 1,
            },
        }
    }
    Ok(Keeping {
        leases: count,
        grant_rate,
        elapsed,
        keepalive,
        expired_wrongly,
        lapsed,
        unchecked,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// Memory after many distinct paths and with many live leases.
#[derive(Debug)]
pub struct Footprint {
    pub paths: usize,
    pub leases: usize,
    pub rss_idle: u64,
    pub rss_after_paths: u64,
    pub rss_with_leases: u64,
    pub peak_rss: u64,
}

/// Locks and releases `paths` distinct paths, then grants `leases` leases, reading the
/// members' resident memory (the largest member's) after each step.
pub async fn footprint<S: System>(system: &S, paths: usize, leases: usize) -> Result<Footprint> {
    let rss = |system: &S| system.pids().into_iter().map(|pid| usage(pid).rss).max().unwrap_or(0);
    let rss_idle = rss(system);
    let per_worker = paths.div_ceil(FAN_OUT).max(1);
    let mut workers = Vec::new();
    for worker in 0..paths.div_ceil(per_worker) {
        let mut conn = system.connect().await?;
        let session = conn.session(SESSION_TTL).await?;
        workers.push(tokio::spawn(async move {
            let mut failed = 0;
            for i in worker * per_worker..((worker + 1) * per_worker).min(paths) {
                let path = format!("/bench/footprint/{i:08}");
                let done = match conn.lock(&session, &path).await {
                    Ok(held) => conn.unlock(held).await.is_ok(),
                    Err(_) => false,
                };
                failed += usize::from(!done);
            }
            failed
        }));
    }
    let mut failed = 0;
    for worker in workers {
        failed += worker.await?;
    }
    if failed > 0 {
        return Err(format!("{failed} of {paths} paths could not be locked and released").into());
    }
    let rss_after_paths = rss(system);
    let (granted, _) = grant_leases(system, leases, Duration::from_mins(2)).await?;
    let rss_with_leases = rss(system);
    let peak_rss = system.pids().into_iter().map(|pid| usage(pid).peak_rss).max().unwrap_or(0);
    revoke_leases(system, granted.into_iter().map(|(lease, _)| lease).collect()).await?;
    Ok(Footprint { paths, leases, rss_idle, rss_after_paths, rss_with_leases, peak_rss })
}
