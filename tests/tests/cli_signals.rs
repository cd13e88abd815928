//! `lockmgr lock` as a supervisor: a signal to its PID reaches the command, the lock is
//! released at once (another client takes it long before the TTL) and the exit status is
//! the command's (128+n for a signal); a lost session stops the command's whole process
//! group, background jobs included, SIGKILL after the grace period for those that ignore
//! SIGTERM; `--no-command` holds the lock until signalled.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use lockmgr_tests::{Cluster, KillOnDrop, binary};

fn lockmgr(cluster: &Cluster) -> Command {
    let mut command = Command::new(binary());
    command.args(["--endpoints", &cluster.endpoints().join(",")]);
    command
}

/// Polls `condition` every 50 ms for up to `within`.
fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let mut status = None;
    wait_until(within, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap_or_else(|| panic!("lockmgr still running after {within:?}"))
}

fn send(signal: &str, pid: u32) {
    let sent = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
    assert!(sent.unwrap().success(), "kill -{signal} {pid}");
}

/// Whether a process with this pid exists (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

async fn one_node() -> Cluster {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_lockmgr_reaches_the_command_and_releases_the_lock_at_once() {
    let cluster = one_node().await;
    let dir = tempfile::tempdir().unwrap();
    for (signal, number) in [("TERM", 15), ("INT", 2), ("HUP", 1)] {
        let pid_file = dir.path().join(format!("{signal}.pid"));
        // The TTL is long: only an explicit release frees the lock in time.
        let holder = lockmgr(&cluster)
            .args(["lock", "/signals/job", "--ttl", "60s", "--"])
            .args(["sh", "-c", &format!("echo $$ > {}; exec sleep 120", pid_file.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut holder = KillOnDrop(holder);
        assert!(
            wait_until(Duration::from_secs(30), || read_pid(&pid_file).is_some()),
            "the command never started"
        );
        let command_pid = read_pid(&pid_file).unwrap();
        let signalled_at = Instant::now();
        send(signal, holder.0.id());
        let status = wait_exit(&mut holder.0, Duration::from_secs(20));
        assert_eq!(status.code(), Some(128 + number), "SIG{signal}: {status:?}");
        assert!(
            wait_until(Duration::from_secs(5), || !alive(command_pid)),
            "SIG{signal}: the command outlived lockmgr"
        );
        // Free now, not in 60 s.
        let next = lockmgr(&cluster)
            .args(["lock", "/signals/job", "--wait", "0", "--", "true"])
            .output()
            .unwrap();
        assert_eq!(
            next.status.code(),
            Some(0),
            "SIG{signal}: the lock was not released: {}",
            String::from_utf8_lossy(&next.stderr)
        );
        assert!(signalled_at.elapsed() < Duration::from_secs(40), "{:?}", signalled_at.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_handles_the_forwarded_signal_and_its_status_is_lockmgrs() {
    let cluster = one_node().await;
    let dir = tempfile::tempdir().unwrap();
    let (ready, caught) = (dir.path().join("ready"), dir.path().join("caught"));
    let script = format!(
        "trap 'echo INT > {caught}; exit 7' INT; touch {ready}; while :; do sleep 0.1; done",
        caught = caught.display(),
        ready = ready.display()
    );
    let holder = lockmgr(&cluster)
        .args(["lock", "/signals/trap", "--ttl", "60s", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    let mut holder = KillOnDrop(holder);
    assert!(wait_until(Duration::from_secs(30), || ready.exists()), "the command never started");
    send("INT", holder.0.id());
    let status = wait_exit(&mut holder.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(7), "{status:?}");
    assert_eq!(std::fs::read_to_string(&caught).unwrap().trim(), "INT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_stops_the_whole_process_group() {
    let mut cluster = one_node().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    // A background job that would write 15 s from now, long after the lock is free.
    let background = format!(
        "(sleep 15; touch {late}) & echo $! > {pid}; touch {ready}; wait",
        late = path("late"),
        pid = path("background.pid"),
        ready = path("ready")
    );
    // A group that ignores SIGTERM (the disposition is inherited by its sleeps): only
    // SIGKILL, after the grace period, stops it.
    let stubborn = format!(
        "trap '' TERM; echo $$ > {pid}; while :; do sleep 0.2; done",
        pid = path("stubborn.pid")
    );
    let spawn = |lock_path: &str, script: &str| {
        let child = lockmgr(&cluster)
            .args(["lock", lock_path, "--ttl", "3s", "--kill-grace", "2s", "--"])
            .args(["sh", "-c", script])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    };
    let mut first = spawn("/signals/background", &background);
    let mut second = spawn("/signals/stubborn", &stubborn);
    assert!(
        wait_until(Duration::from_secs(30), || {
            Path::new(&path("ready")).exists()
                && read_pid(Path::new(&path("stubborn.pid"))).is_some()
        }),
        "the commands never started"
    );
    let started = Instant::now();
    let background_pid = read_pid(Path::new(&path("background.pid"))).unwrap();
    let stubborn_pid = read_pid(Path::new(&path("stubborn.pid"))).unwrap();
    cluster.kill(0);

    for holder in [&mut first, &mut second] {
        let status = wait_exit(&mut holder.0, Duration::from_secs(30));
        assert_eq!(status.code(), Some(76), "{status:?}");
    }
    assert!(
        wait_until(Duration::from_secs(5), || !alive(background_pid) && !alive(stubborn_pid)),
        "the process groups outlived lockmgr: background {} stubborn {}",
        alive(background_pid),
        alive(stubborn_pid)
    );
    // Every writer of the pipe is gone now: reading to its end cannot block.
    let stderr = BufReader::new(second.0.stderr.take().unwrap());
    let said: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    assert!(said.iter().any(|line| line.contains("session lost")), "{said:?}");
    // Past the background job's 15 s: it never wrote.
    let quiet_until = Duration::from_secs(17);
    std::thread::sleep(quiet_until.saturating_sub(started.elapsed()));
    assert!(!Path::new(&path("late")).exists(), "the background job wrote after the lock was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_prints_the_token_and_holds_until_signalled() {
    let cluster = one_node().await;
    let holder = lockmgr(&cluster)
        .args(["lock", "/signals/held", "--ttl", "60s", "--no-command"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut holder = KillOnDrop(holder);
    let mut stdout = BufReader::new(holder.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let token: u64 = line.trim().parse().unwrap_or_else(|_| panic!("not a token: {line:?}"));
    assert!(token > 0);

    let busy = lockmgr(&cluster)
        .args(["lock", "/signals/held", "--wait", "0", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(75), "the lock is held");
    let check = lockmgr(&cluster)
        .args(["fence", "check", "/signals/held", &token.to_string()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));

    send("TERM", holder.0.id());
    let status = wait_exit(&mut holder.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
    let next = lockmgr(&cluster)
        .args(["lock", "/signals/held", "--wait", "0", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(next.status.code(), Some(0), "released at once");
}
