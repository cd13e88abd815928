//! A real Prometheus (Debian's package) scrapes a 3-node cluster under a short workload
//! and loads the alerts: every alert rule evaluates without error, and every dashboard
//! panel query parses and returns data.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lockmgr_tests::{Cluster, KillOnDrop, free_port, http_get};
use serde_json::Value;

fn ops(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops").join(path)
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET on Prometheus' HTTP API; the JSON body.
fn api(address: &str, path: &str) -> Option<Value> {
    serde_json::from_str(&http_get(address, path).1).ok()
}

fn query(address: &str, expr: &str) -> Value {
    api(address, &format!("/api/v1/query?query={}", encode(expr))).unwrap_or(Value::Null)
}

/// Every PromQL expression of the dashboards.
fn panel_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for file in ["grafana/lock-manager-overview.json", "grafana/raft-cluster-health.json"] {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(ops(file)).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let title = format!(
                    "{} / {}",
                    dashboard["title"].as_str().unwrap(),
                    panel["title"].as_str().unwrap()
                );
                queries.push((title, target["expr"].as_str().unwrap().to_owned()));
            }
        }
    }
    queries
}

async fn workload(cluster: &Cluster) {
    let client = cluster.client();
    let holder = client.session(Duration::from_secs(5)).await.unwrap();
    let waiter = client.session(Duration::from_secs(5)).await.unwrap();
    for round in 0..20 {
        let path = format!("/db/users/{}", round % 3);
        let held = holder.lock(&path, Duration::from_secs(5)).await.unwrap();
        assert!(waiter.try_lock(&path).await.unwrap().is_none());
        let queued = {
            let waiter = waiter.clone();
            let path = path.clone();
            tokio::spawn(async move { waiter.lock(&path, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        held.unlock().await.unwrap();
        queued.await.unwrap().unwrap().unlock().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_loads_every_alert_and_answers_every_panel_query() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let targets: Vec<String> =
        cluster.members.iter().map(|m| format!("\"{}\"", m.metrics_address)).collect();
    let config = cluster.root().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: lock-manager\n    static_configs:\n      - targets: [{}]\n",
            ops("prometheus/alerts.yml").display(),
            targets.join(", ")
        ),
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", cluster.root().join("tsdb").display()))
        .arg(format!("--web.listen-address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's package; scripts/test.sh installs it)");
    let _prometheus = KillOnDrop(prometheus);

    // Prometheus is up and scraping every member before the workload starts.
    let deadline = Instant::now() + Duration::from_mins(1);
    while query(&address, "count(up{job=\"lock-manager\"} == 1)")["data"]["result"][0]["value"][1]
        != "3"
    {
        assert!(Instant::now() < deadline, "prometheus never scraped the three members");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    workload(&cluster).await;

    // Every alert rule loaded and evaluated cleanly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rules = api(&address, "/api/v1/rules").unwrap_or(Value::Null);
        let all: Vec<&Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .collect();
        let healthy = all.iter().filter(|r| r["health"] == "ok").count();
        if all.len() == 9 && healthy == 9 {
            break;
        }
        assert!(Instant::now() < deadline, "alert rules not all healthy: {rules}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every dashboard query parses and has data (rates need a few scrapes: wait for them).
    let deadline = Instant::now() + Duration::from_mins(1);
    for (panel, expr) in panel_queries() {
        loop {
            let answer = query(&address, &expr);
            assert_eq!(answer["status"], "success", "{panel}: {expr} -> {answer}");
            if answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                break;
            }
            assert!(Instant::now() < deadline, "{panel}: {expr} returned no data");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
