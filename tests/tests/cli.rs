//! The `lockmgr` command line against a real server: `lockmgr lock` runs a command with
//! the fencing token and stops it when the lock can no longer be counted on; SIGTERM
//! stops a server cleanly.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lockmgr_tests::{Cluster, binary};

fn lockmgr(cluster: &Cluster) -> Command {
    let mut command = Command::new(binary());
    command.args(["--endpoints", &cluster.endpoints().join(",")]);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_passes_the_token_and_kills_the_command_when_the_session_is_lost() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;

    let output = lockmgr(&cluster)
        .args([
            "lock",
            "/cli/job",
            "--",
            "sh",
            "-c",
            "echo token=$LOCKMGR_FENCING_TOKEN path=$LOCKMGR_LOCK_PATH",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("token=") && stdout.contains("path=/cli/job"), "{stdout}");
    let token: u64 = stdout["token=".len()..].split_whitespace().next().unwrap().parse().unwrap();
    assert!(token > 0);

    // The command's exit status is lockmgr's; the lock is free again afterwards.
    let status =
        lockmgr(&cluster).args(["lock", "/cli/job", "--", "sh", "-c", "exit 3"]).status().unwrap();
    assert_eq!(status.code(), Some(3));
    let free =
        lockmgr(&cluster).args(["--output", "json", "locks", "get", "/cli/job"]).output().unwrap();
    let free: serde_json::Value = serde_json::from_slice(&free.stdout).unwrap();
    assert_eq!(free["path"], "/cli/job", "{free}");
    assert_eq!(free["holders"], serde_json::json!([]), "{free}");

    // A long command loses its session when the cluster goes away: it is killed, and
    // lockmgr says so with exit status 76, before the 2 s lease could be given away.
    let mut holder = lockmgr(&cluster)
        .args(["lock", "/cli/long", "--ttl", "2s", "--", "sleep", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed_at = Instant::now();
    cluster.kill(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = holder.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "lockmgr lock kept running without its lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(76));
    assert!(
        killed_at.elapsed() < Duration::from_secs(2),
        "gave up only after {:?}",
        killed_at.elapsed()
    );
}

#[test]
fn sigterm_stops_a_server_cleanly() {
    let cluster = Cluster::start(1, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lockmgr(&cluster).args(["cluster", "status"]).output().unwrap().status.success() {
        assert!(Instant::now() < deadline, "the server did not start:\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = cluster.members[0].pid().expect("running");
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let mut cluster = cluster;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = cluster.members[0].try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", cluster.logs());
    assert!(cluster.members[0].log_tail().contains("shutting down"));
}
