//! Membership changes that cannot wedge a cluster, and members that know whose data
//! they hold: `cluster add` of an unreachable member, a removed member, a data directory
//! started as another node, cluster or a blank joiner, a bad address.

use std::time::Duration;

use lockmgr_client::{Error, proto as v1};
use lockmgr_proto::{
    error_detail,
    v1::{ErrorReason, lock_service_client::LockServiceClient},
};
use lockmgr_tests::{Cluster, free_port, http_get, refused_start};
use tonic::Code;

fn reason(error: &Error) -> (Option<Code>, i32) {
    match error {
        Error::Rpc(status) => (Some(status.code()), error_detail(status).map_or(0, |d| d.reason)),
        other => panic!("expected an answer from the cluster, got {other}"),
    }
}

/// A config file in `dir` with `text`, as `--config` arguments.
fn config_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("lockmgr.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_member_is_never_promoted_and_can_always_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&dir, "[server]\nmember_catch_up_timeout_ms = 2000\n");
    let mut cluster = Cluster::start(1, &["--config", &config]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let dead = format!("127.0.0.1:{}", free_port());
    let add = v1::AddMemberRequest {
        node_id: 8,
        peer_address: dead.clone(),
        client_address: dead,
        learner_only: false,
    };
    let refused = tokio::time::timeout(Duration::from_secs(30), client.add_member(add.clone()))
        .await
        .expect("cluster add of a dead member answers within its catch-up time-out")
        .expect_err("a member that never answered is not promoted");
    assert_eq!(
        reason(&refused),
        (Some(Code::FailedPrecondition), ErrorReason::MemberNotCaughtUp as i32),
        "{refused}"
    );
    assert!(refused.to_string().contains("never answered"), "{refused}");

    // The cluster still writes: the dead member is a learner, outside every quorum.
    let session = client.session(Duration::from_secs(10)).await.unwrap();
    let lock = session.lock("/membership/after-add", Duration::from_secs(5)).await.unwrap();
    lock.unlock().await.unwrap();
    let members = client.members().await.unwrap().members;
    assert!(members.iter().any(|m| m.node_id == 8 && m.is_learner), "{members:?}");
    let (status, body) = http_get(&cluster.members[0].metrics_address, "/readyz");
    assert_eq!((status, body.trim()), (200, "ready"));

    // A second try fails the same way rather than promoting it; removal always works.
    let again = client.add_member(add).await.expect_err("still unreachable");
    assert_eq!(reason(&again).1, ErrorReason::MemberNotCaughtUp as i32, "{again}");
    let members = client.remove_member(8).await.unwrap().members;
    assert!(!members.iter().any(|m| m.node_id == 8), "{members:?}");
    let lock = session.lock("/membership/after-remove", Duration::from_secs(5)).await.unwrap();
    lock.unlock().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_stops_campaigning_and_says_it_was_removed() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let removed = cluster.members.iter().map(|m| m.node_id).find(|id| *id != leader).unwrap();
    let index = cluster.index_of(removed);
    let client = cluster.client();
    let left = client.remove_member(removed).await.unwrap().members;
    assert!(!left.iter().any(|m| m.node_id == removed), "{left:?}");

    let own = cluster.client_of(index);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = own.status().await.unwrap();
        if status.removed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never learnt of its removal: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It campaigns no more: its term stands still.
    let term = own.status().await.unwrap().header.unwrap().raft_term;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = own.status().await.unwrap().header.unwrap().raft_term;
    assert_eq!(term, later, "a removed member kept raising its term");
    let (status, body) = http_get(&cluster.members[index].metrics_address, "/readyz");
    assert_eq!((status, body.trim()), (503, "removed from the cluster"));
    let address = format!("http://{}", cluster.members[index].client_address);
    let mut raw = LockServiceClient::connect(address).await.unwrap();
    let request = v1::GetLockRequest { path: "/membership/any".into(), consistency: 0 };
    let refused = raw.get_lock(request).await.expect_err("a removed member serves nothing");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let detail = error_detail(&refused).expect("a detail");
    assert_eq!(detail.reason, ErrorReason::MemberRemoved as i32, "{refused:?}");
    assert!(cluster.members[index].log_tail().contains("removed from the cluster"));

    // The two left still serve.
    let session = client.session(Duration::from_secs(10)).await.unwrap();
    session.lock("/membership/two-left", Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_serves_only_the_node_and_cluster_it_was_made_for() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster.kill(0);
    let member = &cluster.members[0];
    let data_dir = member.data_dir.display().to_string();
    let addresses = [
        "--client-address",
        &member.client_address,
        "--peer-address",
        &member.peer_address,
        "--metrics-address",
        &member.metrics_address,
    ];
    let with = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = ["--data-dir", &data_dir].map(String::from).to_vec();
        args.extend(addresses.iter().map(ToString::to_string));
        args.extend(extra.iter().map(ToString::to_string));
        args
    };
    for (extra, says) in [
        (&["--node-id", "2"][..], "holds node 1 of cluster 1, not node 2 of cluster 1"),
        (&["--cluster-id", "9"][..], "not node 1 of cluster 9"),
        (&["--join"][..], "founded cluster 1"),
    ] {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, output) = refused_start(&args);
        assert_eq!(code, Some(2), "{extra:?}: {output}");
        assert!(output.contains(says), "{extra:?}: {output}");
    }
    // Its own ids still start it.
    cluster.restart(0);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
}

#[test]
fn a_bad_address_is_refused_before_the_data_directory_is_made() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("never-made");
    let data_dir_arg = data_dir.display().to_string();
    for (flag, value) in [
        ("--client-address", "localhost:7070:1"),
        ("--peer-address", "not-an-address"),
        ("--metrics-address", "127.0.0.1"),
    ] {
        let (code, output) = refused_start(&["--data-dir", &data_dir_arg, flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {output}");
        assert!(output.contains("is not an IP:PORT socket address"), "{flag}: {output}");
        assert!(!data_dir.exists(), "{flag} {value}: the data directory was made");
    }
}
