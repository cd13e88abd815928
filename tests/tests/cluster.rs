//! A 3-node cluster of real processes elects a leader and serves, through any member.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use lockmgr_client::proto as v1;
use lockmgr_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_serve_through_any_member() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let members = cluster.client().members().await.unwrap().members;
    assert_eq!(members.len(), 3);
    assert_eq!(members.iter().filter(|m| m.is_leader).count(), 1);
    assert!(members.iter().all(|m| !m.is_learner));

    // Every member takes writes (followers forward them to the leader).
    let mut tokens = Vec::new();
    for index in 0..3 {
        let session = cluster.client_of(index).session(Duration::from_secs(5)).await.unwrap();
        let guard =
            session.lock("/db/users/schema-migration", Duration::from_secs(5)).await.unwrap();
        tokens.push(guard.fencing_token());
        let check = cluster
            .client_of((index + 1) % 3)
            .validate_fence("/db/users/schema-migration", guard.fencing_token())
            .await
            .unwrap();
        assert!(check.valid, "a linearizable read on another member sees the grant");
        guard.unlock().await.unwrap();
        session.close().await.unwrap();
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens increase: {tokens:?}");

    // Every member saw the same history: watch from the first revision on each.
    let mut histories = Vec::new();
    for index in 0..3 {
        let mut stream = cluster.client_of(index).watch("/db", true, 1).await.unwrap();
        let mut history = Vec::new();
        while history.len() < 6 {
            let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(!message.compacted);
            history
                .extend(message.events.into_iter().map(|e| (e.revision, e.kind, e.fencing_token)));
        }
        histories.push(history);
    }
    assert_eq!(histories[0], histories[1]);
    assert_eq!(histories[0], histories[2]);
    let acquired: Vec<u64> = histories[0]
        .iter()
        .filter(|(_, kind, _)| *kind == i32::from(v1::EventKind::Acquired))
        .map(|(_, _, token)| *token)
        .collect();
    assert_eq!(acquired, tokens);
    let status = cluster.client().status().await.unwrap();
    assert_eq!(status.leader_id, leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_gets_the_lock_when_the_holder_releases() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let first = client.session(Duration::from_secs(5)).await.unwrap();
    let second = client.session(Duration::from_secs(5)).await.unwrap();
    let held = first.lock("/queue/consumer", Duration::from_secs(1)).await.unwrap();
    assert!(second.try_lock("/queue/consumer").await.unwrap().is_none(), "busy");
    let waiter = tokio::spawn(async move {
        second.lock("/queue/consumer", Duration::from_secs(20)).await.map(|g| g.fencing_token())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lock = client.get_lock("/queue/consumer").await.unwrap().lock.unwrap();
    assert_eq!(lock.waiters.len(), 1, "the second session queues");
    let token = held.fencing_token();
    held.unlock().await.unwrap();
    let next = waiter.await.unwrap().unwrap();
    assert!(next > token);
}

/// Regression: `Status` once read the Raft metrics twice, nested; openraft publishing
/// new metrics in between deadlocked the node. Status calls racing writes must all end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_calls_racing_writes_never_hang_a_node() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for _ in 0..8 {
        let (client, stop) = (cluster.client(), stop.clone());
        pollers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client.status().await.expect("status answers");
            }
        }));
    }
    let session = cluster.client().session(Duration::from_secs(5)).await.unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let guard = tokio::time::timeout(
            Duration::from_secs(10),
            session.lock("/busy", Duration::from_secs(5)),
        )
        .await
        .expect("a lock within 10 s: is the node hung?")
        .unwrap();
        guard.unlock().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for poller in pollers {
        tokio::time::timeout(Duration::from_secs(10), poller)
            .await
            .expect("status calls end")
            .unwrap();
    }
}
