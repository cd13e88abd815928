//! What a server process costs, from Linux's `/proc`: CPU time, resident memory, and
//! what it wrote (`/proc/<pid>/io`: bytes sent to the storage layer, write syscalls).

use std::time::Duration;

/// One process's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu: Duration,
    /// Resident set size now, and its peak so far (`VmHWM`), in bytes.
    pub rss: u64,
    pub peak_rss: u64,
    pub write_bytes: u64,
    pub write_syscalls: u64,
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
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        io.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Usage {
        cpu,
        rss: kib("VmRSS:"),
        peak_rss: kib("VmHWM:"),
        write_bytes: field("write_bytes:"),
        write_syscalls: field("syscw:"),
    }
}

/// The sum of every sample of `metric` (a counter, or a histogram's `_count`) in a
/// Prometheus text exposition.
pub fn metric_total(exposition: &str, metric: &str) -> u64 {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
