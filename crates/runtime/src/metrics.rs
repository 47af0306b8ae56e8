//! Request metrics: `GET /metrics` (Prometheus/OpenMetrics text) and `GET /metrics.json`
//! (per route: count, error rate, p50/p95/p99 latency in milliseconds).
//!
//! Text exposition comes from `prometheus-client` (the official Rust client), percentiles from an
//! HDR histogram per route (`hdrhistogram`, 2 significant digits, about 13 KB per route). Each
//! [`Metrics`] owns its registry: nothing is global, so in-process tests do not bleed into each
//! other. Labels are the matched route pattern (never the raw path, which would explode the
//! cardinality), the method and the status class. An *error* is a 5xx answer or a permanent
//! failure that was dead-lettered and acknowledged with 200.
//!
//! Firestore operations per request ([`crate::ops`]):
//! `hearth_firestore_ops_total{function, route, kind}` (`read`, `write`, `delete`,
//! `query_result`, and `round_trip`: one per Firestore RPC, not billed); the tenant goes on the request's log line instead of a label.
//!
//! Batch work (the scheduled cleanup jobs) adds its own counts with [`Metrics::record_job`]:
//! `hearth_job_runs_total{job, remaining}` and `hearth_job_documents_total{job, outcome}`
//! (`examined` / `changed`). Handlers reach the service's `Metrics` as an
//! `axum::Extension<Metrics>`, which `Server::router` installs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use hdrhistogram::Histogram as Hdr;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde_json::{Value, json};

/// Content type of the `/metrics` answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: from 1 ms to 60 s.
const BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];
/// HDR range in microseconds: 1 µs to one hour.
const HDR_MAX_MICROS: u64 = 3_600_000_000;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    method: String,
    route: String,
    status_class: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobRunLabels {
    job: String,
    /// "true" when the run stopped on its budget with work left.
    remaining: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobDocLabels {
    job: String,
    /// "examined" or "changed".
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpsLabels {
    function: String,
    route: String,
    /// `read`, `write`, `delete`, `query_result` or `round_trip` ([`crate::ops::OpKind`]).
    kind: String,
}

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The metrics of one service (cheap to clone; clones share the data).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: HistogramFamily,
    job_runs: Family<JobRunLabels, Counter>,
    job_documents: Family<JobDocLabels, Counter>,
    firestore_ops: Family<OpsLabels, Counter>,
    function: String,
    ops_by_route: Mutex<BTreeMap<String, crate::ops::OpsSnapshot>>,
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
}

struct RouteStats {
    count: u64,
    errors: u64,
    latency_micros: Hdr<u32>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("routes", &self.inner.routes.lock().len()).finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::for_function("hearth")
    }

    /// The metrics of function `function` (the `function` label of per-request Firestore
    /// operations).
    pub fn for_function(function: &str) -> Self {
        let mut registry = Registry::with_prefix("hearth");
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_errors",
            "HTTP requests answered with 5xx or dead-lettered after a permanent failure",
            errors.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from request received to response headers",
            Unit::Seconds,
            latency.clone(),
        );
        let job_runs = Family::<JobRunLabels, Counter>::default();
        let job_documents = Family::<JobDocLabels, Counter>::default();
        registry.register("job_runs", "Batch job runs finished", job_runs.clone());
        registry.register(
            "job_documents",
            "Documents a batch job examined or changed",
            job_documents.clone(),
        );
        let firestore_ops = Family::<OpsLabels, Counter>::default();
        registry.register(
            "firestore_ops",
            "Firestore document reads, writes, deletes, query results and RPC round trips, per route",
            firestore_ops.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                errors,
                latency,
                job_runs,
                job_documents,
                firestore_ops,
                function: function.to_owned(),
                ops_by_route: Mutex::new(BTreeMap::new()),
                routes: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Records one answered request.
    pub fn record(
        &self,
        method: &str,
        route: &str,
        status: u16,
        dead_lettered: bool,
        elapsed: Duration,
    ) {
        let error = status >= 500 || dead_lettered;
        let labels = Labels {
            method: method.to_owned(),
            route: route.to_owned(),
            status_class: format!("{}xx", status / 100),
        };
        self.inner.requests.get_or_create(&labels).inc();
        if error {
            self.inner.errors.get_or_create(&labels).inc();
        }
        self.inner.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());

        let micros =
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, HDR_MAX_MICROS);
        let mut routes = self.inner.routes.lock();
        let stats = routes.entry((labels.route, labels.method)).or_insert_with(|| RouteStats {
            count: 0,
            errors: 0,
            latency_micros: Hdr::new_with_bounds(1, HDR_MAX_MICROS, 2)
                .unwrap_or_else(|e| unreachable!("constant HDR bounds are valid: {e}")),
        });
        stats.count += 1;
        stats.errors += u64::from(error);
        stats.latency_micros.saturating_record(micros);
    }

    /// Adds one request's Firestore operations on `route`.
    pub fn record_firestore_ops(&self, route: &str, ops: &crate::ops::OpsSnapshot) {
        {
            let mut by_route = self.inner.ops_by_route.lock();
            let total = by_route.entry(route.to_owned()).or_default();
            total.reads += ops.reads;
            total.writes += ops.writes;
            total.deletes += ops.deletes;
            total.query_results += ops.query_results;
            total.round_trips += ops.round_trips;
        }
        for kind in crate::ops::OpKind::ALL {
            let n = ops.get(kind);
            if n > 0 {
                let labels = OpsLabels {
                    function: self.inner.function.clone(),
                    route: route.to_owned(),
                    kind: kind.as_str().to_owned(),
                };
                self.inner.firestore_ops.get_or_create(&labels).inc_by(n);
            }
        }
    }

    /// The Firestore operations of every request on `route` so far.
    pub fn firestore_ops(&self, route: &str) -> crate::ops::OpsSnapshot {
        self.inner.ops_by_route.lock().get(route).copied().unwrap_or_default()
    }

    /// Records one finished run of batch job `job`: documents examined and changed, and whether
    /// work was left for the next run.
    pub fn record_job(&self, job: &str, examined: u64, changed: u64, remaining: bool) {
        let run = JobRunLabels { job: job.to_owned(), remaining: remaining.to_string() };
        self.inner.job_runs.get_or_create(&run).inc();
        for (outcome, n) in [("examined", examined), ("changed", changed)] {
            let labels = JobDocLabels { job: job.to_owned(), outcome: outcome.to_owned() };
            self.inner.job_documents.get_or_create(&labels).inc_by(n);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// Per route and method: count, errors, error rate and latency percentiles in milliseconds.
    pub fn render_json(&self) -> Value {
        let routes = self.inner.routes.lock();
        let ms = |h: &Hdr<u32>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let list: Vec<Value> = routes
            .iter()
            .map(|((route, method), s)| {
                json!({
                    "route": route,
                    "method": method,
                    "count": s.count,
                    "errors": s.errors,
                    "error_rate": if s.count == 0 { 0.0 } else { s.errors as f64 / s.count as f64 },
                    "latency_ms": {
                        "p50": ms(&s.latency_micros, 0.50),
                        "p95": ms(&s.latency_micros, 0.95),
                        "p99": ms(&s.latency_micros, 0.99),
                        "max": s.latency_micros.max() as f64 / 1000.0,
                    },
                })
            })
            .collect();
        json!({ "routes": list })
    }
}

/// `GET /metrics`.
pub(crate) async fn text_handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(http::header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], metrics.render_text())
}

/// `GET /metrics.json`.
pub(crate) async fn json_handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    axum::Json(metrics.render_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_percentiles_per_route() {
        let m = Metrics::new();
        for ms in 1..=100 {
            m.record("GET", "/a", 200, false, Duration::from_millis(ms));
        }
        m.record("GET", "/a", 503, false, Duration::from_millis(5));
        m.record("POST", "/b", 200, true, Duration::from_millis(5));

        let json = m.render_json();
        let a = &json["routes"][0];
        assert_eq!(a["route"], "/a");
        assert_eq!(a["count"], 101);
        assert_eq!(a["errors"], 1);
        let p50 = a["latency_ms"]["p50"].as_f64().unwrap();
        let p99 = a["latency_ms"]["p99"].as_f64().unwrap();
        assert!((49.0..=52.0).contains(&p50), "{p50}");
        assert!((98.0..=101.0).contains(&p99), "{p99}");
        assert_eq!(json["routes"][1]["errors"], 1, "dead-lettered counts as an error");

        let text = m.render_text();
        assert!(
            text.contains(
                r#"hearth_http_requests_total{method="GET",route="/a",status_class="2xx"} 100"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"hearth_http_request_errors_total{method="GET",route="/a",status_class="5xx"} 1"#
        ));
        assert!(text.contains("hearth_http_request_duration_seconds_bucket"));
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn job_runs_add_up_per_job() {
        let m = Metrics::new();
        m.record_job("prune-idempotency", 300, 298, true);
        m.record_job("prune-idempotency", 12, 12, false);
        let text = m.render_text();
        for line in [
            r#"hearth_job_documents_total{job="prune-idempotency",outcome="examined"} 312"#,
            r#"hearth_job_documents_total{job="prune-idempotency",outcome="changed"} 310"#,
            r#"hearth_job_runs_total{job="prune-idempotency",remaining="true"} 1"#,
            r#"hearth_job_runs_total{job="prune-idempotency",remaining="false"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
