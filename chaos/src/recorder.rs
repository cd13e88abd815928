//! When did each revision take effect? Real nodes have no apply tap, so a recorder
//! watches every workload path from revision 1, from one node after another (resuming
//! after the last revision it saw), and notes when it first received each revision. A
//! revision took effect before it was received, so these are upper bounds: sound for
//! settling timed-out requests and for bounding lease expiries, only looser than the
//! simulator's exact times.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lockmgr_proto::{
    Channels,
    v1::{WatchRequest, watch_service_client::WatchServiceClient},
};
use lockmgr_verify::now_us;

/// Each revision, and when it was first received (µs since the start).
pub type Receipts = Arc<Mutex<BTreeMap<u64, u64>>>;

pub async fn record(
    addresses: Vec<String>,
    receipts: Receipts,
    stop: Arc<AtomicBool>,
    gaps: Arc<Mutex<u64>>,
) {
    let channels = Channels::new(Duration::from_secs(1));
    let mut next = 1;
    let mut member = 0;
    while !stop.load(Ordering::SeqCst) {
        member = (member + 1) % addresses.len();
        let channel = channels.get(&addresses[member]).expect("valid addresses");
        let mut watch = WatchServiceClient::new(channel);
        let request = WatchRequest { path: "/sim".into(), prefix: true, start_revision: next };
        // A stream is left after a few seconds, so that a stalled member (paused, cut off)
        // delays receipts by no more than that.
        let listen = async {
            let mut stream = watch.watch(request).await.ok()?.into_inner();
            while let Ok(Some(response)) = stream.message().await {
                if response.compacted {
                    *gaps.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
                    next = response.compact_revision.max(next);
                    return None;
                }
                let at_us = now_us();
                let mut receipts =
                    receipts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for event in response.events {
                    receipts.entry(event.revision).or_insert(at_us);
                    next = next.max(event.revision + 1);
                }
            }
            None::<()>
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), listen).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
