//! Liveness after healing: once the faults stop, a leader is elected, a lease can be
//! granted and revoked through every member, and every member applies the whole log,
//! all within a bound.

use std::time::Duration;

use lockmgr_proto::{
    Channels,
    v1::{LeaseGrantRequest, LeaseRevokeRequest, lease_service_client::LeaseServiceClient},
};

use lockmgr_verify::{checkers::Violation, now_us};

use crate::observe::Observer;

const NAME: &str = "liveness";

/// Simulated time the healed cluster has to serve again.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// Probes every member until each serves a grant and a revoke; returns how long it took.
pub async fn check(addresses: &[String], observer: &Observer) -> Result<Duration, Violation> {
    let start_us = now_us();
    let deadline_us = start_us + RECOVERY_BOUND.as_micros() as u64;
    let channels = Channels::new(Duration::from_secs(1));
    for address in addresses {
        loop {
            if serves(&channels, address).await {
                break;
            }
            if now_us() >= deadline_us {
                return Err(Violation::new(
                    NAME,
                    format!("{address} did not serve within {RECOVERY_BOUND:?} of healing"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Every member reaches the end of the applied log.
    loop {
        let (end, behind) = {
            let observations = observer.lock();
            let end = observations.machine.log.keys().next_back().copied().unwrap_or(0);
            let behind: Vec<(u64, u64)> = observations
                .latest
                .iter()
                .filter(|(_, (_, progress))| progress.applied < end)
                .map(|(node, (_, progress))| (*node, progress.applied))
                .collect();
            (end, behind)
        };
        if behind.is_empty() {
            return Ok(Duration::from_micros(now_us() - start_us));
        }
        if now_us() >= deadline_us {
            return Err(Violation::new(
                NAME,
                format!("members (node, applied) {behind:?} never applied the log's end {end}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn serves(channels: &Channels, address: &str) -> bool {
    let Ok(channel) = channels.get(address) else { return false };
    let mut leases = LeaseServiceClient::new(channel);
    let attempt = async {
        let lease = leases.grant(LeaseGrantRequest { ttl_ms: 5_000 }).await?.into_inner();
        leases.revoke(LeaseRevokeRequest { lease_id: lease.lease_id }).await?;
        Ok::<_, tonic::Status>(())
    };
    matches!(tokio::time::timeout(Duration::from_secs(3), attempt).await, Ok(Ok(())))
}
