//! `runtime-hello`: a tiny service built on `runtime`, used by the integration tests (SIGTERM
//! drain, Cloud Run vs Lambda proof) and by `scripts/bench-startup.sh` (start-up time, idle RSS).
//!
//! Run with `PORT=8080 cargo run -p runtime --bin runtime-hello`, then
//! `curl localhost:8080/hello?name=you`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use gcp::callable::Code;
use runtime::Error;
use serde::Deserialize;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("runtime-hello", router).await
}

/// The builder, as a function's `lib.rs` has it: config, the log-only dead-letter sink, routes.
async fn router(name: &str, env: &runtime::Env) -> anyhow::Result<Router> {
    let config = runtime::BaseConfig::load(env)?;
    Ok(runtime::Server::new(name, &config, Arc::new(runtime::LogDeadLetters)).router(app()))
}

fn app() -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/echo", post(echo))
        .route("/bytes", post(bytes))
        .route("/slow", get(slow))
        .route("/big", get(big))
        .route("/pubsub/push", post(push).layer(runtime::limits::push_endpoint()))
        .route("/fail/retry", get(fail_retry))
        .route("/fail/rate-limited", get(fail_rate_limited))
        .route("/fail/reject", get(fail_reject))
        .route("/fail/permanent", post(fail_permanent))
        .route("/callable/greet", post(greet).layer(runtime::callable_style()))
}

#[derive(Deserialize)]
struct Name {
    name: Option<String>,
}

async fn hello(Query(q): Query<Name>) -> impl axum::response::IntoResponse {
    let name = q.name.unwrap_or_else(|| "world".to_owned());
    ([("x-hello", "1")], Json(json!({ "message": format!("hello, {name}") })))
}

async fn echo(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({ "echo": body }))
}

/// Binary in, binary out (base64 on both sides of Lambda).
async fn bytes(body: Bytes) -> impl axum::response::IntoResponse {
    let mut reversed = body.to_vec();
    reversed.reverse();
    ([(http::header::CONTENT_TYPE, "application/octet-stream")], reversed)
}

#[derive(Deserialize)]
struct Sleep {
    ms: Option<u64>,
}

async fn slow(Query(q): Query<Sleep>) -> String {
    let ms = q.ms.unwrap_or(2000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms")
}

async fn big() -> String {
    "hearth ".repeat(1024)
}

async fn push(body: Bytes) -> String {
    format!("received {} bytes", body.len())
}

async fn fail_retry() -> Result<&'static str, Error> {
    Err(Error::retry(anyhow::anyhow!("database connection reset (internal detail: 10.0.0.7:5432)")))
}

async fn fail_rate_limited() -> Result<&'static str, Error> {
    Err(Error::retry_after(anyhow::anyhow!("upstream quota exhausted"), Duration::from_secs(7)))
}

async fn fail_reject() -> Result<&'static str, Error> {
    Err(Error::reject(Code::InvalidArgument, "name must not be empty")
        .with_details(json!({"field": "name"})))
}

async fn fail_permanent(body: Bytes) -> Result<&'static str, Error> {
    Err(Error::permanent(
        "payload can never be processed",
        anyhow::anyhow!("unknown schema version in {} bytes", body.len()),
        Some("evt-1".to_owned()),
    ))
}

async fn greet(body: Bytes) -> Result<Json<Value>, Error> {
    #[derive(Deserialize)]
    struct Args {
        name: String,
    }
    let args: Args = gcp::callable::parse_request(&body)
        .map_err(|e| Error::reject(Code::InvalidArgument, format!("invalid request: {e}")))?;
    if args.name.is_empty() {
        return Err(Error::reject(Code::InvalidArgument, "name must not be empty"));
    }
    Ok(Json(json!({ "result": format!("hello, {}", args.name) })))
}
