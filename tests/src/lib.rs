//! A harness for black-box tests: real `lockmgr server` processes on loopback ports,
//! each with its own data directory, that a test can kill (`-9`), restart, or wipe.
//! Every process is killed when the harness is dropped, also when a test fails.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use lockmgr_client::{Client, ClientConfig};

/// The `lockmgr` binary of this workspace, built once if it is not there yet. It is not
/// rebuilt when stale: `scripts/test.sh` builds it before the tests (so should you, with
/// `cargo build -p lockmgr-cli`, after changing the server).
pub fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's own path");
            // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
            let mut profile_dir = exe.parent().expect("the executable's directory");
            if profile_dir.ends_with("deps") {
                profile_dir = profile_dir.parent().expect("target/<profile>");
            }
            let binary = profile_dir.join("lockmgr");
            if !binary.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "lockmgr-cli", "--bin", "lockmgr"])
                    .status()
                    .expect("cargo runs");
                assert!(status.success(), "building lockmgr failed");
            }
            binary
        })
        .clone()
}

/// A child process killed (and reaped) when dropped, also when a test fails.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over HTTP/1.0 on `address`: the status code and the body (0 and an empty
/// body if nothing answered).
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return (0, String::new());
    };
    let mut response = String::new();
    let sent = write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if sent.is_err() || stream.read_to_string(&mut response).is_err() {
        return (0, String::new());
    }
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// A free loopback port below the kernel's ephemeral range (32768 and up), so that no
/// outgoing connection can take it between now and the server binding it. Each test
/// process starts at its own offset.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = (std::process::id() % 500) * 24;
    loop {
        let port =
            20_000 + (offset + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 12_000;
        let port = u16::try_from(port).expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[derive(Debug)]
pub struct Member {
    pub node_id: u64,
    pub client_address: String,
    pub peer_address: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_address: String,
    pub data_dir: PathBuf,
    process: Option<Child>,
    log: PathBuf,
}

impl Member {
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// The exit status, once the process has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.process.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// The end of this member's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A cluster of real processes.
#[derive(Debug)]
pub struct Cluster {
    pub members: Vec<Member>,
    root: tempfile::TempDir,
    extra_args: Vec<String>,
}

impl Cluster {
    /// Starts `size` founding members with `extra_args` passed to each server.
    pub fn start(size: usize, extra_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::new(size, extra_args);
        for index in 0..size {
            cluster.spawn(index, false, &[]);
        }
        cluster
    }

    /// `size` founding members' addresses and directories, none started
    /// ([`Cluster::start_member`] starts one).
    pub fn new(size: usize, extra_args: &[&str]) -> Cluster {
        let root = tempfile::tempdir().expect("a temporary directory");
        let members: Vec<Member> = (1..=size as u64)
            .map(|node_id| Member {
                node_id,
                client_address: format!("127.0.0.1:{}", free_port()),
                peer_address: format!("127.0.0.1:{}", free_port()),
                metrics_address: format!("127.0.0.1:{}", free_port()),
                data_dir: root.path().join(format!("node-{node_id}")),
                process: None,
                log: root.path().join(format!("node-{node_id}.log")),
            })
            .collect();
        Cluster { members, root, extra_args: extra_args.iter().map(ToString::to_string).collect() }
    }

    /// Starts a member as a founding member, with `once` added to its arguments this time.
    pub fn start_member(&mut self, index: usize, once: &[&str]) {
        self.kill(index);
        self.spawn(index, false, once);
    }

    /// `ID=PEER/CLIENT,...` of every member, as `--initial-cluster` takes it.
    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}/{}", m.node_id, m.peer_address, m.client_address))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, index: usize, join: bool, once: &[&str]) {
        let initial_cluster = self.initial_cluster();
        let member = &mut self.members[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("a log file");
        let mut command = Command::new(binary());
        command
            .arg("server")
            .args(["--node-id", &member.node_id.to_string()])
            .args(["--data-dir", &member.data_dir.display().to_string()])
            .args(["--client-address", &member.client_address])
            .args(["--peer-address", &member.peer_address])
            .args(["--metrics-address", &member.metrics_address]);
        if !self.extra_args.iter().any(|arg| arg == "--log" || arg == "--config") {
            command.args(["--log", "info,openraft=warn,fjall=warn,lsm_tree=warn"]);
        }
        if join {
            command.arg("--join");
        } else {
            command.args(["--initial-cluster", &initial_cluster]);
        }
        command.args(&self.extra_args).args(once);
        let child = command
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("lockmgr starts");
        member.process = Some(child);
    }

    /// `kill -9` of a member.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed member again on its data directory.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        self.spawn(index, false, &[]);
    }

    /// Kills a member, wipes its data, and starts it empty, waiting to be added.
    pub fn wipe_and_start_joining(&mut self, index: usize) {
        self.kill(index);
        let _ = std::fs::remove_dir_all(&self.members[index].data_dir);
        self.spawn(index, true, &[]);
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_address.clone()).collect()
    }

    /// A client that knows every member.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.endpoints())).expect("a client")
    }

    /// A client of one member only.
    pub fn client_of(&self, index: usize) -> Client {
        let mut config = ClientConfig::new([self.members[index].client_address.clone()]);
        config.retry_budget = Duration::from_secs(2);
        Client::new(config).expect("a client")
    }

    /// Waits until some member reports a leader that every running member agrees on.
    pub async fn wait_for_leader(&mut self, within: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut leaders = Vec::new();
            for index in 0..self.members.len() {
                if !self.members[index].is_running() {
                    continue;
                }
                if let Ok(status) = self.client_of(index).status().await {
                    leaders.push(status.leader_id);
                }
            }
            let agreed =
                leaders.first().copied().filter(|l| *l != 0 && leaders.iter().all(|x| x == l));
            if let Some(leader) = agreed {
                return leader;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader within {within:?}: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Index of a member by node id.
    pub fn index_of(&self, node_id: u64) -> usize {
        self.members.iter().position(|m| m.node_id == node_id).expect("a member with that id")
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Every member's log tail.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- node {} ---\n{}", m.node_id, m.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}

/// Runs `lockmgr server ARGS` expecting it to refuse to start: its exit code and output.
pub fn refused_start(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(binary())
        .arg("server")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "lockmgr server {args:?} started rather than refusing: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}
