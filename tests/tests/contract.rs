//! The client contract at its edges (issue 20): every error carries an `ErrorDetail`,
//! also those raised below the services (decoding, sizes, deadlines); cancelled watch
//! streams free their slot; busy try-locks did not wait; a page that ends the results
//! says so; unknown enum values are refused alike.

use std::time::Duration;

use bytes::{Buf, BufMut};
use lockmgr_proto::{
    error_detail,
    v1::{
        self, ErrorReason, lease_service_client::LeaseServiceClient,
        lock_service_client::LockServiceClient, watch_service_client::WatchServiceClient,
    },
};
use lockmgr_tests::{Cluster, http_get};
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::{HeaderMap, uri::PathAndQuery},
    transport::{Channel, Endpoint},
};

/// A single node started with `toml` as its config file (kept alive with the cluster).
fn single_node(toml: &str) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lockmgr.toml");
    std::fs::write(&config, toml).unwrap();
    (Cluster::start(1, &["--config", config.to_str().unwrap()]), dir)
}

async fn channel(address: &str) -> Channel {
    Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

fn assert_status(status: &Status, code: Code, reason: ErrorReason) -> v1::ErrorDetail {
    assert_eq!(status.code(), code, "{status:?}");
    let detail = error_detail(status).unwrap_or_else(|| panic!("no ErrorDetail in {status:?}"));
    assert_eq!(ErrorReason::try_from(detail.reason), Ok(reason), "{status:?}");
    detail
}

/// Bytes as they are, to send what no well-behaved client would.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawBytes;

impl Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

async fn raw_lock(address: &str, message: Vec<u8>) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel(address).await);
    grpc.ready().await.unwrap();
    let method = PathAndQuery::from_static("/lockmgr.v1.LockService/Lock");
    grpc.unary(Request::new(message), method, RawCodec).await.expect_err("refused")
}

fn lock_request(path: &str, lease_id: i64, wait_timeout_ms: u64) -> v1::LockRequest {
    v1::LockRequest {
        path: path.into(),
        lease_id,
        mode: 1,
        wait_timeout_ms,
        holder_id: "contract".into(),
        request_id: 0,
        permits: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_raised_below_the_services_carry_a_detail() {
    let (mut cluster, _config) = single_node("[server]\ngrpc_message_bytes_max = 4194304\n");
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();

    // Field 1 (path, a string) holding bytes that are not UTF-8.
    let not_utf8 = raw_lock(&address, vec![0x0a, 0x02, 0xff, 0xfe]).await;
    assert_status(&not_utf8, Code::InvalidArgument, ErrorReason::MalformedRequest);
    // Field 1 announces 16 bytes; 2 follow.
    let truncated = raw_lock(&address, vec![0x0a, 0x10, b'/', b'a']).await;
    assert_status(&truncated, Code::InvalidArgument, ErrorReason::MalformedRequest);

    // Over grpc_message_bytes_max: gRPC's RESOURCE_EXHAUSTED, with the limit.
    let mut lock =
        LockServiceClient::new(channel(&address).await).max_encoding_message_size(64 << 20);
    for size in [5 << 20, 16 << 20] {
        let mut huge = lock_request("/x", 1, 0);
        huge.holder_id = "h".repeat(size);
        let refused = lock.lock(huge).await.expect_err("too large");
        let detail = assert_status(&refused, Code::ResourceExhausted, ErrorReason::MessageTooLarge);
        assert_eq!(detail.limit, 4 << 20, "{refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_deadline_is_deadline_exceeded_with_a_detail() {
    let (mut cluster, _config) = single_node("");
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let mut lock = LockServiceClient::new(channel(&address).await);
    // A client deadline that passes while the request waits for a held lock.
    let leases = LeaseServiceClient::new(channel(&address).await);
    let holder = grant(&leases).await;
    let waiter = grant(&leases).await;
    lock.lock(lock_request("/held", holder, 0)).await.unwrap();
    let late = prost::Message::encode_to_vec(&lock_request("/held", waiter, 5_000));
    let trailers = lock_over_h2(&address, late, "300m").await;
    let expired = Status::from_header_map(&trailers).expect("a grpc-status");
    assert_status(&expired, Code::DeadlineExceeded, ErrorReason::DeadlineExceeded);
}

/// A `Lock` sent over plain HTTP/2 with a `grpc-timeout`, so that only the server acts
/// on the deadline (tonic's client enforces it too, and would answer first itself): the
/// headers or trailers holding the answer's status.
async fn lock_over_h2(address: &str, message: Vec<u8>, grpc_timeout: &str) -> HeaderMap {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = tonic::codegen::http::Request::post(format!(
        "http://{address}/lockmgr.v1.LockService/Lock"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", grpc_timeout)
    .body(())
    .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    let mut frame = vec![0_u8];
    frame.extend(u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend(message);
    send.send_data(frame.into(), true).unwrap();
    let (parts, mut body) = response.await.unwrap().into_parts();
    if parts.headers.contains_key("grpc-status") {
        return parts.headers;
    }
    while body.data().await.is_some() {}
    body.trailers().await.unwrap().unwrap_or_default()
}

async fn grant(leases: &LeaseServiceClient<Channel>) -> i64 {
    let mut leases = leases.clone();
    let request = v1::LeaseGrantRequest { ttl_ms: 30_000 };
    leases.grant(request).await.unwrap().into_inner().lease_id
}

/// The `watch_streams_current` gauge on a member's `/metrics`.
fn watch_streams_current(metrics_address: &str) -> i64 {
    let (_, body) = http_get(metrics_address, "/metrics");
    body.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            name.ends_with("watch_streams_current").then(|| value.trim().parse().ok())?
        })
        .expect("a watch_streams_current gauge")
}

async fn open_watches(
    address: &str,
    count: usize,
) -> Vec<(Channel, tonic::Streaming<v1::WatchResponse>)> {
    let mut streams = Vec::new();
    for index in 0..count {
        // Several connections, a few streams each (as many clients would).
        let channel = channel(address).await;
        let request =
            v1::WatchRequest { path: format!("/quiet/{index}"), prefix: false, start_revision: 0 };
        let stream = WatchServiceClient::new(channel.clone()).watch(request).await.unwrap();
        streams.push((channel, stream.into_inner()));
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_watches_on_quiet_paths_are_released() {
    let (mut cluster, _config) = single_node("[server]\nwatchers_max = 200\n");
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let metrics = cluster.members[0].metrics_address.clone();

    let streams = open_watches(&address, 200).await;
    assert_eq!(watch_streams_current(&metrics), 200);
    let request = v1::WatchRequest { path: "/quiet/x".into(), prefix: false, start_revision: 0 };
    let refused = WatchServiceClient::new(channel(&address).await)
        .watch(request.clone())
        .await
        .expect_err("over watchers_max");
    let detail = assert_status(&refused, Code::ResourceExhausted, ErrorReason::TooManyWatchers);
    assert_eq!(detail.limit, 200, "{refused:?}");

    // Cancelled, their connections closed; nothing ever happens on their paths.
    drop(streams);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while watch_streams_current(&metrics) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} watch streams still counted after their clients left",
            watch_streams_current(&metrics)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And their slots are free again.
    let again = open_watches(&address, 200).await;
    assert_eq!(again.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_try_lock_reports_no_wait() {
    let (mut cluster, _config) = single_node("");
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let mut locks = LockServiceClient::new(channel(&address).await);
    let leases = LeaseServiceClient::new(channel(&address).await);
    let holder = grant(&leases).await;
    let other = grant(&leases).await;
    // A busy try-lock was refused at once: it waited 0 ms.
    locks.lock(lock_request("/busy", holder, 0)).await.unwrap();
    for _ in 0..20 {
        let busy = locks.lock(lock_request("/busy", other, 0)).await.unwrap().into_inner();
        assert!(!busy.acquired);
        assert_eq!(busy.wait_time_ms, 0, "a refused try-lock did not wait: {busy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_ends_the_results_has_no_continuation() {
    let (mut cluster, _config) = single_node("");
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let mut locks = LockServiceClient::new(channel(&address).await);
    let mut leases = LeaseServiceClient::new(channel(&address).await);
    let holder = grant(&leases).await;
    grant(&leases).await;
    // A page that exactly exhausts the results has no continuation.
    for path in ["/page/a", "/page/b", "/page/c"] {
        locks.lock(lock_request(path, holder, 0)).await.unwrap();
    }
    let list = |limit, page_token: &str| v1::ListLocksRequest {
        prefix: "/page".into(),
        limit,
        page_token: page_token.into(),
        consistency: 0,
    };
    let first = locks.list_locks(list(2, "")).await.unwrap().into_inner();
    assert_eq!(first.locks.len(), 2);
    assert_eq!(first.next_page_token, "/page/b");
    let rest = locks.list_locks(list(2, &first.next_page_token)).await.unwrap().into_inner();
    assert_eq!(rest.locks.len(), 1);
    assert_eq!(rest.next_page_token, "");
    let exact = locks.list_locks(list(3, "")).await.unwrap().into_inner();
    assert_eq!(exact.locks.len(), 3);
    assert_eq!(exact.next_page_token, "", "no more locks follow");
    let lease_page = |limit| v1::LeaseListRequest { limit, after_lease_id: 0 };
    let all = leases.list(lease_page(1_000)).await.unwrap().into_inner();
    let count = all.leases.len() as u32;
    assert_eq!(all.next_after_lease_id, 0);
    let exact = leases.list(lease_page(count)).await.unwrap().into_inner();
    assert_eq!(exact.leases.len(), count as usize);
    assert_eq!(exact.next_after_lease_id, 0, "no more leases follow");
    let short = leases.list(lease_page(count - 1)).await.unwrap().into_inner();
    assert_ne!(short.next_after_lease_id, 0, "one more lease follows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_enum_values_are_refused_alike() {
    let (mut cluster, _config) = single_node("");
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let address = cluster.members[0].client_address.clone();
    let mut locks = LockServiceClient::new(channel(&address).await);
    let leases = LeaseServiceClient::new(channel(&address).await);
    let holder = grant(&leases).await;
    // An unknown enum value is refused, whichever field it is in.
    let mut bad_mode = lock_request("/enum", holder, 0);
    bad_mode.mode = 7;
    let refused = locks.lock(bad_mode).await.expect_err("unknown mode");
    assert_status(&refused, Code::InvalidArgument, ErrorReason::InvalidMode);
    let get = v1::GetLockRequest { path: "/busy".into(), consistency: 7 };
    let refused = locks.get_lock(get).await.expect_err("unknown consistency");
    assert_status(&refused, Code::InvalidArgument, ErrorReason::InvalidArgument);
    assert!(refused.message().contains("consistency"), "{refused:?}");
    let list_bad = v1::ListLocksRequest {
        prefix: "/".into(),
        limit: 10,
        page_token: String::new(),
        consistency: 7,
    };
    let refused = locks.list_locks(list_bad).await.expect_err("unknown consistency");
    assert_status(&refused, Code::InvalidArgument, ErrorReason::InvalidArgument);
    let fence = v1::ValidateFenceRequest { path: "/busy".into(), fencing_token: 1, consistency: 7 };
    let refused = locks.validate_fence(fence).await.expect_err("unknown consistency");
    assert_status(&refused, Code::InvalidArgument, ErrorReason::InvalidArgument);
}
