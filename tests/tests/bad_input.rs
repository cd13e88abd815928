//! Malformed and abusive requests get the right status code and a message naming the
//! rule; the cluster keeps serving afterwards.

use std::time::Duration;

use lockmgr_client::{Client, Error, proto as v1};
use lockmgr_proto::v1::{
    ErrorReason, lease_service_client::LeaseServiceClient, lock_service_client::LockServiceClient,
};
use lockmgr_tests::Cluster;
use tonic::{Code, transport::Endpoint};

fn lock_request(path: &str, lease_id: i64) -> v1::LockRequest {
    v1::LockRequest {
        path: path.into(),
        lease_id,
        mode: 1,
        wait_timeout_ms: 0,
        holder_id: "test".into(),
        request_id: 0,
        permits: 0,
    }
}

fn assert_error(
    result: Result<impl std::fmt::Debug, Error>,
    code: Code,
    reason: ErrorReason,
    says: &str,
) {
    let error = result.expect_err("an error");
    assert_eq!(error.code(), Some(code), "{error}");
    assert_eq!(error.reason(), Some(reason), "{error}");
    assert!(error.to_string().contains(says), "{error:?} should say {says:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_right_status_and_the_cluster_keeps_serving() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let client = cluster.client();
    let lease = client.grant_lease(Duration::from_secs(5)).await.unwrap().lease_id;
    bad_paths(&client, lease).await;
    bad_lock_fields(&client, lease).await;
    bad_ttls(&cluster).await;
    unknown_leases_and_stale_tokens(&client, lease).await;
    oversized_message(&cluster, lease).await;

    // Still serving, on every member.
    for index in 0..3 {
        assert!(
            cluster.members[index].is_running(),
            "node {} crashed:\n{}",
            index + 1,
            cluster.logs()
        );
        let session = cluster.client_of(index).session(Duration::from_secs(5)).await.unwrap();
        session.lock("/after", Duration::from_secs(5)).await.unwrap().unlock().await.unwrap();
        session.close().await.unwrap();
    }
}

async fn bad_paths(client: &Client, lease: i64) {
    for (path, says) in [
        ("", "empty"),
        ("db/x", "absolute"),
        ("/db/", "end with"),
        ("/db//x", "empty segment"),
        ("/db/us er", "A-Z a-z 0-9"),
        (&format!("/{}", "a".repeat(600)), "limit is 512"),
        (&"/a".repeat(40), "limit is 32"),
    ] {
        assert_error(
            client.lock(lock_request(path, lease)).await,
            Code::InvalidArgument,
            ErrorReason::InvalidPath,
            says,
        );
    }
}

async fn bad_lock_fields(client: &Client, lease: i64) {
    assert_error(
        client.lock(lock_request("/x", 987_654)).await,
        Code::NotFound,
        ErrorReason::LeaseNotFound,
        "987654",
    );
    let mut bad_mode = lock_request("/x", lease);
    bad_mode.mode = 42;
    assert_error(
        client.lock(bad_mode).await,
        Code::InvalidArgument,
        ErrorReason::InvalidMode,
        "42",
    );
    let mut long_holder = lock_request("/x", lease);
    long_holder.holder_id = "h".repeat(10_000);
    assert_error(
        client.lock(long_holder).await,
        Code::InvalidArgument,
        ErrorReason::InvalidHolderId,
        "limit is 256",
    );
    let mut long_wait = lock_request("/x", lease);
    long_wait.wait_timeout_ms = u64::MAX;
    assert_error(
        client.lock(long_wait).await,
        Code::InvalidArgument,
        ErrorReason::InvalidWaitTimeout,
        "exceeds",
    );
}

/// Negative TTLs are refused; zero and absurdly large ones are clamped.
async fn bad_ttls(cluster: &Cluster) {
    let client = cluster.client();
    let zero = client.grant_lease(Duration::ZERO).await.unwrap();
    assert_eq!(zero.ttl_ms, 2_000, "a zero TTL is raised to the minimum");
    let huge = client.grant_lease(Duration::from_secs(10_000_000_000)).await.unwrap();
    assert_eq!(huge.ttl_ms, 86_400_000, "a huge TTL is clamped to the maximum");
    let leader = client.status().await.unwrap().leader_id;
    let address = &cluster.members[cluster.index_of(leader)].client_address;
    let channel =
        Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    let refused = LeaseServiceClient::new(channel)
        .grant(v1::LeaseGrantRequest { ttl_ms: -5 })
        .await
        .expect_err("negative TTL");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("negative"), "{refused:?}");
}

async fn unknown_leases_and_stale_tokens(client: &Client, lease: i64) {
    assert_error(
        client.revoke_lease(-1).await,
        Code::NotFound,
        ErrorReason::LeaseNotFound,
        "not found",
    );
    assert_error(
        client.time_to_live(123_456).await,
        Code::NotFound,
        ErrorReason::LeaseNotFound,
        "not found",
    );
    let granted = client.lock(lock_request("/stale", lease)).await.unwrap();
    let stale = v1::UnlockRequest {
        path: "/stale".into(),
        lease_id: lease,
        fencing_token: granted.fencing_token + 7,
        request_id: 0,
    };
    assert_error(
        client.unlock(stale).await,
        Code::FailedPrecondition,
        ErrorReason::StaleToken,
        "stale fencing token",
    );
}

/// An oversized message is refused by the transport, not by a crash.
async fn oversized_message(cluster: &Cluster, lease: i64) {
    let address = &cluster.members[0].client_address;
    let channel =
        Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    let mut raw = LockServiceClient::new(channel).max_encoding_message_size(64 << 20);
    let mut huge = lock_request("/x", lease);
    huge.holder_id = "h".repeat(8 << 20);
    let refused = raw.lock(huge).await.expect_err("too large");
    let codes = [Code::ResourceExhausted, Code::OutOfRange, Code::Internal, Code::Unknown];
    assert!(codes.contains(&refused.code()), "{refused:?}");
}
