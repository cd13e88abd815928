//! The README's 3-node recipe, as written: its `sh` block is read from README.md and run
//! line by line (`IC=...`, three `lockmgr server ... &`, `lockmgr ... cluster members`),
//! each `127.0.0.1:PORT` moved to a free port and the data directories in a temporary
//! directory; then a lock works on the cluster it built.

use std::{
    collections::HashMap,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lockmgr_tests::{KillOnDrop, binary, free_port};

/// The lines of the first `sh` block after the heading `### A 3-node cluster`.
fn recipe() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme.split("### A 3-node cluster").nth(1).expect("the 3-node section");
    let block = section.split("```sh\n").nth(1).expect("an sh block");
    let block = block.split("```").next().expect("the block's end");
    block.lines().map(str::to_owned).filter(|line| !line.trim().is_empty()).collect()
}

/// `line` with each loopback port replaced by its free stand-in.
fn with_free_ports(line: &str, ports: &mut HashMap<String, String>) -> String {
    line.split(['=', ' ', ',', '/'])
        .filter(|word| word.starts_with("127.0.0.1:"))
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
        .fold(line.to_owned(), |line, address| {
            let free = ports
                .entry(address.clone())
                .or_insert_with(|| format!("127.0.0.1:{}", free_port()))
                .clone();
            line.replace(&address, &free)
        })
}

#[test]
fn the_readme_three_node_recipe_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut ports = HashMap::new();
    let mut variables = HashMap::new();
    let mut servers = Vec::new();
    let mut client_lines = Vec::new();
    for line in recipe() {
        let line = with_free_ports(&line, &mut ports);
        if let Some((name, value)) = line.split_once('=').filter(|(name, _)| !name.contains(' ')) {
            variables.insert(format!("${name}"), value.to_owned());
            continue;
        }
        let words: Vec<String> = line
            .trim_end_matches('&')
            .split_whitespace()
            .map(|word| variables.get(word).cloned().unwrap_or_else(|| word.to_owned()))
            .collect();
        assert_eq!(words[0], "lockmgr", "a line the test does not know: {line}");
        if words[1] == "server" {
            assert!(line.trim_end().ends_with('&'), "servers run in the background: {line}");
            let log =
                std::fs::File::create(dir.path().join(format!("server-{}.log", servers.len())))
                    .unwrap();
            let server = Command::new(binary())
                .args(&words[1..])
                .current_dir(dir.path())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap();
            servers.push(KillOnDrop(server));
        } else {
            client_lines.push(words);
        }
    }
    assert_eq!(servers.len(), 3, "the recipe starts three members");
    let logs = || {
        (0..3)
            .map(|i| {
                std::fs::read_to_string(dir.path().join(format!("server-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    };

    // The client line, retried while the members start and elect a leader.
    let members = client_lines.last().expect("a client command").clone();
    let deadline = Instant::now() + Duration::from_mins(1);
    let listed = loop {
        let output = Command::new(binary()).args(&members[1..]).output().unwrap();
        if output.status.success() && String::from_utf8_lossy(&output.stdout).contains("leader") {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        for server in &mut servers {
            if let Some(status) = server.0.try_wait().unwrap() {
                panic!("a member exited ({status}):\n{}", logs());
            }
        }
        assert!(Instant::now() < deadline, "no leader:\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(listed.lines().count(), 3, "{listed}");

    let endpoints = members.iter().position(|w| w == "--endpoints").map(|i| members[i + 1].clone());
    let output = Command::new(binary())
        .args(["--endpoints", &endpoints.expect("the recipe names endpoints")])
        .args(["lock", "/readme/cluster", "--", "echo", "locked"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "locked");
    for server in &mut servers {
        assert!(server.0.try_wait().unwrap().is_none(), "a member exited:\n{}", logs());
    }
}
