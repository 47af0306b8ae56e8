//! Cloud Logging JSON through the real router: one span per request with route, status and
//! latency; the trace id from `traceparent` / `X-Cloud-Trace-Context`; internal errors logged.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use parking_lot::Mutex;
use runtime::MemoryDeadLetters;
use serde_json::Value;
use tower::ServiceExt as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::helpers::{SECRET_DETAIL, config, server, test_routes};

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
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

async fn call(router: &axum::Router, path: &str, header: (&str, &str)) -> u16 {
    let request = http::Request::get(path).header(header.0, header.1).body(Body::empty()).unwrap();
    router.clone().oneshot(request).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn request_logs_carry_route_status_latency_and_trace() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(runtime::telemetry::json_layer(Some("proj-1".to_owned()), capture.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let router = server(&config(&[]), Arc::new(MemoryDeadLetters::new())).router(test_routes());
    let status = call(
        &router,
        "/retry",
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    )
    .await;
    assert_eq!(status, 503);
    let status = call(
        &router,
        "/items/7",
        ("x-cloud-trace-context", "105445aa7843bc8bf206b12000100000/42;o=0"),
    )
    .await;
    assert_eq!(status, 200);

    let lines = capture.lines();
    let warning =
        lines.iter().find(|l| l["severity"] == "WARNING").expect("retry logged as WARNING");
    assert_eq!(warning["message"], "request failed; asking the sender to retry");
    assert!(
        warning["error.chain"].as_str().unwrap().contains(SECRET_DETAIL),
        "the internal chain is logged: {warning}"
    );
    assert_eq!(
        warning["logging.googleapis.com/trace"],
        "projects/proj-1/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(warning["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
    assert_eq!(warning["logging.googleapis.com/trace_sampled"], true);

    let completed: Vec<&Value> =
        lines.iter().filter(|l| l["message"] == "request completed").collect();
    assert_eq!(completed.len(), 2, "{lines:#?}");
    let first = completed[0];
    assert_eq!(first["severity"], "INFO");
    assert_eq!(first["status"], 503);
    assert!(first["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(first["span"]["route"], "/retry");
    assert_eq!(first["span"]["method"], "GET");
    assert_eq!(first["span"]["status"], 503);
    assert_eq!(first["span"]["request_id"].as_str().unwrap().len(), 36);

    let second = completed[1];
    assert_eq!(second["span"]["route"], "/items/{id}");
    assert_eq!(
        second["logging.googleapis.com/trace"],
        "projects/proj-1/traces/105445aa7843bc8bf206b12000100000"
    );
    assert_eq!(second["logging.googleapis.com/spanId"], "000000000000002a");
    assert_eq!(second["logging.googleapis.com/trace_sampled"], false);
    for line in &lines {
        assert!(line.get("time").is_none(), "no local timestamps: {line}");
    }
}
