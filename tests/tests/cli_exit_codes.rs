//! The exit statuses of `lockmgr`, as the README's table lists them: the command's own,
//! 128+n for a command ended by signal n, 127 and 126 for a command that cannot be found
//! or run, 75 for busy whatever `--wait`, and `fence check`'s 0 current, 1 not current,
//! 2 unable to tell.

use std::{process::Command, time::Duration};

use lockmgr_tests::{Cluster, KillOnDrop, binary, free_port};

fn lockmgr(cluster: &Cluster) -> Command {
    let mut command = Command::new(binary());
    command.args(["--endpoints", &cluster.endpoints().join(",")]);
    command
}

fn code(command: &mut Command) -> Option<i32> {
    let output = command.output().unwrap();
    output.status.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_exits_as_a_shell_would() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    let lock = |args: &[&str]| code(lockmgr(&cluster).arg("lock").args(args));

    assert_eq!(lock(&["/exit/a", "--", "sh", "-c", "exit 3"]), Some(3));
    assert_eq!(lock(&["/exit/a", "--", "sh", "-c", "kill -9 $$"]), Some(137));
    assert_eq!(lock(&["/exit/a", "--", "sh", "-c", "kill -TERM $$"]), Some(143));
    assert_eq!(lock(&["/exit/a", "--", "/no/such/command"]), Some(127));
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("script");
    std::fs::write(&not_executable, "#!/bin/sh\necho hi\n").unwrap();
    assert_eq!(lock(&["/exit/a", "--", &not_executable.display().to_string()]), Some(126));
    // The lock was released every time.
    assert_eq!(lock(&["/exit/a", "--wait", "0", "--", "true"]), Some(0));

    let holder = lockmgr(&cluster).args(["lock", "/exit/busy", "--no-command"]).spawn().unwrap();
    let _holder = KillOnDrop(holder);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while lock(&["/exit/busy", "--wait", "0", "--", "true"]) != Some(75) {
        assert!(std::time::Instant::now() < deadline, "the holder never took the lock");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lock(&["/exit/busy", "--wait", "1s", "--", "true"]), Some(75), "--wait 1s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_check_tells_current_from_not_current_from_unknown() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    let holder = lockmgr(&cluster)
        .args(["lock", "/exit/fence", "--no-command"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder = KillOnDrop(holder);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let token: u64 = line.trim().parse().unwrap();
    let check = |token: u64| {
        code(lockmgr(&cluster).args(["fence", "check", "/exit/fence", &token.to_string()]))
    };
    assert_eq!(check(token), Some(0));
    assert_eq!(check(token + 1000), Some(1));
    let dead = format!("127.0.0.1:{}", free_port());
    let unknown = code(Command::new(binary()).args([
        "--endpoints",
        &dead,
        "fence",
        "check",
        "/exit/fence",
        &token.to_string(),
    ]));
    assert_eq!(unknown, Some(2), "an unreachable cluster is not 'not current'");
}

/// A session lost while `lockmgr lock` still waits in the queue is "session lost" (76),
/// as while the command runs: not a generic failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lost_while_waiting_exits_76() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    let client = cluster.client();
    let holder = client.session(Duration::from_secs(30)).await.unwrap();
    let _guard = holder.lock("/exit/queue", Duration::from_secs(5)).await.unwrap();
    let waiter = lockmgr(&cluster)
        .args(["lock", "/exit/queue", "--wait", "1m", "--", "true"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut waiter = KillOnDrop(waiter);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let waiting_lease = loop {
        let lock = client.get_lock("/exit/queue").await.unwrap().lock.unwrap();
        if let Some(waiter) = lock.waiters.first() {
            break waiter.lease_id;
        }
        assert!(std::time::Instant::now() < deadline, "the CLI never queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    client.revoke_lease(waiting_lease).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = waiter.0.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the CLI kept waiting on a revoked lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut waiter.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("session lost"), "{stderr}");
}
