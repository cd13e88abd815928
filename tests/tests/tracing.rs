//! One trace links the client library's `lock.acquire` span to the server's
//! `handle-lock-request` span and its `raft-propose`, `raft-replicate` and
//! `apply-state-machine` children, as received by an in-process OTLP collector.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lockmgr_tests::{Cluster, free_port};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attribute_keys(span: &Span) -> Vec<String> {
    span.attributes.iter().map(|a| a.key.clone()).collect()
}

fn is_lock_request(span: &Span) -> bool {
    span.name == "handle-lock-request"
        && span
            .attributes
            .iter()
            .any(|a| a.key == "rpc.method" && format!("{:?}", a.value).contains("\"Lock\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_links_the_client_span_to_the_server_spans() {
    let collector = Collector::default();
    let address = format!("127.0.0.1:{}", free_port());
    let serving = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve(address.parse().unwrap());
    tokio::spawn(serving);
    let endpoint = format!("http://{address}");

    // This process traces its client calls to the same collector.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&endpoint)
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test-client")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut cluster = Cluster::start(1, &["--otlp-endpoint", &endpoint]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let session = cluster.client().session(Duration::from_secs(5)).await.unwrap();
    let guard = session.lock("/traced/job", Duration::from_secs(5)).await.unwrap();
    let token = guard.fencing_token();
    guard.unlock().await.unwrap();
    let _ = provider.force_flush();

    // The server exports in batches: wait for its spans.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (client, server, children) = loop {
        let spans = collector.0.lock().unwrap().clone();
        let client = spans.iter().find(|s| s.name == "lock.acquire").cloned();
        let server = client.as_ref().and_then(|client| {
            spans.iter().find(|s| is_lock_request(s) && s.parent_span_id == client.span_id).cloned()
        });
        if let (Some(client), Some(server)) = (client, server) {
            let children: Vec<Span> =
                spans.iter().filter(|s| s.parent_span_id == server.span_id).cloned().collect();
            if children.len() >= 3 {
                break (client, server, children);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no linked trace among {} spans:\n{}",
            spans.len(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(server.trace_id, client.trace_id, "one trace");
    let mut names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["apply-state-machine", "raft-propose", "raft-replicate"]);
    assert!(children.iter().all(|s| s.trace_id == client.trace_id));
    let keys = attribute_keys(&client);
    for key in [
        "lock.path",
        "lock.operation",
        "lock.fencing_token",
        "lock.wait_time_ms",
        "rpc.service",
        "rpc.method",
    ] {
        assert!(keys.iter().any(|k| k == key), "lock.acquire lacks {key}: {keys:?}");
    }
    assert!(format!("{:?}", client.attributes).contains(&token.to_string()));
    assert!(client.events.iter().any(|e| e.name == "lock.acquired"), "{:?}", client.events);
    session.close().await.unwrap();
}
