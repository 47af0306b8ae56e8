//! Per-stream metrics of this instance, at `GET /metrics/streams` for the readers of `/metrics`
//! (`HEARTH_METRICS_ALLOWED_EMAILS`): candle changes processed (and per second since the first),
//! unchanged rewrites, write-to-processed latency (from the candle document's update time;
//! p50/p99), backpressure answers, dead letters, silence and recovery alerts. The request-level
//! counters and the Firestore operations per route stay on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use chrono::TimeDelta;
use domain::messages::StreamAlertKind;
use hdrhistogram::Histogram;
use http::HeaderMap;
use parking_lot::Mutex;
use runtime::Error;
use serde_json::{Value, json};
use store::market::Applied;

use crate::AppState;

#[derive(Debug)]
struct Stats {
    first: Instant,
    processed: u64,
    unchanged: u64,
    labels: u64,
    backpressure: u64,
    dead_letters: u64,
    silent_alerts: u64,
    recovered_alerts: u64,
    latency_ms: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            first: Instant::now(),
            processed: 0,
            unchanged: 0,
            labels: 0,
            backpressure: 0,
            dead_letters: 0,
            silent_alerts: 0,
            recovered_alerts: 0,
            // Bounds and precision are constants that `new_with_bounds` accepts.
            latency_ms: Histogram::new_with_bounds(1, 3_600_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

/// The counters, per stream id. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct StreamMetrics {
    inner: Arc<Mutex<BTreeMap<String, Stats>>>,
}

impl StreamMetrics {
    fn with(&self, stream: &str, f: impl FnOnce(&mut Stats)) {
        f(self.inner.lock().entry(stream.to_owned()).or_default());
    }

    pub(crate) fn processed(&self, stream: &str, applied: &Applied, latency: TimeDelta) {
        self.with(stream, |s| {
            if applied.unchanged {
                s.unchanged += 1;
                return;
            }
            s.processed += 1;
            s.labels += applied.labels_resolved as u64;
            let ms = u64::try_from(latency.num_milliseconds()).unwrap_or(0).clamp(1, 3_600_000);
            let _ = s.latency_ms.record(ms);
        });
    }

    pub(crate) fn backpressure(&self, stream: &str) {
        self.with(stream, |s| s.backpressure += 1);
    }

    pub(crate) fn dead_letter(&self, stream: &str) {
        self.with(stream, |s| s.dead_letters += 1);
    }

    pub(crate) fn alert(&self, stream: &str, kind: StreamAlertKind) {
        self.with(stream, |s| match kind {
            StreamAlertKind::Silent => s.silent_alerts += 1,
            StreamAlertKind::Recovered => s.recovered_alerts += 1,
        });
    }

    /// The JSON served at `GET /metrics/streams`.
    pub fn render(&self) -> Value {
        let inner = self.inner.lock();
        let streams: BTreeMap<&String, Value> = inner
            .iter()
            .map(|(id, s)| {
                let secs = s.first.elapsed().as_secs_f64().max(1e-3);
                let quantile =
                    |q| (!s.latency_ms.is_empty()).then(|| s.latency_ms.value_at_quantile(q));
                (
                    id,
                    json!({
                        "processed": s.processed,
                        "processed_per_sec": s.processed as f64 / secs,
                        "unchanged": s.unchanged,
                        "labels_resolved": s.labels,
                        "backpressure": s.backpressure,
                        "dead_letters": s.dead_letters,
                        "silent_alerts": s.silent_alerts,
                        "recovered_alerts": s.recovered_alerts,
                        "latency_ms": {"p50": quantile(0.5), "p99": quantile(0.99)},
                    }),
                )
            })
            .collect();
        json!({"streams": streams})
    }

    /// A stream's counter by name (tests): `processed`, `backpressure`, `dead_letters`, ...
    pub fn count(&self, stream: &str, what: &str) -> u64 {
        self.render()["streams"][stream][what].as_u64().unwrap_or(0)
    }
}

pub(crate) async fn serve(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    state.config.metrics_auth.check(&headers).await?;
    Ok(Json(state.metrics.render()))
}
