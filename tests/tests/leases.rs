//! Leases: one that is no longer kept alive loses its locks (never before its TTL), and
//! the next waiter gets a higher token; one that is kept alive outlives its TTL.

use std::time::{Duration, Instant};

use lockmgr_client::{Error, proto as v1};
use lockmgr_tests::{Cluster, http_get};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_loses_its_locks_and_the_next_waiter_gets_a_higher_token() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();

    // A lease nobody keeps alive.
    let granted_at = Instant::now();
    let lapsing = client.grant_lease(Duration::from_secs(2)).await.unwrap().lease_id;
    let request = v1::LockRequest {
        path: "/job".into(),
        lease_id: lapsing,
        mode: 1,
        wait_timeout_ms: 0,
        holder_id: "lapsing".into(),
        request_id: 1,
        permits: 0,
    };
    let first = client.lock(request).await.unwrap();
    assert!(first.acquired);

    let session = client.session(Duration::from_secs(5)).await.unwrap();
    let next = session.lock("/job", Duration::from_secs(20)).await.unwrap();
    let waited = granted_at.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "the lock was taken from a live lease after {waited:?}"
    );
    assert!(next.fencing_token() > first.fencing_token);
    let gone = client.time_to_live(lapsing).await.expect_err("expired");
    assert_eq!(gone.code(), Some(Code::NotFound));
    let stale = client.validate_fence("/job", first.fencing_token).await.unwrap();
    assert!(!stale.valid);
    assert_eq!(stale.current_tokens, vec![next.fencing_token()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_lease_and_locks_past_the_ttl() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let session = client.session(Duration::from_secs(2)).await.unwrap();
    let guard = session.lock("/kept", Duration::from_secs(5)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!session.is_lost());
    assert!(client.validate_fence("/kept", guard.fencing_token()).await.unwrap().valid);
    let ttl = client.time_to_live(session.lease_id()).await.unwrap();
    assert!(ttl.remaining_ttl_ms > 0 && ttl.remaining_ttl_ms <= 2_000, "{ttl:?}");
    assert_eq!(ttl.held_paths, vec!["/kept".to_string()]);
    guard.unlock().await.unwrap();
    let lease_id = session.lease_id();
    session.close().await.unwrap();
    assert!(matches!(client.time_to_live(lease_id).await, Err(Error::Rpc(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_learns_it_is_lost_before_its_lease_could_be_given_away() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let session = cluster.client().session(Duration::from_secs(3)).await.unwrap();
    let _guard = session.lock("/quorum", Duration::from_secs(5)).await.unwrap();
    // Take the majority away: nobody can renew the lease, nobody can grant it either.
    let leader_index = cluster.index_of(leader);
    let other = (leader_index + 1) % 3;
    let cut_at = Instant::now();
    cluster.kill(leader_index);
    cluster.kill(other);
    tokio::time::timeout(Duration::from_secs(10), session.lost())
        .await
        .expect("the session notices");
    let noticed = cut_at.elapsed();
    assert!(noticed < Duration::from_secs(3), "noticed only after {noticed:?}, past the 3 s TTL");
    assert!(matches!(session.try_lock("/other").await, Err(Error::SessionLost(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_relays_keepalives_to_the_leader() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let follower = (cluster.index_of(leader) + 1) % 3;
    // This client knows only the follower: every call, the keepalive stream too, goes
    // through it.
    let client = cluster.client_of(follower);
    let session = client.session(Duration::from_secs(2)).await.unwrap();
    let guard = session.lock("/relayed", Duration::from_secs(5)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!session.is_lost(), "the lease was not kept alive through the follower");
    assert!(client.validate_fence("/relayed", guard.fencing_token()).await.unwrap().valid);
    guard.unlock().await.unwrap();
    // The follower served the stream (relaying it), rather than sending the client away.
    let (_, metrics) = http_get(&cluster.members[follower].metrics_address, "/metrics");
    assert!(
        metrics.contains("client_requests_total{method=\"KeepAlive\",status=\"OK\"}"),
        "{metrics}"
    );
}
