//! The client contract under retries, as a client written against `lockmgr.proto` alone
//! would lean on it (raw generated stubs, no client library): a retry of a queued Lock
//! joins its wait, a new request from a queued lease keeps its place, a client's own
//! abandoned wait never ends its next one, a forwarded wait survives the member that
//! forwarded it, and a request_id is bound to the request it named.

use std::time::Duration;

use lockmgr_proto::{
    error_detail,
    v1::{
        ErrorReason, GetLockRequest, LeaseGrantRequest, LockRequest, LockResponse, UnlockRequest,
        lease_service_client::LeaseServiceClient, lock_service_client::LockServiceClient,
    },
};
use lockmgr_tests::Cluster;
use tokio::task::JoinHandle;
use tonic::{Code, Status, transport::Channel};

const EXCLUSIVE: i32 = 1;

async fn locks(address: &str) -> LockServiceClient<Channel> {
    LockServiceClient::connect(format!("http://{address}")).await.expect("connects")
}

async fn lease(address: &str) -> i64 {
    let mut leases =
        LeaseServiceClient::connect(format!("http://{address}")).await.expect("connects");
    let grant = leases.grant(LeaseGrantRequest { ttl_ms: 120_000 }).await.expect("a lease");
    grant.into_inner().lease_id
}

fn lock(path: &str, lease_id: i64, wait_timeout_ms: u64, request_id: u64) -> LockRequest {
    LockRequest {
        path: path.into(),
        lease_id,
        mode: EXCLUSIVE,
        wait_timeout_ms,
        holder_id: format!("lease-{lease_id}"),
        request_id,
        permits: 0,
    }
}

fn spawn_lock(address: &str, request: LockRequest) -> JoinHandle<Result<LockResponse, Status>> {
    let address = address.to_owned();
    tokio::spawn(async move {
        locks(&address).await.lock(request).await.map(tonic::Response::into_inner)
    })
}

/// The leases waiting for `path`, as the leader sees them.
async fn waiters(address: &str, path: &str) -> Vec<i64> {
    let request = GetLockRequest { path: path.into(), consistency: 0 };
    let answer = locks(address).await.get_lock(request).await.expect("GetLock");
    answer
        .into_inner()
        .lock
        .map(|l| l.waiters.iter().map(|w| w.lease_id).collect())
        .unwrap_or_default()
}

async fn until_waiting(address: &str, path: &str, lease_id: i64) {
    for _ in 0..100 {
        if waiters(address, path).await.contains(&lease_id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("lease {lease_id} never queued for {path}");
}

async fn granted(call: JoinHandle<Result<LockResponse, Status>>) -> u64 {
    let answer = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("answered after the release")
        .expect("the task ran");
    let answer = answer.unwrap_or_else(|status| panic!("refused: {status:?}"));
    assert!(answer.acquired, "{answer:?}");
    answer.fencing_token
}

async fn hold(address: &str, path: &str) -> (i64, u64) {
    let holder = lease(address).await;
    let answer = locks(address).await.lock(lock(path, holder, 0, 1)).await.expect("free");
    let answer = answer.into_inner();
    assert!(answer.acquired);
    (holder, answer.fencing_token)
}

async fn release(address: &str, path: &str, (lease_id, token): (i64, u64)) {
    let unlock = UnlockRequest { path: path.into(), lease_id, fencing_token: token, request_id: 2 };
    locks(address).await.unlock(unlock).await.expect("unlocked");
}

fn assert_refused(status: &Status, code: Code, reason: ErrorReason) {
    assert_eq!(status.code(), code, "{status:?}");
    let detail = error_detail(status).unwrap_or_else(|| panic!("no ErrorDetail: {status:?}"));
    assert_eq!(detail.reason, reason as i32, "{status:?}");
}

/// Defect 1: a retry (same id), a try-lock and a new blocking request from a lease that is
/// already queued: none breaks the wait, all blocking ones get its grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_lock_from_a_queued_lease_keeps_its_place() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let held = hold(&address, "/p").await;
    let b = lease(&address).await;
    let first = spawn_lock(&address, lock("/p", b, 30_000, 10));
    until_waiting(&address, "/p", b).await;

    let retry = spawn_lock(&address, lock("/p", b, 30_000, 10));
    let try_lock = locks(&address).await.lock(lock("/p", b, 0, 11)).await;
    let try_lock = try_lock.expect("a try-lock from the queued lease is answered").into_inner();
    assert!(!try_lock.acquired, "busy: {try_lock:?}");
    let renewed = spawn_lock(&address, lock("/p", b, 30_000, 12));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(waiters(&address, "/p").await, vec![b], "b keeps its one place");
    assert!(!first.is_finished() && !retry.is_finished() && !renewed.is_finished());

    release(&address, "/p", held).await;
    let token = granted(first).await;
    assert_eq!(granted(retry).await, token, "the retry joined the wait");
    assert_eq!(granted(renewed).await, token, "the new request took the wait over");
}

/// Defect 2: a client abandons its blocking Lock and at once sends a new one; the new
/// one waits its full time and is granted, however the two race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_lock_right_after_an_abandoned_wait_is_not_ended_by_it() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    for trial in 0..4 {
        let path = format!("/abandoned/{trial}");
        let held = hold(&address, &path).await;
        let b = lease(&address).await;
        let mut client = locks(&address).await;
        let abandoned =
            tokio::time::timeout(Duration::from_secs(1), client.lock(lock(&path, b, 30_000, 1)));
        assert!(abandoned.await.is_err(), "still waiting when abandoned");
        let second = spawn_lock(&address, lock(&path, b, 30_000, 2));
        // Past the abandoned wait's grace: its cancel, if any, has been tried.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!second.is_finished(), "trial {trial}: the second wait ended early");
        assert_eq!(waiters(&address, &path).await, vec![b]);
        release(&address, &path, held).await;
        granted(second).await;
    }
}

/// An abandoned wait that nobody takes up again leaves the queue after the grace, and its
/// retry then learns so with a documented code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_wait_leaves_the_queue_after_its_grace() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let _held = hold(&address, "/q").await;
    let b = lease(&address).await;
    let mut client = locks(&address).await;
    let abandoned =
        tokio::time::timeout(Duration::from_millis(500), client.lock(lock("/q", b, 30_000, 1)));
    assert!(abandoned.await.is_err());
    assert_eq!(waiters(&address, "/q").await, vec![b], "kept for a retry at first");
    let mut left = false;
    for _ in 0..100 {
        if waiters(&address, "/q").await.is_empty() {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "the abandoned wait never left the queue");
    let retry = locks(&address).await.lock(lock("/q", b, 30_000, 1)).await;
    assert_refused(&retry.expect_err("ended"), Code::Aborted, ErrorReason::WaitAbandoned);
}

/// Defect 3: the follower forwarding a waiting Lock dies; the client's retry of the same
/// request on the leader finds the wait and gets its grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_wait_survives_the_death_of_its_follower() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let leader_index = cluster.index_of(leader);
    let follower_index = (leader_index + 1) % 3;
    let leader_address = cluster.members[leader_index].client_address.clone();
    let follower_address = cluster.members[follower_index].client_address.clone();
    let held = hold(&leader_address, "/f").await;
    let b = lease(&leader_address).await;
    let forwarded = spawn_lock(&follower_address, lock("/f", b, 30_000, 7));
    until_waiting(&leader_address, "/f", b).await;

    cluster.kill(follower_index);
    let lost = tokio::time::timeout(Duration::from_secs(10), forwarded).await;
    assert!(lost.expect("the forwarding call ends").expect("ran").is_err());
    let retry = spawn_lock(&leader_address, lock("/f", b, 30_000, 7));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!retry.is_finished(), "the retry waits: {:?}", retry.is_finished());
    assert_eq!(waiters(&leader_address, "/f").await, vec![b], "the place was kept");
    release(&leader_address, "/f", held).await;
    granted(retry).await;
}

/// Defect 4: a request_id reused for another request is refused, never answered with the
/// other request's outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_reused_for_another_request_is_refused() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let l = lease(&address).await;
    let mut client = locks(&address).await;
    let a = client.lock(lock("/a", l, 0, 555)).await.expect("granted").into_inner();
    assert!(a.acquired);

    let other_path = client.lock(lock("/b", l, 0, 555)).await.expect_err("refused");
    assert_refused(&other_path, Code::InvalidArgument, ErrorReason::RequestIdReused);
    let b = client.get_lock(GetLockRequest { path: "/b".into(), consistency: 0 }).await;
    assert!(b.expect("GetLock").into_inner().lock.is_none(), "/b is not held");

    let unlock = |request_id| UnlockRequest {
        path: "/a".into(),
        lease_id: l,
        fencing_token: a.fencing_token,
        request_id,
    };
    let unlock_as_lock = client.unlock(unlock(555)).await.expect_err("refused");
    assert_refused(&unlock_as_lock, Code::InvalidArgument, ErrorReason::RequestIdReused);
    client.unlock(unlock(556)).await.expect("unlocked");
    let lock_as_unlock = client.lock(lock("/a", l, 0, 556)).await.expect_err("refused");
    assert_refused(&lock_as_unlock, Code::InvalidArgument, ErrorReason::RequestIdReused);
    // The same request again is still answered from memory.
    client.unlock(unlock(556)).await.expect("the retry of the unlock");
}
