//! Logging and the per-request span.
//!
//! On Cloud Run and Lambda, logs are one JSON object per line in the Cloud Logging structured
//! format: `severity` (DEBUG/INFO/WARNING/ERROR), `message`, `logging.googleapis.com/trace`
//! (`projects/<project>/traces/<trace id>`, from the request's `traceparent` or
//! `X-Cloud-Trace-Context`), `logging.googleapis.com/spanId`,
//! `logging.googleapis.com/trace_sampled`, the event's own fields, and the fields of the
//! enclosing spans under `span`. No timestamp: the platform stamps each line. Locally, logs are
//! human-readable text.
//!
//! Why not `tracing-stackdriver`: its Cloud Trace linkage only works through OpenTelemetry
//! (`tracing-opentelemetry` 0.23 / `opentelemetry` 0.22, both outdated and heavy for a 20 ms
//! start-up budget), and without it there is no way to put the request's trace id into
//! `logging.googleapis.com/trace`. It also always writes a timestamp and pulls `time`,
//! `Inflector` and `http` 0.2. The formatter below is a small `tracing-subscriber` layer that
//! reads the trace from the request span's fields.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::sync::Once;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Instrument, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{BaseConfig, Env, LogFormat, Platform};
use crate::error::DeadLettered;
use crate::metrics::Metrics;

/// Default filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber: Cloud Logging JSON or pretty text per `config.log_format`,
/// filtered by `RUST_LOG` (default `info`). Fails if a global subscriber is already set.
pub fn init(service_name: &str, config: &BaseConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(config.log_filter.as_deref().unwrap_or(DEFAULT_FILTER))?;
    match config.log_format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(json_layer(config.project_id.clone(), std::io::stdout))
            .try_init()?,
        LogFormat::Pretty => tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init()?,
    }
    tracing::debug!(service = service_name, "telemetry initialised");
    Ok(())
}

/// For tests: silent unless `TEST_LOG=1`, then pretty text through the test writer (so
/// `cargo test` captures it per test). Safe to call from every test.
pub fn init_for_tests() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if Env::from_process().flag("TEST_LOG").unwrap_or(false) {
            let filter = Env::from_process().string_or("RUST_LOG", "debug");
            let _ = tracing_subscriber::registry()
                .with(EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("debug")))
                .with(tracing_subscriber::fmt::layer().with_test_writer())
                .try_init();
        }
    });
}

/// The trace a request belongs to, from `traceparent` (W3C) or `X-Cloud-Trace-Context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits, when the caller sent one.
    pub span_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// Reads `traceparent` first (what Cloud Run forwards today), then `X-Cloud-Trace-Context`.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        get("traceparent")
            .and_then(Self::parse_traceparent)
            .or_else(|| get("x-cloud-trace-context").and_then(Self::parse_cloud_trace_context))
    }

    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
    pub fn parse_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2
            || !is_hex(version)
            || version == "ff"
            || (version == "00" && parts.next().is_some())
        {
            return None;
        }
        if !is_trace_id(trace_id)
            || span_id.len() != 16
            || !is_hex(span_id)
            || span_id == "0000000000000000"
        {
            return None;
        }
        let flags = u8::from_str_radix(flags.get(..2)?, 16).ok()?;
        Some(Self {
            trace_id: trace_id.to_ascii_lowercase(),
            span_id: Some(span_id.to_ascii_lowercase()),
            sampled: flags & 1 == 1,
        })
    }

    /// `TRACE_ID[/SPAN_ID][;o=OPTIONS]`, with a decimal span id.
    pub fn parse_cloud_trace_context(value: &str) -> Option<Self> {
        let (ids, options) = value.trim().split_once(';').unwrap_or((value.trim(), ""));
        let (trace_id, span) = ids.split_once('/').map_or((ids, None), |(t, s)| (t, Some(s)));
        if !is_trace_id(trace_id) {
            return None;
        }
        let span_id = span
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s != 0)
            .map(|s| format!("{s:016x}"));
        Some(Self {
            trace_id: trace_id.to_ascii_lowercase(),
            span_id,
            sampled: options.trim() == "o=1",
        })
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_trace_id(s: &str) -> bool {
    s.len() == 32 && is_hex(s) && s.bytes().any(|b| b != b'0')
}

/// The per-request middleware: one span per request (method, matched route, request id, trace,
/// status, latency), one "request completed" event with the request's Firestore operations
/// ([`crate::ops`]) and tenant, and the metrics.
pub(crate) async fn observe(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map_or("<unmatched>", MatchedPath::as_str).to_owned();
    let request_id =
        req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %request_id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        trace_sampled = tracing::field::Empty,
    );
    if let Some(trace) = TraceContext::from_headers(req.headers()) {
        span.record("trace_id", trace.trace_id.as_str());
        if let Some(span_id) = &trace.span_id {
            span.record("span_id", span_id.as_str());
        }
        span.record("trace_sampled", trace.sampled);
    }

    let ops = crate::ops::OpsCounts::new();
    let response = ops.clone().scope(next.run(req).instrument(span.clone())).await;

    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    let counted = ops.snapshot();
    let tenant = ops.tenant();
    tracing::info!(
        parent: &span,
        status,
        latency_ms,
        firestore_reads = counted.reads,
        firestore_writes = counted.writes,
        firestore_deletes = counted.deletes,
        firestore_query_results = counted.query_results,
        firestore_round_trips = counted.round_trips,
        tenant = tenant.as_deref(),
        "request completed"
    );
    let dead_lettered = response.extensions().get::<DeadLettered>().is_some();
    metrics.record(method.as_str(), &route, status, dead_lettered, elapsed);
    metrics.record_firestore_ops(&route, &counted);
    response
}

/// A `tracing-subscriber` layer writing Cloud Logging structured JSON lines to `writer`.
/// `project` turns the request's trace id into `projects/<project>/traces/<id>`; without it the
/// trace id stays in the span fields.
pub fn json_layer<W>(project: Option<String>, writer: W) -> CloudLoggingLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    CloudLoggingLayer { project, writer }
}

/// See [`json_layer`].
pub struct CloudLoggingLayer<W> {
    project: Option<String>,
    writer: W,
}

impl<W> fmt::Debug for CloudLoggingLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudLoggingLayer").field("project", &self.project).finish_non_exhaustive()
    }
}

/// Span fields as recorded so far (kept in the span's extensions).
struct SpanFields(Map<String, Value>);

const TRACE_FIELDS: [&str; 3] = ["trace_id", "span_id", "trace_sampled"];

impl<S, W> tracing_subscriber::Layer<S> for CloudLoggingLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut out = Map::new();
        out.insert("severity".to_owned(), Value::from(severity(*meta.level())));

        // Span fields, outermost first so inner spans win.
        let mut span_fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    span_fields.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        if let (Some(project), Some(Value::String(trace_id))) =
            (&self.project, span_fields.get("trace_id"))
        {
            out.insert(
                "logging.googleapis.com/trace".to_owned(),
                Value::from(format!("projects/{project}/traces/{trace_id}")),
            );
            if let Some(span_id) = span_fields.get("span_id") {
                out.insert("logging.googleapis.com/spanId".to_owned(), span_id.clone());
            }
            if let Some(sampled) = span_fields.get("trace_sampled") {
                out.insert("logging.googleapis.com/trace_sampled".to_owned(), sampled.clone());
            }
            for key in TRACE_FIELDS {
                span_fields.remove(key);
            }
        }

        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields.remove("message").unwrap_or_else(|| Value::from(""));
        out.insert("message".to_owned(), message);
        out.insert("target".to_owned(), Value::from(meta.target()));
        for (key, value) in fields {
            out.entry(key).or_insert(value);
        }
        if !span_fields.is_empty() {
            out.insert("span".to_owned(), Value::Object(span_fields));
        }

        let Ok(mut line) = serde_json::to_vec(&out) else { return };
        line.push(b'\n');
        let _ = self.writer.make_writer_for(meta).write_all(&line);
    }
}

/// Cloud Logging severities.
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut chain = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().to_owned(), Value::from(chain));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// A summary of the config safe to log at start-up (no secrets live in `BaseConfig`; hosts and
/// audiences are not secret).
pub(crate) fn config_summary(config: &BaseConfig) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    let platform = config.platform();
    m.insert("platform", format!("{platform:?}"));
    match platform {
        // Cloud Run: the port and the drain after SIGTERM.
        Platform::CloudRun => {
            m.insert("port", config.port.to_string());
            m.insert("shutdown_grace_s", config.shutdown_grace.as_secs().to_string());
        }
        // Lambda: no port; invocations at once, the deadline margin, the wait after SIGTERM.
        Platform::Lambda => {
            m.insert("max_concurrency", config.lambda_max_concurrency.unwrap_or(1).to_string());
            m.insert("deadline_margin_ms", config.lambda_deadline_margin.as_millis().to_string());
            m.insert("shutdown_wait_s", config.shutdown_grace.as_secs().to_string());
        }
    }
    m.insert("project", config.project_id.clone().unwrap_or_default());
    m.insert("firestore_emulator", config.firestore_emulator().to_string());
    m.insert("pubsub_emulator", config.pubsub_emulator().to_string());
    m.insert("auth_emulator", config.auth_emulator().to_string());
    m.insert("insecure_local_push", config.insecure_local_push.to_string());
    m.insert("request_timeout_s", config.request_timeout.as_secs().to_string());
    m.insert("body_limit_bytes", config.body_limit.to_string());
    m.insert("cors_origins", config.cors_origins.join(","));
    m
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(capture: &Capture) -> Vec<Value> {
        String::from_utf8(capture.0.lock().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_start_up_summary_prints_what_applies_to_the_platform() {
        let cloud_run = config_summary(&BaseConfig::local());
        assert!(cloud_run.contains_key("port") && cloud_run.contains_key("shutdown_grace_s"));
        assert!(!cloud_run.contains_key("max_concurrency"));
        let lambda = BaseConfig::load(&Env::from_pairs([
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
        ]))
        .unwrap();
        let lambda = config_summary(&lambda);
        assert_eq!(lambda["platform"], "Lambda");
        assert_eq!(lambda["max_concurrency"], "4");
        assert_eq!(lambda["deadline_margin_ms"], "500");
        assert!(!lambda.contains_key("port") && !lambda.contains_key("shutdown_grace_s"));
    }

    #[test]
    fn json_lines_carry_severity_message_trace_and_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(json_layer(Some("proj".to_owned()), capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                route = "/x",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id = "00f067aa0ba902b7",
                trace_sampled = true
            );
            let _guard = span.enter();
            tracing::warn!(answer = 42, ok = true, "hello {}", "world");
            tracing::error!("boom");
        });
        let lines = lines(&capture);
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        assert_eq!(first["severity"], "WARNING");
        assert_eq!(first["message"], "hello world");
        assert_eq!(first["answer"], 42);
        assert_eq!(
            first["logging.googleapis.com/trace"],
            "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(first["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(first["logging.googleapis.com/trace_sampled"], true);
        assert_eq!(first["span"]["route"], "/x");
        assert!(first.get("time").is_none() && first.get("timestamp").is_none());
        assert_eq!(lines[1]["severity"], "ERROR");
    }

    #[test]
    fn traceparent_and_cloud_trace_context_parse() {
        let t = TraceContext::parse_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
        assert!(
            TraceContext::parse_traceparent(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
            )
            .is_none()
        );
        assert!(
            TraceContext::parse_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
            )
            .is_none()
        );
        assert!(TraceContext::parse_traceparent("garbage").is_none());

        let c = TraceContext::parse_cloud_trace_context("105445aa7843bc8bf206b12000100000/1;o=1")
            .unwrap();
        assert_eq!(c.trace_id, "105445aa7843bc8bf206b12000100000");
        assert_eq!(c.span_id.as_deref(), Some("0000000000000001"));
        assert!(c.sampled);
        let c =
            TraceContext::parse_cloud_trace_context("105445aa7843bc8bf206b12000100000").unwrap();
        assert_eq!(c.span_id, None);
        assert!(!c.sampled);
        assert!(TraceContext::parse_cloud_trace_context("xyz/1;o=1").is_none());
    }
}
