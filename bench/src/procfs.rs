//! What a server process costs, from Linux's `/proc`: CPU time and resident memory.

use std::time::Duration;

/// One process's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu: Duration,
    /// Resident set size now, and its peak so far (`VmHWM`), in bytes.
    pub rss: u64,
    pub peak_rss: u64,
}

/// The process's usage, or zeros if it is gone.
pub fn usage(pid: u32) -> Usage {
    let ticks_per_second = 100; // USER_HZ, 100 on every Linux this runs on
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) start at state.
            let after = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = after.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(Duration::from_millis((utime + stime) * 1_000 / ticks_per_second))
        })
        .unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Usage { cpu, rss: kib("VmRSS:"), peak_rss: kib("VmHWM:") }
}
