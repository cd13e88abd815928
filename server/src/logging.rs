//! Log output (`docs/observability.md`, Logs): the specification's structured JSON
//! (one object per line: `timestamp` with microseconds, `level`, `logger`, `message`,
//! `fields`, `context` with `node_id`, `raft_term` and `revision`), or human text for
//! terminals.
//!
//! Renewals are logged at DEBUG: at INFO, thousands of keepalives a second would drown
//! everything else; their rate is in `lease_renew_total` instead.

use std::{
    fmt,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use serde_json::{Map, Value, json};
use tracing::{Event, Subscriber, field::Field};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// What every JSON line's `context` says about the node.
#[derive(Debug, Default)]
struct NodeContext {
    node_id: AtomicU64,
    raft_term: AtomicU64,
    revision: AtomicU64,
}

fn context() -> &'static NodeContext {
    static CONTEXT: OnceLock<NodeContext> = OnceLock::new();
    CONTEXT.get_or_init(NodeContext::default)
}

pub fn set_node_id(node_id: u64) {
    context().node_id.store(node_id, Ordering::Relaxed);
}

pub fn note_raft_term(term: u64) {
    context().raft_term.store(term, Ordering::Relaxed);
}

pub fn note_revision(revision: u64) {
    context().revision.store(revision, Ordering::Relaxed);
}

/// The specification's logger names, from the code's module paths.
pub fn logger(target: &str) -> String {
    let component = match target {
        t if t.starts_with("lockmgr_server::effects")
            || t.starts_with("lockmgr_server::driver")
            || t.starts_with("lockmgr_server::proposer")
            || t.starts_with("openraft")
            || t.starts_with("lockmgr_io") =>
        {
            "raft"
        }
        t if t.starts_with("lockmgr_server::service::lock") => "lock",
        t if t.starts_with("lockmgr_server::service::lease") => "lease",
        t if t.starts_with("lockmgr_server::service::watch") => "watch",
        t if t.starts_with("lockmgr_server::service::cluster") => "cluster",
        t if t.starts_with("lockmgr_server::connections") => "client",
        t if t.starts_with("lockmgr_client") => "client",
        t if t.starts_with("lockmgr") => "server",
        other => other.split("::").next().unwrap_or(other),
    };
    format!("lock-manager.{component}")
}

/// Formats events as the specification's JSON lines.
#[derive(Debug, Default)]
pub struct SpecJson;

struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.insert(field.name().into(), Value::String(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.into();
        } else {
            self.fields.insert(field.name().into(), Value::String(value.into()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), json!(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), json!(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().into(), json!(value));
    }
}

impl<S, N> FormatEvent<S, N> for SpecJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields { message: String::new(), fields: Map::new() };
        event.record(&mut fields);
        let span = tracing::Span::current().context().span().span_context().clone();
        if span.is_valid() {
            fields.fields.insert("trace_id".into(), Value::String(span.trace_id().to_string()));
            fields.fields.insert("span_id".into(), Value::String(span.span_id().to_string()));
        }
        let metadata = event.metadata();
        let node = context();
        let line = json!({
            "timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "level": metadata.level().as_str(),
            "logger": logger(metadata.target()),
            "message": fields.message,
            "fields": fields.fields,
            "context": {
                "node_id": format!("node-{}", node.node_id.load(Ordering::Relaxed)),
                "raft_term": node.raft_term.load(Ordering::Relaxed),
                "revision": node.revision.load(Ordering::Relaxed),
            },
        });
        writeln!(writer, "{line}")
    }
}

/// A tracer provider exporting spans over OTLP/gRPC to `endpoint`. Needs a runtime.
pub fn otlp_provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("cannot export traces to {endpoint}: {e}"))?;
    let resource = Resource::builder().with_service_name(service_name.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// Installs the process-wide subscriber: logs in `json` or text, and spans to `traces`
/// when given. W3C `traceparent` is the propagation format.
/// Changes the running log filter (SIGHUP).
#[derive(Clone, Debug)]
pub struct FilterHandle(
    tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
);

impl FilterHandle {
    /// Replaces the filter with `filter`, which must parse; the old one stays otherwise.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

pub fn init(filter: EnvFilter, json: bool, traces: Option<&SdkTracerProvider>) -> FilterHandle {
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let logs = if json {
        tracing_subscriber::fmt::layer().event_format(SpecJson).with_writer(std::io::stderr).boxed()
    } else {
        // Colour only for a person at a terminal, never into a file or a pipe.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed()
    };
    let spans = traces
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("lockmgr")));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(filter).with(logs).with(spans).try_init();
    FilterHandle(handle)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_lock_acquisition_is_logged_as_the_specification_shows() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(SpecJson)
            .with_writer(move || writer.clone())
            .finish();
        set_node_id(1);
        note_raft_term(42);
        note_revision(15_892);
        tracing::subscriber::with_default(subscriber, || {
            crate::effects::log_acquired(
                "/db/users/schema-migration",
                "payment-service-abc123",
                7_587_848_390_234,
                15_892,
                45,
            );
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["timestamp", "level", "logger", "message", "fields", "context"]);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["logger"], "lock-manager.raft");
        assert_eq!(line["message"], "Lock acquired");
        assert_eq!(
            line["fields"],
            json!({"lock_path": "/db/users/schema-migration", "holder_id": "payment-service-abc123",
                   "lease_id": 7_587_848_390_234_i64, "fencing_token": 15_892, "wait_time_ms": 45})
        );
        assert_eq!(
            line["context"],
            json!({"node_id": "node-1", "raft_term": 42, "revision": 15_892})
        );
        let timestamp = line["timestamp"].as_str().unwrap();
        assert_eq!(timestamp.len(), "2025-01-20T10:15:30.123456Z".len(), "{timestamp}");
        assert!(humantime::parse_rfc3339(timestamp).is_ok());
    }
}
