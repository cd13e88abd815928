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
    assert!(output.contains("invalid setting --log"), "{output}");
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
