//! A local fake of the AWS Lambda Runtime API (and of the part of the Extensions API a runtime
//! uses to receive SIGTERM), for running a real `runtime` binary in Lambda mode:
//!
//! - `GET /2018-06-01/runtime/invocation/next` long-polls for a queued event and hands it out
//!   with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` record the outcome;
//! - `POST /2018-06-01/runtime/init/error` records an init failure;
//! - `POST /2020-01-01/extension/register` and `GET /2020-01-01/extension/event/next` (which
//!   never answers: an extension subscribed to no events waits until shutdown).
//!
//! It counts how many invocations are out at once (handed out, not yet answered).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use parking_lot::Mutex as SyncMutex;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

/// What the fake captured.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `POST .../invocation/{id}/response`, with when it arrived.
    Response { id: String, body: Value, at: SystemTime },
    /// `POST .../invocation/{id}/error`.
    Error { id: String, body: Value },
    /// `POST .../init/error`.
    InitError,
}

struct Queued {
    id: String,
    event: Value,
    deadline: SystemTime,
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<mpsc::UnboundedReceiver<Queued>>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    delivered: mpsc::UnboundedSender<String>,
    outstanding: Arc<AtomicUsize>,
    max_outstanding: Arc<AtomicUsize>,
    extensions: Arc<SyncMutex<Vec<String>>>,
}

/// A running fake Runtime API.
pub(crate) struct FakeLambda {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub(crate) api: String,
    events: mpsc::UnboundedSender<Queued>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    delivered: mpsc::UnboundedReceiver<String>,
    shared: Shared,
}

impl FakeLambda {
    pub(crate) async fn start() -> Self {
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (outcome_tx, outcome_rx) = mpsc::unbounded_channel();
        let (delivered_tx, delivered_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            events: Arc::new(Mutex::new(event_rx)),
            outcomes: outcome_tx,
            delivered: delivered_tx,
            outstanding: Arc::default(),
            max_outstanding: Arc::default(),
            extensions: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2020-01-01/extension/register", post(register))
            .route("/2020-01-01/extension/event/next", get(extension_next))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeLambda { api, events: event_tx, outcomes: outcome_rx, delivered: delivered_rx, shared }
    }

    /// The environment Lambda gives a function process, pointing at this fake.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.api.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "hello".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "stream".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "group".to_owned()),
        ]
    }

    /// Queues an invocation with a deadline 60 s away.
    pub(crate) fn invoke(&self, id: &str, event: Value) {
        self.invoke_by(id, event, SystemTime::now() + Duration::from_secs(60));
    }

    /// Queues an invocation with the given deadline.
    pub(crate) fn invoke_by(&self, id: &str, event: Value, deadline: SystemTime) {
        self.events.send(Queued { id: id.to_owned(), event, deadline }).unwrap();
    }

    /// The next outcome, failing the test after `within`.
    pub(crate) async fn outcome(&mut self, within: Duration) -> Outcome {
        tokio::time::timeout(within, self.outcomes.recv())
            .await
            .expect("the function answered in time")
            .expect("the fake is running")
    }

    /// The answer to invocation `id` (panics on an error outcome or another id).
    pub(crate) async fn response(&mut self, id: &str) -> Value {
        match self.outcome(Duration::from_secs(20)).await {
            Outcome::Response { id: got, body, .. } => {
                assert_eq!(got, id, "answer for another invocation");
                body
            }
            other => panic!("expected the response to {id}, got {other:?}"),
        }
    }

    /// Waits until the function has taken invocation `id` off the queue.
    pub(crate) async fn delivered(&mut self, id: &str) {
        loop {
            let got = tokio::time::timeout(Duration::from_secs(20), self.delivered.recv())
                .await
                .expect("the function asked for the invocation in time")
                .expect("the fake is running");
            if got == id {
                return;
            }
        }
    }

    /// The most invocations that were out at once.
    pub(crate) fn max_outstanding(&self) -> usize {
        self.shared.max_outstanding.load(Ordering::SeqCst)
    }

    /// The names of the extensions that registered.
    pub(crate) fn extensions(&self) -> Vec<String> {
        self.shared.extensions.lock().clone()
    }
}

fn epoch_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

async fn next(State(rt): State<Shared>) -> impl IntoResponse {
    // Long poll, as the real API does: wait for the test to queue an event.
    let Some(Queued { id, event, deadline }) = rt.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let now_out = rt.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
    rt.max_outstanding.fetch_max(now_out, Ordering::SeqCst);
    let _ = rt.delivered.send(id.clone());
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&epoch_ms(deadline).to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:hello"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, event.to_string())
}

fn json_or_text(body: String) -> Value {
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

async fn response(State(rt): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    rt.outstanding.fetch_sub(1, Ordering::SeqCst);
    let _ =
        rt.outcomes.send(Outcome::Response { id, body: json_or_text(body), at: SystemTime::now() });
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    rt.outstanding.fetch_sub(1, Ordering::SeqCst);
    let _ = rt.outcomes.send(Outcome::Error { id, body: json_or_text(body) });
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Shared>) -> StatusCode {
    let _ = rt.outcomes.send(Outcome::InitError);
    StatusCode::ACCEPTED
}

async fn register(State(rt): State<Shared>, headers: HeaderMap) -> impl IntoResponse {
    let name = headers
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    rt.extensions.lock().push(name);
    (
        StatusCode::OK,
        [("lambda-extension-identifier", "7d1e2f0a-0000-4000-8000-000000000001")],
        axum::Json(
            json!({"functionName": "hello", "functionVersion": "$LATEST", "handler": "bootstrap"}),
        ),
    )
}

async fn extension_next() -> StatusCode {
    // An extension subscribed to no events waits here until the environment shuts down.
    std::future::pending::<()>().await;
    StatusCode::OK
}
