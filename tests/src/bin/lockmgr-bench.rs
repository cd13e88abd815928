//! `lockmgr-bench`: starts a lockmgr cluster of real processes on loopback (fsync on, as
//! in production) and measures lock + unlock latency and throughput.
//!
//! ```sh
//! cargo build --release -p lockmgr-server -p lockmgr-tests
//! target/release/lockmgr-bench --nodes 3 --seconds 10 --clients 64
//! ```

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use hdrhistogram::Histogram;
use lockmgr_tests::Cluster;

#[derive(Debug, Parser)]
#[command(about = "Lock + unlock latency and throughput of a lockmgr cluster on loopback")]
struct Args {
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Clients of the `parallel` workload (each on its own path).
    #[arg(long, default_value_t = 64)]
    clients: usize,
}

#[derive(Debug)]
struct Outcome {
    name: &'static str,
    pairs: u64,
    elapsed: Duration,
    acquire: Histogram<u64>,
    release: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// `clients` sessions, each locking and unlocking its own path for `seconds`.
async fn run(cluster: &Cluster, name: &'static str, clients: usize, seconds: u64) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Mutex::new((histogram(), histogram())));
    let mut tasks = Vec::new();
    for id in 0..clients {
        let client = cluster.client();
        let (stop, totals) = (stop.clone(), totals.clone());
        tasks.push(tokio::spawn(async move {
            let session = client.session(Duration::from_secs(10)).await.expect("a session");
            let path = format!("/bench/{name}/{id}");
            let (mut acquire, mut release) = (histogram(), histogram());
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let guard = session.lock(&path, Duration::from_secs(10)).await.expect("lock");
                let locked = Instant::now();
                guard.unlock().await.expect("unlock");
                acquire.record((locked - started).as_micros() as u64).expect("in bounds");
                release.record(locked.elapsed().as_micros() as u64).expect("in bounds");
            }
            let mut totals = totals.lock().expect("not poisoned");
            totals.0.add(&acquire).expect("same bounds");
            totals.1.add(&release).expect("same bounds");
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a worker");
    }
    let elapsed = started.elapsed();
    let (acquire, release) =
        Arc::try_unwrap(totals).expect("workers done").into_inner().expect("not poisoned");
    Outcome { name, pairs: acquire.len(), elapsed, acquire, release }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1_000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut cluster = Cluster::start(args.nodes, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let outcomes = [
        run(&cluster, "uncontended", 1, args.seconds).await,
        run(&cluster, "parallel", args.clients, args.seconds).await,
    ];
    println!(
        "lockmgr, {} nodes on loopback, fsync on, {} s per workload\n",
        args.nodes, args.seconds
    );
    println!(
        "| workload | clients | lock+unlock/s | acquire p50 ms | acquire p99 ms | acquire p999 ms | release p50 ms | release p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (outcome, clients) in outcomes.iter().zip([1, args.clients]) {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            outcome.name,
            clients,
            outcome.pairs as f64 / outcome.elapsed.as_secs_f64(),
            ms(outcome.acquire.value_at_quantile(0.5)),
            ms(outcome.acquire.value_at_quantile(0.99)),
            ms(outcome.acquire.value_at_quantile(0.999)),
            ms(outcome.release.value_at_quantile(0.5)),
            ms(outcome.release.value_at_quantile(0.99)),
        );
    }
}
