//! The watchers: each watches a path or every path on a random member, from now or
//! resuming after the last revision it saw, and records what each stream showed.

use std::{sync::Arc, time::Duration};

use lockmgr_proto::v1::{
    EventKind, ObserveRequest, WatchRequest, election_service_client::ElectionServiceClient,
    watch_service_client::WatchServiceClient,
};
use rand::{RngExt, SeedableRng, rngs::SmallRng};

use super::{Shared, path_name, path_permits};
use crate::{history::WatchRecord, now_us};

/// Runs `future` for at most `limit`. Unlike `tokio::time::timeout`, the clock is asked
/// once: madsim registers a new timer every time a pending sleep is polled, and a watch
/// stream's time-out is polled for every message it receives.
async fn within<T>(limit: Duration, future: impl Future<Output = T>) {
    let (expired, expiry) = tokio::sync::oneshot::channel::<()>();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        let _ = expired.send(());
    });
    tokio::select! {
        _ = future => timer.abort(),
        _ = expiry => {}
    }
}

/// Watchers per run: each watches a path or every path, from now or resuming after the
/// last revision it saw, on a random member, for a few seconds at a time.
pub const WATCHERS: usize = 4;

pub async fn watcher(shared: Arc<Shared>, watcher: usize) {
    let mut rng = SmallRng::seed_from_u64(shared.shape.seed ^ 0x3a7c_4000 ^ watcher as u64);
    let mut resume_from = 0;
    while now_us() < shared.stop_us {
        let prefix = rng.random_bool(0.3);
        let path = rng.random_range(0..shared.shape.paths);
        let target = if prefix {
            // A prefix is a path (no trailing '/'); it covers the paths under it.
            "/sim".to_string()
        } else {
            path_name(path)
        };
        // Some streams of a lock path are its election's `Observe`.
        let observe =
            !prefix && path_permits(path, shared.shape.paths).is_none() && rng.random_bool(0.3);
        // Resume (as a client that lost its stream would) or start from now.
        let start_revision = if rng.random_bool(0.5) { resume_from } else { 0 };
        let mut record = WatchRecord {
            watcher,
            target: target.clone(),
            prefix,
            start_revision,
            events: Vec::new(),
            compacted: false,
            observe,
        };
        let length = Duration::from_millis(rng.random_range(1_000..8_000));
        if observe {
            let channel = shared.channel(&mut rng);
            within(length, observe_into(channel, &mut record)).await;
            if let Some((revision, ..)) = record.events.last() {
                resume_from = revision + 1;
            }
            shared.history().watches.push(record);
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
            continue;
        }
        let mut watch = WatchServiceClient::new(shared.channel(&mut rng));
        let request = WatchRequest { path: target, prefix, start_revision };
        let listen = async {
            let mut stream = watch.watch(request).await.ok()?.into_inner();
            while let Ok(Some(response)) = stream.message().await {
                if response.compacted {
                    record.compacted = true;
                    return None;
                }
                for event in response.events {
                    record.events.push((event.revision, event.path, event.kind, event.lease_id));
                }
            }
            None::<()>
        };
        within(length, listen).await;
        if let Some((revision, ..)) = record.events.last() {
            resume_from = revision + 1;
        } else if record.compacted {
            resume_from = 0;
        }
        shared.history().watches.push(record);
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..500))).await;
    }
}

/// Follows an election's `Observe` stream into `record` (see [`WatchRecord::observe`]).
async fn observe_into(channel: tonic::transport::Channel, record: &mut WatchRecord) {
    let mut elections = ElectionServiceClient::new(channel);
    let request =
        ObserveRequest { name: record.target.clone(), start_revision: record.start_revision };
    let Ok(stream) = elections.observe(request).await else { return };
    let mut stream = stream.into_inner();
    let mut first = record.start_revision == 0;
    while let Ok(Some(change)) = stream.message().await {
        if change.compacted {
            record.compacted = true;
            return;
        }
        if std::mem::take(&mut first) {
            record.start_revision = change.revision + 1;
            continue;
        }
        let (kind, lease) = match &change.leader {
            None => (EventKind::Released, 0),
            Some(leader) if leader.fencing_token == change.revision => {
                (EventKind::Acquired, leader.lease_id)
            }
            Some(leader) => (EventKind::Proclaimed, leader.lease_id),
        };
        record.events.push((change.revision, record.target.clone(), kind as i32, lease));
    }
}
