//! Backups and disaster recovery through the real binary, as an operator runs them:
//! `lockmgr snapshot save` from a 3-member cluster under load, `snapshot status`,
//! `snapshot restore` into a new 3-member cluster (every lease and lock with its token,
//! new tokens above the old ones), and `server --force-new-cluster` on the one member
//! left after two of three directories are destroyed.

use std::{
    collections::BTreeMap,
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lockmgr_client::{Session, proto as v1};
use lockmgr_tests::{Cluster, binary};

fn lockmgr(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("lockmgr runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "lockmgr failed ({:?}): {}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// Locks and unlocks paths under /load until told to stop.
async fn load(client: lockmgr_client::Client, id: usize, stop: Arc<AtomicBool>) {
    let Ok(session) = client.session(Duration::from_secs(30)).await else { return };
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let path = format!("/load/{id}/{}", round % 4);
        if let Ok(guard) = session.lock(&path, Duration::from_secs(5)).await {
            let _ = guard.unlock().await;
        }
    }
}

/// The holders of every path: path -> [(lease id, token)].
async fn table(client: &lockmgr_client::Client) -> BTreeMap<String, Vec<(i64, u64)>> {
    let mut table = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = client.list_locks("/", &page_token, 0).await.expect("a lock list");
        for lock in page.locks {
            let holders = lock.holders.iter().map(|h| (h.lease_id, h.fencing_token)).collect();
            table.insert(lock.path, holders);
        }
        if page.next_page_token.is_empty() {
            return table;
        }
        page_token = page.next_page_token;
    }
}

/// `snapshot restore` of `file` for every member of `new`, checking each answer; then a
/// second restore into a member's directory, which is refused.
fn restore_into(new: &Cluster, file_arg: &str, revision: u64) {
    let initial_cluster = new.initial_cluster();
    for member in &new.members {
        let restored = json(&lockmgr(&[
            "--output",
            "json",
            "snapshot",
            "restore",
            file_arg,
            "--node-id",
            &member.node_id.to_string(),
            "--data-dir",
            &member.data_dir.display().to_string(),
            "--client-address",
            &member.client_address,
            "--peer-address",
            &member.peer_address,
            "--initial-cluster",
            &initial_cluster,
        ]));
        assert_eq!(restored["revision"].as_u64(), Some(revision));
    }
    // A second restore into a directory that holds a member is refused.
    let again = lockmgr(&[
        "snapshot",
        "restore",
        file_arg,
        "--node-id",
        "1",
        "--data-dir",
        &new.members[0].data_dir.display().to_string(),
        "--initial-cluster",
        &initial_cluster,
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_into_a_new_cluster() {
    let mut old = Cluster::start(3, &[]);
    old.wait_for_leader(Duration::from_secs(30)).await;
    let client = old.client();
    let mut sessions: Vec<Session> = Vec::new();
    for _ in 0..3 {
        sessions.push(client.session(Duration::from_mins(2)).await.expect("a session"));
    }
    let mut held = BTreeMap::new();
    let mut guards = Vec::new();
    for i in 0..12 {
        let session = &sessions[i % sessions.len()];
        let path = format!("/held/{i}");
        let guard = session.lock(&path, Duration::from_secs(10)).await.expect("a lock");
        held.insert(path, (session.lease_id(), guard.fencing_token()));
        guards.push(guard);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> =
        (0..4).map(|id| tokio::spawn(load(old.client(), id, stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let file = old.root().join("backup.lkmb");
    let file_arg = file.display().to_string();
    let endpoints = old.endpoints().join(",");
    let saved = json(&lockmgr(&[
        "--endpoints",
        &endpoints,
        "--output",
        "json",
        "snapshot",
        "save",
        &file_arg,
    ]));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    let revision = saved["revision"].as_u64().expect("a revision");
    assert!(saved["locks"].as_u64().unwrap() >= 12, "{saved}");
    let status = json(&lockmgr(&["--output", "json", "snapshot", "status", &file_arg]));
    assert_eq!(status["sha256"], saved["sha256"]);
    assert_eq!(status["revision"], saved["revision"]);

    // A damaged file is refused by name.
    let mut damaged = std::fs::read(&file).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let damaged_file = old.root().join("damaged.lkmb");
    std::fs::write(&damaged_file, damaged).unwrap();
    let refused = lockmgr(&["snapshot", "status", &damaged_file.display().to_string()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SHA-256"), "{refused:?}");

    let mut new = Cluster::new(3, &[]);
    restore_into(&new, &file_arg, revision);
    for index in 0..3 {
        new.start_member(index, &[]);
    }
    new.wait_for_leader(Duration::from_secs(30)).await;
    let restored = new.client();
    let locks = table(&restored).await;
    for (path, (lease_id, token)) in &held {
        assert_eq!(locks.get(path), Some(&vec![(*lease_id, *token)]), "{path}: {locks:?}");
    }
    for (path, holders) in &locks {
        for (_, token) in holders {
            assert!(*token <= revision, "{path} holds token {token} above the backup's {revision}");
        }
    }
    for session in &sessions {
        let lease = restored.time_to_live(session.lease_id()).await.expect("the lease came along");
        assert!(lease.remaining_ttl_ms > 0);
        assert_eq!(lease.held_paths.len(), 4, "{lease:?}");
    }
    // The restored cluster's tokens go on from the backup's revision.
    let session = restored.session(Duration::from_secs(10)).await.expect("a session");
    let guard = session.lock("/after/restore", Duration::from_secs(10)).await.expect("a lock");
    assert!(guard.fencing_token() > revision);
    drop(guards);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_recovers_the_last_member() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let session = client.session(Duration::from_mins(2)).await.expect("a session");
    let guard = session.lock("/precious", Duration::from_secs(10)).await.expect("a lock");
    let token = guard.fencing_token();
    // Node 1 has applied everything (else it would not be the survivor to pick).
    let committed = client.status().await.unwrap().committed_index;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cluster.client_of(0).status().await.map_or(0, |s| s.applied_index) < committed {
        assert!(tokio::time::Instant::now() < deadline, "node 1 did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Kept (dropping it would unlock): the lock must outlive the cluster.
    let _guard = guard;
    for index in 0..3 {
        cluster.kill(index);
    }
    for index in 1..3 {
        std::fs::remove_dir_all(&cluster.members[index].data_dir).unwrap();
    }

    cluster.start_member(0, &["--force-new-cluster"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let survivor = cluster.client_of(0);
    loop {
        if survivor.status().await.is_ok_and(|status| status.leader_id == 1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader: {}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.members[0].log_tail().contains("forced a new one-member cluster"));
    let members = survivor.members().await.unwrap().members;
    assert_eq!(members.iter().map(|m| m.node_id).collect::<Vec<_>>(), vec![1]);
    let lock = survivor.get_lock("/precious").await.unwrap().lock.expect("the lock survived");
    assert_eq!(
        lock.holders.iter().map(|h| (h.lease_id, h.fencing_token)).collect::<Vec<_>>(),
        vec![(session.lease_id(), token)]
    );
    let fresh = survivor.session(Duration::from_secs(10)).await.expect("a session");
    let after = fresh.lock("/fresh", Duration::from_secs(10)).await.expect("a lock");
    assert!(after.fencing_token() > token);

    // The cluster grows again from the survivor.
    cluster.wipe_and_start_joining(1);
    let member = &cluster.members[1];
    let added = survivor
        .add_member(v1::AddMemberRequest {
            node_id: 2,
            peer_address: member.peer_address.clone(),
            client_address: member.client_address.clone(),
            learner_only: false,
        })
        .await
        .unwrap_or_else(|e| panic!("node 2 is added: {e}\n{}", cluster.logs()));
    assert_eq!(added.members.iter().filter(|m| !m.is_learner).count(), 2);
}

#[test]
fn force_new_cluster_on_an_empty_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("empty").display().to_string();
    let (code, output) = lockmgr_tests::refused_start(&[
        "--force-new-cluster",
        "--data-dir",
        &data_dir,
        "--metrics-address",
        "",
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("no Raft state"), "{output}");
    assert!(!std::path::Path::new(&data_dir).exists(), "the directory was not created");
}
