//! The CLI against endpoints that are dead, written as URLs, or go away mid-stream: a dead
//! endpoint fails within the dial time-out and says the connection was refused;
//! `http://host:port` works; a closed stdout is no panic; `watch` moves to another member
//! when its own stops, from the revision after the last event it showed.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use lockmgr_tests::{Cluster, KillOnDrop, binary, free_port};

#[test]
fn a_dead_endpoint_fails_within_the_dial_timeout_saying_why() {
    let dead = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = Command::new(binary())
        .args(["--endpoints", &dead, "--dial-timeout", "2s", "locks", "get", "/x"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("connection refused"), "{stderr}");
    // The old client retried for its whole 15 s budget; 2 s and start-up is well under 10.
    assert!(took < Duration::from_secs(10), "took {took:?}");

    let json = Command::new(binary())
        .args(["--endpoints", &dead, "--output", "json", "locks", "get", "/x"])
        .output()
        .unwrap();
    let error: serde_json::Value = serde_json::from_slice(&json.stderr).unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("connection refused"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_work_and_a_closed_stdout_is_no_panic() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    let url = format!("http://{}", cluster.members[0].client_address);
    let client = cluster.client();
    for _ in 0..50 {
        client.grant_lease(Duration::from_mins(1)).await.unwrap();
    }
    let output = Command::new(binary())
        .args(["--endpoints", &url, "lock", "/url", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ran");

    // `lockmgr lease list | true`, with the reader surely gone before the first write.
    for args in [&["lease", "list"][..], &["--output", "json", "lease", "list"]] {
        let mut child = Command::new(binary())
            .args(["--endpoints", &url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_ne!(output.status.code(), Some(101), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_moves_to_another_member_when_its_own_is_killed() {
    watch_moves_to_another_member_and_resumes_after_its_last_event(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_moves_to_another_member_when_its_own_shuts_down() {
    watch_moves_to_another_member_and_resumes_after_its_last_event(Stop::Terminate).await;
}

/// How the watch's member is stopped: `kill -9`, or SIGTERM (a clean shutdown, which
/// ends its watch streams as "compacted" at their next revision).
enum Stop {
    Kill,
    Terminate,
}

/// `lockmgr watch PREFIX --output json` on `endpoints`, and its stdout's lines as they come.
fn spawn_watch(endpoints: &[String], prefix: &str) -> (KillOnDrop, mpsc::Receiver<String>) {
    let watch = Command::new(binary())
        .args(["--endpoints", &endpoints.join(","), "--output", "json"])
        .args(["watch", prefix])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watch = KillOnDrop(watch);
    let (lines, events) = mpsc::channel();
    let stdout = BufReader::new(watch.0.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (watch, events)
}

async fn watch_moves_to_another_member_and_resumes_after_its_last_event(stop: Stop) {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    let (mut watch, events) = spawn_watch(&cluster.endpoints(), "/watched");
    let client = cluster.client();
    let session = client.session(Duration::from_secs(10)).await.unwrap();
    let next_event = |within: Duration| -> serde_json::Value {
        let line = events.recv_timeout(within).expect("an event");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    // Until the watch stream is open, events may be missed: lock until one shows.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        session
            .lock("/watched/before", Duration::from_secs(10))
            .await
            .unwrap()
            .unlock()
            .await
            .unwrap();
        if let Ok(line) = events.recv_timeout(Duration::from_secs(1)) {
            break serde_json::from_str::<serde_json::Value>(&line).unwrap();
        }
        assert!(Instant::now() < deadline, "the watch showed nothing");
    };
    assert_eq!(first["kind"], "acquired", "{first}");
    while events.recv_timeout(Duration::from_secs(2)).is_ok() {}

    // The watch streams from the first endpoint: stop that member.
    match stop {
        Stop::Kill => cluster.kill(0),
        Stop::Terminate => {
            let pid = cluster.members[0].pid().expect("running").to_string();
            assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        }
    }
    let mut revisions = Vec::new();
    let deadline = Instant::now() + Duration::from_mins(1);
    let released = loop {
        assert!(watch.0.try_wait().unwrap().is_none(), "watch exited when its member stopped");
        if session.lock("/watched/after", Duration::from_secs(10)).await.is_ok_and(|guard| {
            drop(guard);
            true
        }) {
            let event = next_event(Duration::from_secs(30));
            revisions.push(event["revision"].as_u64().unwrap());
            if event["path"] == "/watched/after" {
                break event;
            }
        }
        assert!(Instant::now() < deadline, "no event after the member stopped");
    };
    assert_eq!(released["path"], "/watched/after", "{released}");
    assert!(revisions.windows(2).all(|pair| pair[0] < pair[1]), "{revisions:?}");
}

/// A watch "from now" that has shown nothing yet still misses nothing when its member
/// stops: "now" is the revision it started at, not the moment it reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_watch_from_now_misses_nothing_across_a_failover() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_mins(1)).await;
    // The watch's own member is a follower, so the cluster takes writes at once after
    // it is killed, while the watch is still reconnecting.
    let follower = cluster.members.iter().position(|m| m.node_id != leader).unwrap();
    let first = cluster.members[follower].client_address.clone();
    let mut endpoints = vec![first.clone()];
    endpoints.extend(cluster.endpoints().into_iter().filter(|e| *e != first));
    let (mut watch, events) = spawn_watch(&endpoints, "/quiet");
    let client = cluster.client();
    let session = client.session(Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(follower);
    session.lock("/quiet/gap", Duration::from_secs(10)).await.unwrap().unlock().await.unwrap();
    let line = events.recv_timeout(Duration::from_secs(30)).expect("the event made in the gap");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (event["path"].as_str(), event["kind"].as_str()),
        (Some("/quiet/gap"), Some("acquired"))
    );
    assert!(watch.0.try_wait().unwrap().is_none());
}
