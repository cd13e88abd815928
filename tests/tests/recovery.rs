//! kill -9 of the leader in the middle of a workload loses no acknowledged acquire or
//! release, and fencing tokens keep increasing across the restart.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use lockmgr_client::proto as v1;
use lockmgr_tests::Cluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ack {
    Acquired,
    Released,
}

type Acks = Arc<Mutex<Vec<(Ack, String, i64, u64)>>>;

async fn worker(client: lockmgr_client::Client, id: usize, stop: Arc<AtomicBool>, acks: Acks) {
    let path = format!("/work/{}", id % 2);
    let mut session = None;
    while !stop.load(Ordering::Relaxed) {
        // A session outlives a failover (10 s TTL); if one is lost anyway, open another.
        let live = match session.take() {
            Some(live) if !lockmgr_client::Session::is_lost(&live) => live,
            _ => match client.session(Duration::from_secs(10)).await {
                Ok(fresh) => fresh,
                Err(_) => continue,
            },
        };
        let session = &*session.insert(live);
        let Ok(guard) = session.lock(&path, Duration::from_secs(10)).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let token = guard.fencing_token();
        acks.lock().unwrap().push((Ack::Acquired, path.clone(), session.lease_id(), token));
        tokio::time::sleep(Duration::from_millis(5)).await;
        if guard.unlock().await.is_ok() {
            acks.lock().unwrap().push((Ack::Released, path.clone(), session.lease_id(), token));
        }
    }
}

/// Every event of a node's history up to `revision`, from a watch replayed from 1.
async fn history(
    cluster: &Cluster,
    index: usize,
    revision: u64,
) -> BTreeSet<(Ack, String, i64, u64)> {
    let mut stream = cluster.client_of(index).watch("/", true, 1).await.expect("a watch");
    let mut events = BTreeSet::new();
    let mut seen = 0;
    while seen < revision {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("events keep coming")
            .expect("the stream stays open")
            .expect("no error");
        assert!(!message.compacted, "node {} compacted its history", index + 1);
        for event in message.events {
            seen = event.revision;
            let kind = match v1::EventKind::try_from(event.kind) {
                Ok(v1::EventKind::Acquired) => Ack::Acquired,
                Ok(v1::EventKind::Released) => Ack::Released,
                _ => continue,
            };
            events.insert((kind, event.path, event.lease_id, event.fencing_token));
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_workload_loses_no_acknowledged_operation() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Acks = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|id| tokio::spawn(worker(cluster.client(), id, stop.clone(), acks.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let killed = cluster.index_of(leader);
    cluster.kill(killed);
    let before_kill = acks.lock().unwrap().len();
    let max_token_before = acks.lock().unwrap().iter().map(|a| a.3).max().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart(killed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    assert!(before_kill > 10, "the workload ran before the kill ({before_kill} acks)");
    assert!(
        acks.len() > before_kill + 10,
        "and after it ({} acks in all):\n{}",
        acks.len(),
        cluster.logs()
    );

    // Tokens: unique, increasing per path in acknowledgement order, higher after the kill.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (kind, path, _, token) in acks.iter().filter(|a| a.0 == Ack::Acquired) {
        let previous = last.insert(path, *token).unwrap_or(0);
        assert!(*token > previous, "{kind:?} {path} token {token} after {previous}");
    }
    let after: Vec<u64> = acks[before_kill..].iter().map(|a| a.3).collect();
    assert!(after.iter().filter(|t| **t > max_token_before).count() > 0);

    // Every acknowledged acquire and release is in every node's history.
    // The leader's revision covers every acknowledged event (a follower's may lag).
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let leader_status = cluster.client_of(cluster.index_of(leader)).status().await.unwrap();
    let revision = leader_status.header.unwrap().revision;
    for index in 0..3 {
        let history = history(&cluster, index, revision).await;
        for ack in &acks {
            assert!(history.contains(ack), "node {} lost acknowledged {ack:?}", index + 1);
        }
    }
}
