//! A member whose data is wiped is removed, re-added, and catches up by snapshot (the
//! log it would need has been purged behind the snapshots).

use std::time::Duration;

use lockmgr_client::proto as v1;
use lockmgr_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_is_re_added_and_catches_up_by_snapshot() {
    // Snapshot often and keep no log behind a snapshot: a member that lost everything can
    // only catch up by receiving one.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("lockmgr.toml");
    std::fs::write(
        &config,
        "[raft]\nsnapshot_interval_entries = 20\nlog_entries_kept_after_snapshot = 0\n",
    )
    .unwrap();
    let mut cluster = Cluster::start(3, &["--config", config.to_str().unwrap()]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let session = client.session(Duration::from_secs(10)).await.unwrap();
    for round in 0..60 {
        session
            .lock(&format!("/snap/{}", round % 7), Duration::from_secs(5))
            .await
            .unwrap()
            .unlock()
            .await
            .unwrap();
    }
    let kept = session.lock("/snap/kept", Duration::from_secs(5)).await.unwrap();

    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let wiped = if leader == 3 { 1 } else { 2 };
    let member = &cluster.members[wiped];
    let (node_id, peer, address) =
        (member.node_id, member.peer_address.clone(), member.client_address.clone());
    client.remove_member(node_id).await.unwrap();
    cluster.wipe_and_start_joining(wiped);
    let request = v1::AddMemberRequest {
        node_id,
        peer_address: peer,
        client_address: address,
        learner_only: false,
    };
    let members = client.add_member(request).await.unwrap().members;
    assert!(
        members.iter().any(|m| m.node_id == node_id && !m.is_learner),
        "re-added as a voter: {members:?}"
    );

    let leader_status = client.status().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = cluster.client_of(wiped).status().await.unwrap();
        if status.applied_index >= leader_status.applied_index {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {node_id} did not catch up:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.snapshot_index > 0, "node {node_id} caught up without a snapshot: {status:?}");

    // Its state is the cluster's: a serializable read on it sees the held lock.
    let check =
        cluster.client_of(wiped).validate_fence("/snap/kept", kept.fencing_token()).await.unwrap();
    assert!(check.valid);
    kept.unlock().await.unwrap();
}
