//! The Prometheus metrics of the specification (`docs/observability.md`), with its exact
//! names, types and labels, in one registry per node.
//!
//! `lock_path` labels are bounded: a path is cut to its first `path_label_depth`
//! segments, and once `path_label_values_max` distinct values exist, new ones are counted
//! under `_overflow`, so 100,000 distinct paths never make 100,000 series.
//!
//! `status` of `lock_acquire_total`: `success` (granted), `busy` (a try-lock found it
//! held), `timeout` (the wait timed out), `aborted` (the lease ended while waiting, or the
//! caller went away), `rejected` (the caller's mistake: bad argument, unknown lease, a
//! limit), `failure` (the service failed: no leader, no quorum, internal error). Only
//! `failure` feeds the failure-rate alert.
//!
//! `go_goroutines` has no meaning in Rust; `tokio_tasks_alive` is its equivalent.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Sub-millisecond to a minute: lock waits can be long, fsyncs short.
pub const BUCKETS_SECONDS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 60.0,
];

/// Lease TTLs: seconds to a day.
const TTL_BUCKETS_SECONDS: [f64; 10] =
    [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3_600.0, 86_400.0];

pub const OVERFLOW_LABEL: &str = "_overflow";

/// Turns paths into bounded `lock_path` label values.
#[derive(Debug)]
pub struct PathLabels {
    depth: usize,
    values_max: usize,
    seen: Mutex<HashSet<String>>,
}

impl PathLabels {
    pub fn new(depth: usize, values_max: usize) -> PathLabels {
        PathLabels { depth: depth.max(1), values_max, seen: Mutex::default() }
    }

    pub fn label(&self, path: &str) -> String {
        let cut = match path.match_indices('/').nth(self.depth) {
            Some((at, _)) => &path[..at],
            None => path,
        };
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(cut) {
            return cut.to_owned();
        }
        if seen.len() >= self.values_max {
            return OVERFLOW_LABEL.to_owned();
        }
        seen.insert(cut.to_owned());
        cut.to_owned()
    }
}

/// Every metric of a node.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub paths: PathLabels,
    pub lock_acquire_total: IntCounterVec,
    pub lock_acquire_duration_seconds: HistogramVec,
    pub lock_release_total: IntCounterVec,
    pub lock_held_duration_seconds: HistogramVec,
    pub lock_waiters_current: IntGaugeVec,
    pub lock_contention_ratio: GaugeVec,
    contention: Mutex<HashMap<String, (u64, u64)>>,
    pub locks_active_total: IntGauge,
    pub lease_grant_total: IntCounter,
    pub lease_revoke_total: IntCounterVec,
    pub lease_expire_total: IntCounter,
    pub lease_renew_total: IntCounterVec,
    pub lease_ttl_seconds: Histogram,
    pub leases_active_total: IntGauge,
    pub raft_is_leader: IntGauge,
    pub raft_term: IntGauge,
    pub raft_committed_index: IntGauge,
    pub raft_applied_index: IntGauge,
    pub raft_leader_changes_total: IntCounter,
    pub raft_proposals_total: IntCounterVec,
    pub raft_proposal_duration_seconds: HistogramVec,
    pub raft_replication_lag_entries: IntGaugeVec,
    pub client_connections_current: IntGauge,
    pub client_requests_total: IntCounterVec,
    pub client_request_duration_seconds: HistogramVec,
    pub watch_streams_current: IntGauge,
    pub watch_events_sent_total: IntCounter,
    pub tokio_tasks_alive: IntGauge,
    pub disk_write_bytes_total: IntCounter,
    pub disk_read_bytes_total: IntCounter,
    /// Every fsync of the data directory (a synced write or the log writer's group
    /// commit): its count is fsyncs, etcd's `etcd_disk_wal_fsync_duration_seconds`.
    pub disk_fsync_duration_seconds: Histogram,
    pub network_bytes_sent_total: IntCounterVec,
    pub network_bytes_received_total: IntCounterVec,
    pub snapshot_last_index: IntGauge,
    pub raft_last_log_index: IntGauge,
    /// Last totals read from the OS, to turn them into counter increments.
    io_seen: Mutex<(u64, u64)>,
}

fn histogram_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(BUCKETS_SECONDS.to_vec())
}

impl Metrics {
    // One registration per metric of the specification: long, but a plain list.
    #[allow(clippy::too_many_lines)]
    pub fn new(path_label_depth: usize, path_label_values_max: usize) -> Metrics {
        let registry = Registry::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric.expect("a valid metric definition");
                registry.register(Box::new(metric.clone())).expect("a unique metric name");
                metric
            }};
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
        };
        let metrics = Metrics {
            paths: PathLabels::new(path_label_depth, path_label_values_max),
            lock_acquire_total: register!(counter(
                "lock_acquire_total",
                "Total lock acquisition attempts",
                &["status", "lock_path"]
            )),
            lock_acquire_duration_seconds: register!(HistogramVec::new(
                histogram_opts("lock_acquire_duration_seconds", "Lock acquisition latency"),
                &["status", "lock_path"]
            )),
            lock_release_total: register!(counter(
                "lock_release_total",
                "Total lock releases",
                &["lock_path"]
            )),
            lock_held_duration_seconds: register!(HistogramVec::new(
                histogram_opts("lock_held_duration_seconds", "How long locks are held"),
                &["lock_path"]
            )),
            lock_waiters_current: register!(gauge(
                "lock_waiters_current",
                "Current waiters per lock",
                &["lock_path"]
            )),
            lock_contention_ratio: register!(GaugeVec::new(
                Opts::new("lock_contention_ratio", "Ratio of contended acquires"),
                &["lock_path"]
            )),
            contention: Mutex::default(),
            locks_active_total: register!(IntGauge::new(
                "locks_active_total",
                "Total active locks"
            )),
            lease_grant_total: register!(IntCounter::new(
                "lease_grant_total",
                "Total leases granted"
            )),
            lease_revoke_total: register!(counter(
                "lease_revoke_total",
                "Total leases revoked",
                &["reason"]
            )),
            lease_expire_total: register!(IntCounter::new(
                "lease_expire_total",
                "Total leases expired"
            )),
            lease_renew_total: register!(counter(
                "lease_renew_total",
                "Total lease renewals",
                &["status"]
            )),
            lease_ttl_seconds: register!(Histogram::with_opts(
                HistogramOpts::new("lease_ttl_seconds", "Granted lease TTLs")
                    .buckets(TTL_BUCKETS_SECONDS.to_vec())
            )),
            leases_active_total: register!(IntGauge::new(
                "leases_active_total",
                "Current active leases"
            )),
            raft_is_leader: register!(IntGauge::new("raft_is_leader", "1 if this node is leader")),
            raft_term: register!(IntGauge::new("raft_term", "Current Raft term")),
            raft_committed_index: register!(IntGauge::new(
                "raft_committed_index",
                "Last committed log index"
            )),
            raft_applied_index: register!(IntGauge::new(
                "raft_applied_index",
                "Last applied log index"
            )),
            raft_leader_changes_total: register!(IntCounter::new(
                "raft_leader_changes_total",
                "Number of leader elections"
            )),
            raft_proposals_total: register!(counter(
                "raft_proposals_total",
                "Total proposals",
                &["status"]
            )),
            raft_proposal_duration_seconds: register!(HistogramVec::new(
                histogram_opts("raft_proposal_duration_seconds", "Proposal latency"),
                &["status"]
            )),
            raft_replication_lag_entries: register!(gauge(
                "raft_replication_lag_entries",
                "Entries behind leader",
                &["follower_id"]
            )),
            client_connections_current: register!(IntGauge::new(
                "client_connections_current",
                "Active client connections"
            )),
            client_requests_total: register!(counter(
                "client_requests_total",
                "Total client requests",
                &["method", "status"]
            )),
            client_request_duration_seconds: register!(HistogramVec::new(
                histogram_opts("client_request_duration_seconds", "Request latency"),
                &["method"]
            )),
            watch_streams_current: register!(IntGauge::new(
                "watch_streams_current",
                "Active watch streams"
            )),
            watch_events_sent_total: register!(IntCounter::new(
                "watch_events_sent_total",
                "Watch events sent"
            )),
            tokio_tasks_alive: register!(IntGauge::new(
                "tokio_tasks_alive",
                "Live tokio tasks (the Rust runtime's equivalent of go_goroutines)"
            )),
            disk_write_bytes_total: register!(IntCounter::new(
                "disk_write_bytes_total",
                "Bytes written to disk"
            )),
            disk_read_bytes_total: register!(IntCounter::new(
                "disk_read_bytes_total",
                "Bytes read from disk"
            )),
            disk_fsync_duration_seconds: register!(Histogram::with_opts(histogram_opts(
                "disk_fsync_duration_seconds",
                "How long each fsync of the data directory took (the count is the fsyncs)"
            ))),
            network_bytes_sent_total: register!(counter(
                "network_bytes_sent_total",
                "Bytes sent",
                &["peer_id"]
            )),
            network_bytes_received_total: register!(counter(
                "network_bytes_received_total",
                "Bytes received",
                &["peer_id"]
            )),
            snapshot_last_index: register!(IntGauge::new(
                "raft_snapshot_index",
                "Log index of the last snapshot"
            )),
            raft_last_log_index: register!(IntGauge::new(
                "raft_last_log_index",
                "Last log index on this node"
            )),
            io_seen: Mutex::default(),
            registry,
        };
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            metrics.registry.register(Box::new(process)).expect("a unique collector");
        }
        metrics
    }

    /// Records one acquisition attempt's outcome.
    pub fn acquired(&self, path: &str, status: &str, seconds: f64, contended: bool) {
        let label = self.paths.label(path);
        self.lock_acquire_total.with_label_values(&[status, &label]).inc();
        self.lock_acquire_duration_seconds.with_label_values(&[status, &label]).observe(seconds);
        let mut contention =
            self.contention.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (contended_count, total) = contention.entry(label.clone()).or_default();
        *total += 1;
        *contended_count += u64::from(contended);
        self.lock_contention_ratio
            .with_label_values(&[&label])
            .set(*contended_count as f64 / *total as f64);
    }

    /// Adds what the OS says this process read and wrote since the last call.
    pub fn observe_disk(&self, read_bytes: u64, write_bytes: u64) {
        let mut seen = self.io_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.disk_read_bytes_total.inc_by(read_bytes.saturating_sub(seen.0));
        self.disk_write_bytes_total.inc_by(write_bytes.saturating_sub(seen.1));
        *seen = (read_bytes.max(seen.0), write_bytes.max(seen.1));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer).expect("metrics encode");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// This process's disk I/O from `/proc/self/io` (`read_bytes`, `write_bytes`).
pub fn process_disk_io() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
    };
    Some((field("read_bytes:")?, field("write_bytes:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_labels_are_cut_and_bounded() {
        let labels = PathLabels::new(2, 3);
        assert_eq!(labels.label("/db/users/schema-migration"), "/db/users");
        assert_eq!(labels.label("/db"), "/db");
        assert_eq!(labels.label("/cache/warmup/x/y"), "/cache/warmup");
        assert_eq!(labels.label("/db/users/other"), "/db/users");
        assert_eq!(labels.label("/queue/a"), OVERFLOW_LABEL);
    }

    #[test]
    fn a_hundred_thousand_paths_do_not_make_a_hundred_thousand_series() {
        let metrics = Metrics::new(2, 1_000);
        for n in 0..100_000 {
            metrics.acquired(&format!("/tenant-{n}/job"), "success", 0.001, false);
        }
        let series =
            metrics.render().lines().filter(|l| l.starts_with("lock_acquire_total{")).count();
        assert_eq!(series, 1_001, "1,000 label values and the overflow");
    }

    #[test]
    fn every_metric_of_the_specification_is_exposed() {
        let metrics = Metrics::new(2, 100);
        metrics.acquired("/db/users", "success", 0.002, true);
        metrics.lock_release_total.with_label_values(&["/db/users"]).inc();
        metrics.lock_held_duration_seconds.with_label_values(&["/db/users"]).observe(1.0);
        metrics.lock_waiters_current.with_label_values(&["/db/users"]).set(0);
        metrics.lease_revoke_total.with_label_values(&["revoked"]).inc();
        metrics.lease_renew_total.with_label_values(&["success"]).inc();
        metrics.raft_proposals_total.with_label_values(&["success"]).inc();
        metrics.raft_proposal_duration_seconds.with_label_values(&["success"]).observe(0.001);
        metrics.raft_replication_lag_entries.with_label_values(&["2"]).set(0);
        metrics.client_requests_total.with_label_values(&["Lock", "OK"]).inc();
        metrics.client_request_duration_seconds.with_label_values(&["Lock"]).observe(0.001);
        metrics.network_bytes_sent_total.with_label_values(&["2"]).inc();
        metrics.network_bytes_received_total.with_label_values(&["2"]).inc();
        let text = metrics.render();
        for (name, kind) in SPECIFIED {
            assert!(text.contains(&format!("# TYPE {name} {kind}")), "{name} ({kind}) missing");
        }
    }

    /// The specification's table: every metric and its type.
    const SPECIFIED: [(&str, &str); 33] = [
        ("lock_acquire_total", "counter"),
        ("lock_acquire_duration_seconds", "histogram"),
        ("lock_release_total", "counter"),
        ("lock_held_duration_seconds", "histogram"),
        ("lock_waiters_current", "gauge"),
        ("lock_contention_ratio", "gauge"),
        ("locks_active_total", "gauge"),
        ("lease_grant_total", "counter"),
        ("lease_revoke_total", "counter"),
        ("lease_expire_total", "counter"),
        ("lease_renew_total", "counter"),
        ("lease_ttl_seconds", "histogram"),
        ("leases_active_total", "gauge"),
        ("raft_is_leader", "gauge"),
        ("raft_term", "gauge"),
        ("raft_committed_index", "gauge"),
        ("raft_applied_index", "gauge"),
        ("raft_leader_changes_total", "counter"),
        ("raft_proposals_total", "counter"),
        ("raft_proposal_duration_seconds", "histogram"),
        ("raft_replication_lag_entries", "gauge"),
        ("client_connections_current", "gauge"),
        ("client_requests_total", "counter"),
        ("client_request_duration_seconds", "histogram"),
        ("watch_streams_current", "gauge"),
        ("watch_events_sent_total", "counter"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("tokio_tasks_alive", "gauge"),
        ("disk_write_bytes_total", "counter"),
        ("disk_read_bytes_total", "counter"),
        ("network_bytes_sent_total", "counter"),
        ("network_bytes_received_total", "counter"),
    ];
}
