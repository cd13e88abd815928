//! Lease safety: a lease is expired no earlier than its TTL after the last keepalive a
//! client had acknowledged (measured from when that keepalive was sent, since the leader
//! reset the deadline after it arrived) or after it was granted, in real (simulated) time.
//! The nodes' clocks drift, but within the bound the servers are configured to absorb
//! (`clock_drift_max_ppm`), so the bound is exact.

use std::collections::BTreeMap;

use lockmgr_core::{Event, LeaseEndReason};

use super::{Violation, state_machine_safety::LogRecord};
use crate::history::History;

const NAME: &str = "lease-safety";

/// With `dump`, a violating lease's story is printed: its log entries and keepalives.
pub fn check(log: &BTreeMap<u64, LogRecord>, history: &History, dump: bool) -> Vec<Violation> {
    let mut violations = Vec::new();
    // Each lease's latest checkpoint so far: (index, applied at, remaining).
    let mut checkpoints: BTreeMap<i64, (u64, u64, Option<u64>)> = BTreeMap::new();
    for (index, record) in log {
        for event in &record.applied.events {
            if let Event::LeaseCheckpointed { lease_id, remaining_ttl_ms } = event {
                checkpoints.insert(lease_id.0, (*index, record.applied_us, *remaining_ttl_ms));
            }
        }
        for event in &record.applied.events {
            let Event::LeaseEnded { lease_id, reason: LeaseEndReason::Expired } = event else {
                continue;
            };
            let Some(lease) = history.leases.get(&lease_id.0) else { continue };
            let promised_us = lease.promised_us();
            if record.applied_us < promised_us && dump {
                println!(
                    "lease {lease_id}: keepalives sent (and acknowledged) at {:?}",
                    lease.keepalive_sent_us
                );
                for (index, record) in log {
                    let about = record.applied.events.iter().any(|event| match event {
                        Event::LeaseGranted { lease_id: id, .. }
                        | Event::LeaseEnded { lease_id: id, .. }
                        | Event::LeaseCheckpointed { lease_id: id, .. } => id == lease_id,
                        _ => false,
                    });
                    if about {
                        println!(
                            "  index {index} applied at {} by node {}: {:?}",
                            record.applied_us, record.node, record.command
                        );
                    }
                }
            }
            if record.applied_us < promised_us {
                violations.push(Violation::new(
                    NAME,
                    format!(
                        "index {index}: lease {lease_id} (TTL {} ms) expired at {:.3}s, before {:.3}s (last checkpoint: {:?})",
                        lease.ttl_ms,
                        record.applied_us as f64 / 1e6,
                        promised_us as f64 / 1e6,
                        checkpoints.get(&lease_id.0)
                    ),
                ));
            }
        }
    }
    violations
}
