//! What users build on locks, built in (issue 18), through the real binary: semaphores
//! over gRPC and the CLI, elections through the client library and `lockmgr elect`
//! (leader, listen, hand-over on SIGTERM), and the acquisition stream's states.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use lockmgr_client::{LockMode, LockState, proto as v1};
use lockmgr_proto::{
    error_detail,
    v1::{ErrorReason, lock_service_client::LockServiceClient},
};
use lockmgr_tests::{Cluster, KillOnDrop, binary};
use tonic::{Code, transport::Endpoint};

async fn one_node() -> Cluster {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_mins(1)).await;
    cluster
}

fn lockmgr(cluster: &Cluster) -> Command {
    let mut command = Command::new(binary());
    command.args(["--endpoints", &cluster.endpoints().join(",")]);
    command
}

fn reason(error: &lockmgr_client::Error) -> Option<ErrorReason> {
    error.reason()
}

#[tokio::test]
async fn a_semaphore_admits_its_permits_in_fifo_order_and_refuses_other_permits() {
    let cluster = one_node().await;
    let client = cluster.client();
    let wait = Duration::from_secs(20);
    let sessions = [
        client.session(Duration::from_secs(10)).await.unwrap(),
        client.session(Duration::from_secs(10)).await.unwrap(),
        client.session(Duration::from_secs(10)).await.unwrap(),
    ];
    let first = sessions[0].acquire_permit("/pool/workers", 2, wait).await.unwrap();
    let second = sessions[1].acquire_permit("/pool/workers", 2, wait).await.unwrap();
    assert!(second.fencing_token() > first.fencing_token(), "a token per holder");
    assert!(sessions[2].try_acquire_permit("/pool/workers", 2).await.unwrap().is_none());

    let third = {
        let session = sessions[2].clone();
        tokio::spawn(async move { session.acquire_permit("/pool/workers", 2, wait).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "the third waits while both permits are held");
    let info = client.get_lock("/pool/workers").await.unwrap().lock.unwrap();
    assert_eq!(info.holders.len(), 2);
    assert_eq!(info.waiters.len(), 1);
    assert!(
        info.holders.iter().all(|h| h.permits == 2 && h.mode == v1::LockMode::Semaphore as i32)
    );
    first.unlock().await.unwrap();
    let third = tokio::time::timeout(wait, third).await.unwrap().unwrap().unwrap();
    assert!(third.fencing_token() > second.fencing_token());

    // Other permits, or a plain lock, on the semaphore: refused by name.
    let other = client.session(Duration::from_secs(10)).await.unwrap();
    let error = other.acquire_permit("/pool/workers", 3, wait).await.unwrap_err();
    assert_eq!(error.code(), Some(Code::FailedPrecondition), "{error}");
    assert_eq!(reason(&error), Some(ErrorReason::PermitsMismatch));
    assert!(error.to_string().contains("a semaphore of 2 permits"), "{error}");
    let error = other.try_lock("/pool/workers").await.unwrap_err();
    assert_eq!(reason(&error), Some(ErrorReason::PermitsMismatch), "{error}");

    // Bad permits on the wire.
    let address = format!("http://{}", cluster.members[0].client_address);
    let mut locks =
        LockServiceClient::new(Endpoint::from_shared(address).unwrap().connect().await.unwrap());
    for (mode, permits) in [
        (v1::LockMode::Semaphore, 0),
        (v1::LockMode::Shared, 2),
        (v1::LockMode::Semaphore, 1_000_000),
    ] {
        let request = v1::LockRequest {
            path: "/pool/bad".into(),
            lease_id: other.lease_id(),
            mode: mode as i32,
            permits,
            ..v1::LockRequest::default()
        };
        let status = locks.lock(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let detail = error_detail(&status).unwrap();
        assert_eq!(detail.reason(), ErrorReason::InvalidPermits, "{status:?}");
    }
}

#[tokio::test]
async fn an_election_has_one_leader_a_value_it_can_change_and_a_successor_with_a_higher_token() {
    let cluster = one_node().await;
    let client = cluster.client();
    let ttl = Duration::from_secs(10);
    let (a, b) = (client.session(ttl).await.unwrap(), client.session(ttl).await.unwrap());
    let mut observe = client.observe("/services/scheduler", 0).await.unwrap();
    let none = observe.message().await.unwrap().unwrap();
    assert!(none.leader.is_none(), "nobody leads yet: {none:?}");

    let mut leader =
        a.campaign("/services/scheduler", "10.0.0.1:8080", Duration::ZERO).await.unwrap();
    let elected = observe.message().await.unwrap().unwrap();
    assert_eq!(elected.value, "10.0.0.1:8080");
    assert_eq!(elected.leader.as_ref().unwrap().fencing_token, leader.fencing_token());

    let candidate = {
        let b = b.clone();
        tokio::spawn(async move {
            b.campaign("/services/scheduler", "10.0.0.2:8080", Duration::ZERO).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!candidate.is_finished(), "one leader at a time");

    leader.proclaim("10.0.0.1:9090").await.unwrap();
    let now = client.leader("/services/scheduler").await.unwrap();
    assert_eq!(now.value, "10.0.0.1:9090");
    assert_eq!(now.leader.as_ref().unwrap().fencing_token, leader.fencing_token(), "the same term");
    let proclaimed = observe.message().await.unwrap().unwrap();
    assert_eq!(proclaimed.value, "10.0.0.1:9090");

    // The leader campaigning again keeps its leadership and takes the new value.
    let again = a.campaign("/services/scheduler", "10.0.0.1:7070", Duration::ZERO).await.unwrap();
    assert_eq!(again.fencing_token(), leader.fencing_token());
    assert_eq!(client.leader("/services/scheduler").await.unwrap().value, "10.0.0.1:7070");
    let recampaigned = observe.message().await.unwrap().unwrap();
    assert_eq!(recampaigned.value, "10.0.0.1:7070");

    let token = leader.fencing_token();
    leader.resign().await.unwrap();
    // The second guard of the same leadership: its resignation on drop is refused now.
    drop(again);
    let successor =
        tokio::time::timeout(Duration::from_secs(10), candidate).await.unwrap().unwrap().unwrap();
    assert!(successor.fencing_token() > token, "the next leader's token is higher");
    assert_eq!(client.leader("/services/scheduler").await.unwrap().value, "10.0.0.2:8080");
    let gone = observe.message().await.unwrap().unwrap();
    assert!(gone.leader.is_none(), "the resignation shows as no leader: {gone:?}");
    let next = observe.message().await.unwrap().unwrap();
    assert_eq!(next.value, "10.0.0.2:8080");

    // A stale leader key cannot proclaim or resign.
    let stale = v1::ProclaimRequest {
        leader: Some(v1::LeaderKey {
            name: "/services/scheduler".into(),
            lease_id: a.lease_id(),
            fencing_token: token,
        }),
        value: "x".into(),
        request_id: 0,
    };
    let error = client.proclaim(stale).await.unwrap_err();
    assert_eq!(reason(&error), Some(ErrorReason::LockNotHeld), "{error}");

    // The leader's session ends: so does its leadership.
    let lost = tokio::spawn(async move {
        successor.lost().await;
    });
    b.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), lost).await.unwrap().unwrap();
    assert!(client.leader("/services/scheduler").await.unwrap().leader.is_none());
}

#[tokio::test]
async fn lockmgr_elect_holds_until_signalled_and_listen_prints_each_leader() {
    let cluster = one_node().await;
    let spawn = |args: &[&str]| {
        let child = lockmgr(&cluster)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    };
    let mut listen = spawn(&["--output", "json", "elect", "--listen", "/jobs/leader"]);
    let mut changes = BufReader::new(listen.0.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&changes.next().unwrap().unwrap()).unwrap();
    assert!(first["leader"].is_null(), "{first}");

    let mut one = spawn(&["elect", "/jobs/leader", "node-one"]);
    let token_one: u64 = BufReader::new(one.0.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let mut two = spawn(&["--output", "json", "elect", "/jobs/leader", "node-two"]);
    let change: serde_json::Value =
        serde_json::from_str(&changes.next().unwrap().unwrap()).unwrap();
    assert_eq!(change["leader"]["value"], "node-one", "{change}");
    assert_eq!(change["leader"]["fencing_token"], token_one);

    let kill = Command::new("kill").args(["-TERM", &one.0.id().to_string()]).status().unwrap();
    assert!(kill.success());
    assert!(one.0.wait().unwrap().success(), "a signalled leader resigns and exits 0");
    let elected: serde_json::Value = serde_json::from_str(
        &BufReader::new(two.0.stdout.take().unwrap()).lines().next().unwrap().unwrap(),
    )
    .unwrap();
    assert_eq!(elected["event"], "elected");
    assert!(elected["fencing_token"].as_u64().unwrap() > token_one);
    let mut seen = Vec::new();
    while !seen.iter().any(|change: &serde_json::Value| change["leader"]["value"] == "node-two") {
        seen.push(serde_json::from_str(&changes.next().unwrap().unwrap()).unwrap());
    }
    assert!(seen[0]["leader"].is_null(), "the hand-over shows no leader first: {seen:?}");
}

#[tokio::test]
async fn the_acquisition_stream_reports_the_queue_the_grant_jeopardy_and_the_loss() {
    let cluster = one_node().await;
    let client = cluster.client();
    let ttl = Duration::from_secs(10);
    let wait = Duration::from_secs(30);
    let holder = client.session(ttl).await.unwrap();
    let held = holder.lock("/stream/x", wait).await.unwrap();
    let (b, c) = (client.session(ttl).await.unwrap(), client.session(ttl).await.unwrap());
    let mut second = b.lock_stream("/stream/x", LockMode::Exclusive, wait).await.unwrap();
    assert_eq!(second.next().await.unwrap(), Some(LockState::Queued { position: 0, ahead: 1 }));
    let mut third = c.lock_stream("/stream/x", LockMode::Exclusive, wait).await.unwrap();
    assert_eq!(third.next().await.unwrap(), Some(LockState::Queued { position: 1, ahead: 2 }));

    held.unlock().await.unwrap();
    let Some(LockState::Acquired { token }) = second.next().await.unwrap() else {
        panic!("granted")
    };
    assert_eq!(third.next().await.unwrap(), Some(LockState::Queued { position: 0, ahead: 1 }));
    // The guard releases the lock when dropped: kept until the lease is revoked.
    let guard = second.guard().expect("acquired");
    assert_eq!(guard.fencing_token(), token);

    b.close().await.unwrap();
    let lost = second.next().await.unwrap();
    assert!(
        matches!(lost, Some(LockState::Lost { token: t, ref reason }) if t == token && reason == "revoked"),
        "{lost:?}"
    );
    assert!(matches!(third.next().await.unwrap(), Some(LockState::Acquired { .. })));
    drop(guard);

    // A lease nobody renews: jeopardy a third of its TTL in, then lost when it expires.
    let lease = client.grant_lease(Duration::from_secs(3)).await.unwrap();
    let request = v1::LockRequest {
        path: "/stream/lapse".into(),
        lease_id: lease.lease_id,
        ..v1::LockRequest::default()
    };
    let mut stream = client.lock_stream(request).await.unwrap();
    let mut states = Vec::new();
    while let Some(message) =
        tokio::time::timeout(Duration::from_secs(20), stream.message()).await.unwrap().unwrap()
    {
        states.push((message.state, message.reason));
    }
    let (acquired, jeopardy, lost) = (
        v1::AcquisitionState::Acquired as i32,
        v1::AcquisitionState::Jeopardy as i32,
        v1::AcquisitionState::Lost as i32,
    );
    let kinds: Vec<i32> = states.iter().map(|(state, _)| *state).collect();
    assert_eq!(kinds, vec![acquired, jeopardy, lost], "{states:?}");
    assert_eq!(states[2].1, v1::ReleaseReason::Expired as i32);

    // A try-lock of a held path: one BUSY, then the stream ends.
    let busy = v1::LockRequest {
        path: "/stream/x".into(),
        lease_id: holder.lease_id(),
        ..v1::LockRequest::default()
    };
    let mut stream = client.lock_stream(busy).await.unwrap();
    let message = stream.message().await.unwrap().unwrap();
    assert_eq!(message.state, v1::AcquisitionState::Busy as i32);
    assert_eq!(message.holders.len(), 1);
    assert!(stream.message().await.unwrap().is_none());
}

#[tokio::test]
async fn lockmgr_lock_takes_a_permit_and_verbose_reports_its_place() {
    let cluster = one_node().await;
    let hold = |holder: &str| {
        let child = lockmgr(&cluster)
            .args(["lock", "--permits", "2", "--holder-id", holder, "--no-command", "/pool/cli"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let token = BufReader::new(child.0.stdout.take().unwrap()).lines().next().unwrap().unwrap();
        (child, token.parse::<u64>().unwrap())
    };
    let (mut first, _) = hold("one");
    let (_second, _) = hold("two");
    let mut third = KillOnDrop(
        lockmgr(&cluster)
            .args([
                "--output",
                "json",
                "lock",
                "--permits",
                "2",
                "--verbose",
                "/pool/cli",
                "--",
                "true",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut notes = BufReader::new(third.0.stderr.take().unwrap()).lines();
    let queued: serde_json::Value = serde_json::from_str(&notes.next().unwrap().unwrap()).unwrap();
    assert_eq!(queued["event"], "queued", "{queued}");
    assert!(queued["message"].as_str().unwrap().contains("2 ahead"), "{queued}");
    Command::new("kill").args(["-TERM", &first.0.id().to_string()]).status().unwrap();
    first.0.wait().unwrap();
    let acquired: serde_json::Value =
        serde_json::from_str(&notes.next().unwrap().unwrap()).unwrap();
    assert_eq!(acquired["event"], "acquired", "{acquired}");
    assert!(third.0.wait().unwrap().success());

    let mismatch = lockmgr(&cluster)
        .args(["lock", "--permits", "3", "--wait", "0s", "/pool/cli", "--", "true"])
        .output()
        .unwrap();
    assert!(!mismatch.status.success());
    let stderr = String::from_utf8_lossy(&mismatch.stderr);
    assert!(stderr.contains("a semaphore of 2 permits"), "{stderr}");
}
