//! The README's commands, as written: `lockmgr server` with no arguments starts a working
//! single node (data in ./lockmgr-data, clients on 127.0.0.1:7070), and
//! `lockmgr lock /demo -- echo hi` prints `hi` and the fencing token.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lockmgr_tests::{KillOnDrop, binary};

#[test]
fn the_readme_single_node_command_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Command::new(binary())
        .arg("server")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = KillOnDrop(server);
    let deadline = Instant::now() + Duration::from_secs(30);
    let output = loop {
        let output =
            Command::new(binary()).args(["lock", "/demo", "--", "echo", "hi"]).output().unwrap();
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "lockmgr lock failed: {stderr}");
    assert_eq!(stdout.trim(), "hi");
    assert!(stderr.contains("acquired /demo (fencing token "), "{stderr}");
    assert!(dir.path().join("lockmgr-data").is_dir(), "data lives in ./lockmgr-data");
}
