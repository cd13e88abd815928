//! What the CLI prints: with `--output json` one object per answer (errors too, on
//! stderr), enum values without proto prefixes, `fencing_token` as the token's one name;
//! the default holder id names the real host; a clamped TTL is reported; and the
//! operator's tools: `lease keep-alive`, `endpoint health|status` (a dead endpoint shown
//! as unhealthy), `completion`, `--version`, `--help`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lockmgr_tests::{Cluster, KillOnDrop, binary, free_port};
use serde_json::Value;

fn lockmgr(cluster: &Cluster) -> Command {
    let mut command = Command::new(binary());
    command.args(["--endpoints", &cluster.endpoints().join(","), "--output", "json"]);
    command
}

fn json(command: &mut Command) -> Value {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_one_object_per_answer() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;

    let members = json(lockmgr(&cluster).args(["cluster", "members"]));
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1), "{members}");

    let holder = lockmgr(&cluster)
        .args(["lock", "/output/held", "--no-command"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut holder = KillOnDrop(holder);
    let mut line = String::new();
    BufReader::new(holder.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let acquired: Value = serde_json::from_str(&line).unwrap();
    let token = acquired["fencing_token"].as_u64().expect("fencing_token");

    let lock = json(lockmgr(&cluster).args(["locks", "get", "/output/held"]));
    let holder_info = &lock["holders"][0];
    assert_eq!(holder_info["mode"], "exclusive", "{lock}");
    assert_eq!(holder_info["fencing_token"].as_u64(), Some(token), "{lock}");
    let host = nix_hostname();
    let holder_id = holder_info["holder_id"].as_str().unwrap();
    assert!(holder_id.starts_with(&format!("{host}-")), "{holder_id} does not name {host}");

    let fence = lockmgr(&cluster)
        .args(["fence", "check", "/output/held", &token.to_string()])
        .output()
        .unwrap();
    let fence: Value = serde_json::from_slice(&fence.stdout).unwrap();
    assert_eq!(fence["fencing_token"].as_u64(), Some(token), "{fence}");
    assert_eq!(fence["current"], true, "{fence}");

    let free = json(lockmgr(&cluster).args(["locks", "get", "/output/free"]));
    assert_eq!(free["holders"], serde_json::json!([]), "{free}");

    // Errors are JSON too, on stderr.
    let error = lockmgr(&cluster).args(["lease", "revoke", "987654"]).output().unwrap();
    assert_eq!(error.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&error.stderr)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&error.stderr)));
    assert_eq!(error["error"]["reason"], "lease_not_found", "{error}");

    // A TTL below the cluster's minimum is clamped, and said so.
    let granted = Command::new(binary())
        .args(["--endpoints", &cluster.endpoints().join(","), "lease", "grant", "--ttl", "1ms"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&granted.stderr);
    assert!(granted.status.success(), "{stderr}");
    assert!(stderr.contains("granted a TTL of"), "{stderr}");
}

/// The host name as the kernel has it (what `hostname` prints).
fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_keep_alive_outlives_the_ttl_and_ends_on_a_signal() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    let granted = json(lockmgr(&cluster).args(["lease", "grant", "--ttl", "3s"]));
    let lease_id = granted["lease_id"].as_i64().unwrap().to_string();
    let keeper = lockmgr(&cluster)
        .args(["lease", "keep-alive", &lease_id])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut keeper = KillOnDrop(keeper);
    // Twice the TTL later, the lease is still there.
    std::thread::sleep(Duration::from_secs(6));
    json(lockmgr(&cluster).args(["lease", "ttl", &lease_id]));
    let sent = Command::new("kill").args(["-TERM", &keeper.0.id().to_string()]).status();
    assert!(sent.unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = keeper.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "keep-alive ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_status_shows_every_endpoint_dead_ones_too() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    let dead = format!("127.0.0.1:{}", free_port());
    let mut endpoints = cluster.endpoints();
    endpoints.push(dead.clone());
    let endpoints = endpoints.join(",");
    let status = Command::new(binary())
        .args(["--endpoints", &endpoints, "--output", "json", "endpoint", "status"])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let rows = status["endpoints"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{status}");
    let dead_row = rows.iter().find(|row| row["endpoint"] == dead.as_str()).unwrap();
    assert_eq!(dead_row["healthy"], false, "{dead_row}");
    assert!(dead_row["error"].as_str().unwrap().contains("connection refused"), "{dead_row}");
    let leaders = rows.iter().filter(|row| row["is_leader"] == true).count();
    assert_eq!(leaders, 1, "{status}");

    let health = Command::new(binary())
        .args(["--endpoints", &endpoints, "endpoint", "health"])
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1), "a dead endpoint is unhealthy");
    let text = String::from_utf8_lossy(&health.stdout);
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");
    assert!(text.contains(&format!("{dead} is unhealthy")), "{text}");

    // --cluster: the membership's members, from one endpoint.
    let first = cluster.members[0].client_address.clone();
    let health = Command::new(binary())
        .args(["--endpoints", &first, "--output", "json", "endpoint", "health", "--cluster"])
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(0), "{}", String::from_utf8_lossy(&health.stderr));
    let health: Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(health["endpoints"].as_array().map(Vec::len), Some(3), "{health}");
}

#[test]
fn completion_version_and_help() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(binary()).args(["completion", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("keep-alive"), "{shell}");
    }
    let version = Command::new(binary()).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(version.starts_with("lockmgr ") && version.contains(" ("), "{version}");

    let server = Command::new(binary()).args(["server", "--help"]).output().unwrap();
    let server = String::from_utf8_lossy(&server.stdout);
    assert!(!server.contains("--endpoints") && !server.contains("--dial-timeout"), "{server}");
    let lock = Command::new(binary()).args(["lock", "--help"]).output().unwrap();
    let lock = String::from_utf8_lossy(&lock.stdout);
    for flag in ["--kill-grace", "--no-command", "--dial-timeout", "--command-timeout"] {
        assert!(lock.contains(flag), "{flag} missing from lock --help");
    }
}

/// With `--output json`, bad arguments are a JSON error too (exit 2), not clap's text.
#[test]
fn usage_errors_are_json_with_output_json() {
    let output = std::process::Command::new(lockmgr_tests::binary())
        .args(["--output", "json", "lock", "--wait", "soon", "/x", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error: serde_json::Value = serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stderr}"));
    assert_eq!(error["error"]["reason"], "usage", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("soon"), "{error}");
}
