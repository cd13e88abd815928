//! The server's own output as an operator meets it: a log file without colour codes, no
//! warning for a client that simply closed its connection, a bad `--log` filter refused,
//! and SIGHUP not taken for a stop.

use std::{process::Command, time::Duration};

use lockmgr_tests::{Cluster, free_port, refused_start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_has_no_colour_and_routine_disconnects_do_not_warn() {
    let mut cluster = Cluster::start(1, &["--log", "info"]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    // Ten clients that connect, ask, and close, as CLI calls do.
    for _ in 0..10 {
        let client = cluster.client();
        client.status().await.unwrap();
        drop(client);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = cluster.members[0].log_tail();
    assert!(log.contains("Client connected"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log}");
    assert!(
        !log.lines().any(|line| line.contains("WARN") && line.contains("Client disconnected")),
        "a routine close logged as a warning:\n{log}"
    );
}

#[test]
fn a_bad_log_filter_is_a_usage_error() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("d").display().to_string();
    let client = format!("127.0.0.1:{}", free_port());
    let peer = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let (code, output) = refused_start(&[
        "--log",
        "lockmgr=notalevel",
        "--data-dir",
        &data_dir,
        "--client-address",
        &client,
        "--peer-address",
        &peer,
        "--metrics-address",
        &metrics,
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("invalid setting log.filter"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_does_not_stop_the_server() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let pid = cluster.members[0].pid().unwrap();
    let sent = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(sent.success());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(cluster.members[0].is_running(), "SIGHUP stopped the server: {}", cluster.logs());
    cluster.client().status().await.expect("it still answers");
    assert!(cluster.members[0].log_tail().contains("SIGHUP received"));
}

/// SIGHUP reads the config file's `[log] filter` again: a valid one replaces the running
/// filter (a DEBUG event appears), an invalid one is refused and the old one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_log_filter_from_the_config_file() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("lockmgr.toml");
    std::fs::write(&file, "[log]\nfilter = \"info\"\n").unwrap();
    let file_arg = file.display().to_string();
    let mut cluster = Cluster::start(1, &["--config", &file_arg]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let hangup = |pid: u32| {
        let sent = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
        assert!(sent.success());
    };
    let pid = cluster.members[0].pid().unwrap();
    let routine_close = |cluster: &Cluster| {
        let client = cluster.client();
        async move {
            client.status().await.unwrap();
        }
    };
    routine_close(&cluster).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!cluster.members[0].log_tail().contains("DEBUG"), "{}", cluster.logs());

    std::fs::write(&file, "[log]\nfilter = \"info,lockmgr_server=debug\"\n").unwrap();
    hangup(pid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster.members[0].log_tail().contains("log filter reloaded") {
        assert!(tokio::time::Instant::now() < deadline, "no reload: {}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    routine_close(&cluster).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster.members[0].log_tail().contains("DEBUG") {
        assert!(tokio::time::Instant::now() < deadline, "no DEBUG line: {}", cluster.logs());
        routine_close(&cluster).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    std::fs::write(&file, "[log]\nfilter = \"lockmgr=notalevel\"\n").unwrap();
    hangup(pid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster.members[0].log_tail().contains("the old one stays") {
        assert!(tokio::time::Instant::now() < deadline, "no refusal: {}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.members[0].is_running());
    cluster.client().status().await.expect("it still answers");
}

/// The JSON line of the first event with `message` in `log`.
fn event(log: &str, message: &str) -> Option<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == message)
}

/// One name per concept across events (`holder_id` for whoever holds or waits), values
/// for people (`reason` a lower-case word, `new_leader` a node id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_events_name_one_concept_one_way() {
    let mut cluster = Cluster::start(3, &["--log-format", "json"]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let holder = client.session(Duration::from_secs(10)).await.unwrap();
    let guard = holder.lock("/logs/x", Duration::from_secs(5)).await.unwrap();
    let waiter = client.session(Duration::from_secs(10)).await.unwrap();
    assert!(waiter.lock("/logs/x", Duration::from_millis(200)).await.is_err());
    guard.unlock().await.unwrap();
    let successor = cluster.members.iter().map(|m| m.node_id).find(|id| *id != leader).unwrap();
    client.transfer_leader(successor).await.unwrap();
    let old_leader = cluster.index_of(leader);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log = std::fs::read_to_string(cluster.root().join(format!("node-{leader}.log")))
            .unwrap_or_default();
        if ["Lock released", "Lost leadership"].iter().all(|m| event(&log, m).is_some()) {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            cluster.members[old_leader].log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let acquired = event(&log, "Lock acquired").expect("Lock acquired");
    let released = event(&log, "Lock released").unwrap();
    assert_eq!(released["fields"]["holder_id"], acquired["fields"]["holder_id"], "{released}");
    assert_eq!(released["fields"]["reason"], "released", "{released}");
    assert!(released["fields"].get("holder").is_none(), "{released}");
    let lost = event(&log, "Lost leadership").unwrap();
    assert_eq!(lost["fields"]["new_leader"], successor, "{lost}");
    // The wait timed out on whichever member served it.
    let timeout = cluster.members.iter().find_map(|m| {
        let log = std::fs::read_to_string(cluster.root().join(format!("node-{}.log", m.node_id)));
        event(&log.unwrap_or_default(), "Lock wait timeout")
    });
    let timeout = timeout.expect("a Lock wait timeout event");
    assert!(timeout["fields"]["holder_id"].is_string(), "{timeout}");
}
