//! A live cluster's `/metrics`, diffed against the specification's metric table
//! (`docs/observability.md`): every name with its type and label names. `/healthz` and
//! `/readyz` answer.

use std::{io::Write, time::Duration};

use lockmgr_tests::{Cluster, http_get as get};

/// The specification's table: name, type, label names.
const SPECIFIED: [(&str, &str, &[&str]); 33] = [
    ("lock_acquire_total", "counter", &["status", "lock_path"]),
    ("lock_acquire_duration_seconds", "histogram", &["status", "lock_path"]),
    ("lock_release_total", "counter", &["lock_path"]),
    ("lock_held_duration_seconds", "histogram", &["lock_path"]),
    ("lock_waiters_current", "gauge", &["lock_path"]),
    ("lock_contention_ratio", "gauge", &["lock_path"]),
    ("locks_active_total", "gauge", &[]),
    ("lease_grant_total", "counter", &[]),
    ("lease_revoke_total", "counter", &["reason"]),
    ("lease_expire_total", "counter", &[]),
    ("lease_renew_total", "counter", &["status"]),
    ("lease_ttl_seconds", "histogram", &[]),
    ("leases_active_total", "gauge", &[]),
    ("raft_is_leader", "gauge", &[]),
    ("raft_term", "gauge", &[]),
    ("raft_committed_index", "gauge", &[]),
    ("raft_applied_index", "gauge", &[]),
    ("raft_leader_changes_total", "counter", &[]),
    ("raft_proposals_total", "counter", &["status"]),
    ("raft_proposal_duration_seconds", "histogram", &["status"]),
    ("raft_replication_lag_entries", "gauge", &["follower_id"]),
    ("client_connections_current", "gauge", &[]),
    ("client_requests_total", "counter", &["method", "status"]),
    ("client_request_duration_seconds", "histogram", &["method"]),
    ("watch_streams_current", "gauge", &[]),
    ("watch_events_sent_total", "counter", &[]),
    ("process_cpu_seconds_total", "counter", &[]),
    ("process_resident_memory_bytes", "gauge", &[]),
    ("tokio_tasks_alive", "gauge", &[]),
    ("disk_write_bytes_total", "counter", &[]),
    ("disk_read_bytes_total", "counter", &[]),
    ("network_bytes_sent_total", "counter", &["peer_id"]),
    ("network_bytes_received_total", "counter", &["peer_id"]),
];

/// The label names of the first sample of `name` (histograms: of its `_count`).
fn label_names(text: &str, name: &str, kind: &str) -> Option<Vec<String>> {
    let sample = if kind == "histogram" { format!("{name}_count") } else { name.to_owned() };
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{sample}{{")) || l.starts_with(&format!("{sample} ")))?;
    let Some(labels) =
        line.split_once('{').and_then(|(_, rest)| rest.split_once('}')).map(|(l, _)| l)
    else {
        return Some(Vec::new());
    };
    Some(labels.split(',').map(|pair| pair.split('=').next().unwrap().to_owned()).collect())
}

/// The specification names two gauges `*_total`, which promtool's naming lint flags;
/// the specification's names are requirements, so these two findings are expected.
const SPECIFIED_GAUGES_NAMED_TOTAL: [&str; 2] = [
    "leases_active_total non-counter metrics should not have \"_total\" suffix",
    "locks_active_total non-counter metrics should not have \"_total\" suffix",
];

/// `promtool check metrics` finds no problem in the exposition but the expected two.
fn promtool_accepts(text: &str) {
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // promtool exits non-zero for lint findings too: judge by what it reports.
    let problems: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !SPECIFIED_GAUGES_NAMED_TOTAL.contains(line))
        .collect();
    assert!(problems.is_empty(), "promtool check metrics: {problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_specified_metric_is_served_with_its_type_and_labels() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let mut watch = client.watch("/", true, 0).await.unwrap();
    let session = client.session(Duration::from_secs(5)).await.unwrap();
    let other = client.session(Duration::from_secs(5)).await.unwrap();
    let held = session.lock("/db/users/schema-migration", Duration::from_secs(5)).await.unwrap();
    let waiter = tokio::spawn(async move {
        other.lock("/db/users/schema-migration", Duration::from_secs(10)).await.map(|g| (g, other))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.unlock().await.unwrap();
    let (granted, other) = waiter.await.unwrap().unwrap();
    granted.unlock().await.unwrap();
    other.close().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), futures_util::StreamExt::next(&mut watch))
        .await;

    let leader_metrics = &cluster.members[cluster.index_of(leader)].metrics_address;
    let (status, text) = get(leader_metrics, "/metrics");
    assert_eq!(status, 200);
    for (name, kind, labels) in SPECIFIED {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is not a {kind}:\n{text}"
        );
        let mut found =
            label_names(&text, name, kind).unwrap_or_else(|| panic!("{name} has no sample"));
        found.retain(|label| label != "le");
        let mut expected: Vec<String> = labels.iter().map(ToString::to_string).collect();
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "labels of {name}");
    }
    assert!(text.contains("raft_is_leader 1"));
    for member in &cluster.members {
        promtool_accepts(&get(&member.metrics_address, "/metrics").1);
    }
    assert!(
        text.contains("lock_acquire_total{lock_path=\"/db/users\",status=\"success\"} 2"),
        "{text}"
    );
    for member in &cluster.members {
        assert_eq!(get(&member.metrics_address, "/healthz").0, 200);
        assert_eq!(get(&member.metrics_address, "/readyz").0, 200);
    }
    session.close().await.unwrap();
}
