//! Every bound the state machine enforces, with its default. All nodes of a cluster must
//! run with the same limits: they decide replies, and replies must be identical on every
//! replica.

use serde::{Deserialize, Serialize};

use crate::path::PathRules;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub path_bytes_max: usize,
    pub path_segments_max: usize,
    pub holder_id_bytes_max: usize,
    /// Paths with any state (holders, waiters or a lock-delay).
    pub locks_max: usize,
    pub waiters_per_path_max: usize,
    pub leases_max: usize,
    /// Paths a lease holds or waits for.
    pub locks_per_lease_max: usize,
    /// A granted TTL is clamped to `[lease_ttl_ms_min, lease_ttl_ms_max]`. The minimum
    /// must stay above the Raft election timeout.
    pub lease_ttl_ms_min: u64,
    pub lease_ttl_ms_max: u64,
    pub wait_timeout_ms_max: u64,
    /// Chubby's lock-delay: after a holder's lease expires, the path is not granted again
    /// for this long. 0 disables it. At most [`LOCK_DELAY_MS_CEILING`].
    pub lock_delay_ms: u64,
    /// How many recent request ids each lease remembers for exactly-once retries.
    pub request_window_per_lease: usize,
    pub checkpoint_batch_max: usize,
    /// The most permits a semaphore may have (each permit is a holder the path keeps).
    pub semaphore_permits_max: u32,
}

/// Chubby caps its lock-delay at one minute; so do we.
pub const LOCK_DELAY_MS_CEILING: u64 = 60_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            path_bytes_max: PathRules::DEFAULT.bytes_max,
            path_segments_max: PathRules::DEFAULT.segments_max,
            holder_id_bytes_max: 256,
            locks_max: 1_000_000,
            waiters_per_path_max: 1_024,
            leases_max: 1_000_000,
            locks_per_lease_max: 1_024,
            lease_ttl_ms_min: 2_000,
            lease_ttl_ms_max: 24 * 3_600_000,
            wait_timeout_ms_max: 3_600_000,
            lock_delay_ms: 0,
            request_window_per_lease: 64,
            checkpoint_batch_max: 10_000,
            semaphore_permits_max: 1_024,
        }
    }
}

/// A configuration the state machine cannot run with; names the offending setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid limit {name}: {rule}")]
pub struct LimitsError {
    pub name: &'static str,
    pub rule: String,
}

impl Limits {
    pub fn path_rules(&self) -> PathRules {
        PathRules { bytes_max: self.path_bytes_max, segments_max: self.path_segments_max }
    }

    /// Rejects settings that are zero where zero makes no sense, or beyond their ceiling.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let fail = |name, rule: String| Err(LimitsError { name, rule });
        let ceiling = PathRules::CEILING;
        if !(2..=ceiling.bytes_max).contains(&self.path_bytes_max) {
            return fail("path_bytes_max", format!("must be in 2..={}", ceiling.bytes_max));
        }
        if !(1..=ceiling.segments_max).contains(&self.path_segments_max) {
            return fail("path_segments_max", format!("must be in 1..={}", ceiling.segments_max));
        }
        for (name, value) in [
            ("holder_id_bytes_max", self.holder_id_bytes_max),
            ("locks_max", self.locks_max),
            ("waiters_per_path_max", self.waiters_per_path_max),
            ("leases_max", self.leases_max),
            ("locks_per_lease_max", self.locks_per_lease_max),
            ("request_window_per_lease", self.request_window_per_lease),
            ("checkpoint_batch_max", self.checkpoint_batch_max),
        ] {
            if value == 0 {
                return fail(name, "must be at least 1".into());
            }
        }
        if self.semaphore_permits_max == 0 {
            return fail("semaphore_permits_max", "must be at least 1".into());
        }
        if self.lease_ttl_ms_min == 0 || self.lease_ttl_ms_min > self.lease_ttl_ms_max {
            return fail(
                "lease_ttl_ms_min",
                "must be at least 1 and at most lease_ttl_ms_max".into(),
            );
        }
        if self.lock_delay_ms > LOCK_DELAY_MS_CEILING {
            return fail("lock_delay_ms", format!("must be at most {LOCK_DELAY_MS_CEILING}"));
        }
        Ok(())
    }

    /// The granted TTL for a requested one.
    pub fn clamp_ttl_ms(&self, requested_ttl_ms: u64) -> u64 {
        requested_ttl_ms.clamp(self.lease_ttl_ms_min, self.lease_ttl_ms_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let bad = Limits { leases_max: 0, ..Limits::default() };
        assert_eq!(bad.validate().unwrap_err().name, "leases_max");
        let bad = Limits { lock_delay_ms: 60_001, ..Limits::default() };
        assert_eq!(bad.validate().unwrap_err().name, "lock_delay_ms");
        let bad = Limits { lease_ttl_ms_min: 10, lease_ttl_ms_max: 5, ..Limits::default() };
        assert_eq!(bad.validate().unwrap_err().name, "lease_ttl_ms_min");
    }

    #[test]
    fn ttl_is_clamped() {
        let limits = Limits::default();
        assert_eq!(limits.clamp_ttl_ms(0), 2_000);
        assert_eq!(limits.clamp_ttl_ms(10_000), 10_000);
        assert_eq!(limits.clamp_ttl_ms(u64::MAX), 24 * 3_600_000);
    }
}
