//! A node whose disk stops persisting stops serving, rather than answer from a state it
//! could not make durable.

use std::{sync::Arc, time::Duration};

use lockmgr_io::MemDisk;
use lockmgr_proto::v1::{
    LeaseGrantRequest, cluster_service_client::ClusterServiceClient,
    lease_service_client::LeaseServiceClient,
};
use lockmgr_server::{NodeError, ServerConfig};

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_node() {
    let config = ServerConfig {
        client_address: free_address(),
        peer_address: free_address(),
        data_dir: "unused-with-an-in-memory-disk".into(),
        ..ServerConfig::default()
    };
    let mut config = config;
    config.metrics.address = String::new();
    let address = format!("http://{}", config.client_address);
    let disk = Arc::new(MemDisk::default());
    let node = lockmgr_server::start(config, disk.clone()).await.unwrap();
    let serving = tokio::spawn(lockmgr_server::serve(node, std::future::pending()));

    let channel = loop {
        if let Ok(channel) =
            tonic::transport::Endpoint::from_shared(address.clone()).unwrap().connect().await
        {
            break channel;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut leases = LeaseServiceClient::new(channel.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while leases.grant(LeaseGrantRequest { ttl_ms: 5_000 }).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the node never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    disk.fail_commits();
    let refused = leases.grant(LeaseGrantRequest { ttl_ms: 5_000 }).await;
    assert!(refused.is_err(), "a write acknowledged without being persisted: {refused:?}");
    let outcome = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the node stops")
        .unwrap();
    assert!(matches!(outcome, Err(NodeError::Fatal(_))), "{outcome:?}");
    // Connections it had drain within moments; nothing is served after that.
    let mut status = ClusterServiceClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status.status(lockmgr_proto::v1::StatusRequest {}).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still serving after a fatal disk error");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
