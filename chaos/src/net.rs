//! The test hosts' network: one Linux network namespace per node and one for the clients,
//! each with a veth pair to a bridge that lives in a namespace of its own, so nothing is
//! added to the machine's own namespace. Addresses are in 10.77.0.0/24, only inside those
//! namespaces. Partitions are iptables rules in the receiving node's namespace, loss is
//! iptables' `statistic` match, a slow link is tc (netem where the kernel has it, else a
//! token bucket). Everything named `lmc-*` is deleted on drop, and before a run starts.

use std::process::Command;

const PREFIX: &str = "lmc-";
const SWITCH: &str = "lmc-sw";
pub const CLIENTS: &str = "lmc-cl";
pub const CLIENT_IP: &str = "10.77.0.100";

pub fn node_ns(slot: usize) -> String {
    format!("{PREFIX}n{slot}")
}

/// Slot `slot`'s address (slots count from 0).
pub fn node_ip(slot: usize) -> String {
    format!("10.77.0.{}", 11 + slot)
}

/// Runs a command to completion: its stdout, or an error naming it and what it printed.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    finished(program, args, Command::new(program).args(args).output())
}

/// [`run`] without blocking the runtime's thread.
pub async fn run_async(program: &str, args: &[&str]) -> Result<String, String> {
    finished(program, args, tokio::process::Command::new(program).args(args).output().await)
}

fn finished(
    program: &str,
    args: &[&str],
    output: std::io::Result<std::process::Output>,
) -> Result<String, String> {
    let command = format!("{program} {}", args.join(" "));
    let output = output.map_err(|e| format!("{command}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("{command}: {}: {}", output.status, stderr.trim_end()))
    }
}

/// The namespaces of one run; torn down when dropped.
#[derive(Debug)]
pub struct Network(());

impl Network {
    /// Creates the switch, `slots` node hosts and the client host.
    pub fn create(slots: usize) -> Result<Network, String> {
        teardown();
        let network = Network(());
        run("ip", &["netns", "add", SWITCH])?;
        run("ip", &["-n", SWITCH, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", SWITCH, "link", "set", "br0", "up"])?;
        for slot in 0..slots {
            host(&node_ns(slot), &node_ip(slot), &format!("vn{slot}"))?;
        }
        host(CLIENTS, CLIENT_IP, "vcl")?;
        Ok(network)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        teardown();
    }
}

fn host(ns: &str, ip: &str, port: &str) -> Result<(), String> {
    run("ip", &["netns", "add", ns])?;
    run(
        "ip",
        &[
            "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns",
            SWITCH,
        ],
    )?;
    run("ip", &["-n", SWITCH, "link", "set", port, "master", "br0", "up"])?;
    run("ip", &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
    run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Kills whatever still runs in our namespaces and deletes them (also a previous run's).
pub fn teardown() {
    let Ok(list) = run("ip", &["netns", "list"]) else { return };
    for ns in list.lines().filter_map(|line| line.split_whitespace().next()) {
        if !ns.starts_with(PREFIX) {
            continue;
        }
        if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
            for pid in pids.split_whitespace() {
                if pid.parse::<i32>().is_ok_and(|pid| pid as u32 != std::process::id()) {
                    let _ = run("kill", &["-9", pid]);
                }
            }
        }
        let _ = run("ip", &["netns", "del", ns]);
    }
}

/// Moves this thread (and the threads it starts after) into the client host's namespace.
pub fn enter_clients() -> Result<(), String> {
    let file = std::fs::File::open(format!("/run/netns/{CLIENTS}"))
        .map_err(|e| format!("/run/netns/{CLIENTS}: {e}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering {CLIENTS}: {e}"))
}

async fn in_ns(slot: usize, args: &[&str]) -> Result<String, String> {
    let ns = node_ns(slot);
    let mut all = vec!["netns", "exec", &ns];
    all.extend_from_slice(args);
    run_async("ip", &all).await
}

/// `to` no longer receives anything from `from` (clients still reach both).
pub async fn block(from: usize, to: usize) -> Result<(), String> {
    in_ns(to, &["iptables", "-A", "INPUT", "-s", &node_ip(from), "-j", "DROP"]).await.map(drop)
}

/// `slot` drops a share of every packet it receives.
pub async fn lose(slot: usize, probability: f64) -> Result<(), String> {
    let p = format!("{probability:.2}");
    in_ns(
        slot,
        &[
            "iptables",
            "-A",
            "INPUT",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &p,
            "-j",
            "DROP",
        ],
    )
    .await
    .map(drop)
}

/// `slot`'s link gets slow: netem delay where the kernel has it, else a token bucket
/// whose queue delays bursts. Says which.
pub async fn slow(slot: usize) -> Result<&'static str, String> {
    let netem = ["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "150ms", "100ms"];
    if in_ns(slot, &netem).await.is_ok() {
        return Ok("netem delay 150ms +/- 100ms");
    }
    let tbf = [
        "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "256kbit", "burst", "4kb",
        "latency", "400ms",
    ];
    in_ns(slot, &tbf).await.map(|_| "tbf 256kbit, queue up to 400ms (no netem in this kernel)")
}

/// Undoes every partition, loss and slow link on `slot`.
pub async fn heal(slot: usize) -> Result<(), String> {
    in_ns(slot, &["iptables", "-F", "INPUT"]).await?;
    // No qdisc to delete is fine.
    let _ = in_ns(slot, &["tc", "qdisc", "del", "dev", "eth0", "root"]).await;
    Ok(())
}
