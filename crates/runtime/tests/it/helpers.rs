//! Shared test helpers: configs from pairs, a router exercising every layer and error kind,
//! in-process serving, and spawning the `runtime-hello` binary.

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::Query;
use axum::routing::{get, post};
use bytes::Bytes;
use gcp::callable::Code;
use runtime::{BaseConfig, DeadLetterSink, Env, Error, MemoryDeadLetters, Server};
use serde::Deserialize;
use serde_json::{Value, json};
use testkit::TestApp;

/// Internal text the error handlers put in their anyhow chains; it must never reach a body.
pub(crate) const SECRET_DETAIL: &str = "internal-detail-10.0.0.7:5432";

pub(crate) fn config(pairs: &[(&str, &str)]) -> BaseConfig {
    BaseConfig::load(&Env::from_pairs(pairs.iter().copied())).expect("valid test config")
}

/// A router with one route per behaviour under test.
pub(crate) fn test_routes() -> Router {
    #[derive(Deserialize)]
    struct Sleep {
        ms: u64,
    }
    Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/items/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<String>| async move { id }),
        )
        .route("/small", get(|| async { "tiny" }))
        .route("/big", get(|| async { "0123456789abcdef".repeat(256) }))
        .route(
            "/upload",
            post(|body: Bytes| async move { format!("received {} bytes", body.len()) }),
        )
        .route(
            "/pubsub/push",
            post(|body: Bytes| async move { format!("received {} bytes", body.len()) })
                .layer(runtime::limits::push_endpoint()),
        )
        .route(
            "/sleep",
            get(|Query(q): Query<Sleep>| async move {
                tokio::time::sleep(Duration::from_millis(q.ms)).await;
                "woke"
            }),
        )
        .route(
            "/retry",
            get(|| async {
                Err::<(), _>(Error::retry(
                    anyhow::anyhow!("{SECRET_DETAIL}").context("loading tenant"),
                ))
            }),
        )
        .route(
            "/anyhow",
            get(|| async { Err::<(), Error>(anyhow::anyhow!("{SECRET_DETAIL}").into()) }),
        )
        .route(
            "/rate-limited",
            get(|| async {
                Err::<(), _>(Error::retry_after(
                    anyhow::anyhow!("{SECRET_DETAIL}"),
                    Duration::from_millis(2500),
                ))
            }),
        )
        .route("/permanent", post(permanent))
        .route(
            "/reject",
            get(|| async {
                Err::<(), _>(
                    Error::reject(Code::InvalidArgument, "name must not be empty")
                        .with_details(json!({"field": "name"})),
                )
            }),
        )
        .merge(callable_routes().layer(runtime::callable_style()))
}

fn callable_routes() -> Router {
    Router::new()
        .route("/callable/ok", post(|| async { axum::Json(json!({"result": 1})) }))
        .route(
            "/callable/reject",
            post(|| async {
                Err::<(), _>(Error::reject(Code::PermissionDenied, "not a member of this tenant"))
            }),
        )
        .route(
            "/callable/retry",
            post(|| async { Err::<(), _>(Error::retry(anyhow::anyhow!("{SECRET_DETAIL}"))) }),
        )
        .route("/callable/permanent", post(permanent))
        .route(
            "/callable/upload",
            post(|body: Bytes| async move { format!("received {} bytes", body.len()) })
                .layer(runtime::limits::body_limit(1024)),
        )
}

async fn permanent(body: Bytes) -> Result<(), Error> {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = event["id"].as_str().map(str::to_owned);
    Err(Error::permanent(
        "schema version is not supported",
        anyhow::anyhow!("{SECRET_DETAIL}").context("decoding event"),
        id,
    ))
}

/// A server named `svc` with the given config and sink.
pub(crate) fn server(config: &BaseConfig, sink: Arc<dyn DeadLetterSink>) -> Server {
    Server::new("svc", config, sink)
}

/// Serves `test_routes()` through `runtime` on a loopback port.
pub(crate) async fn spawn(config: &BaseConfig) -> (TestApp, MemoryDeadLetters, Server) {
    runtime::telemetry::init_for_tests();
    let sink = MemoryDeadLetters::new();
    let server = server(config, Arc::new(sink.clone()));
    let app = testkit::spawn_app(server.router(test_routes())).await;
    (app, sink, server)
}

/// Serves `test_routes()` with a specific sink.
pub(crate) async fn spawn_with_sink(config: &BaseConfig, sink: Arc<dyn DeadLetterSink>) -> TestApp {
    runtime::telemetry::init_for_tests();
    testkit::spawn_app(server(config, sink).router(test_routes())).await
}

/// A client that neither decompresses nor adds `Accept-Encoding`.
pub(crate) fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().no_gzip().build().expect("client")
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The `runtime-hello` binary, started with exactly `env` (plus PATH).
pub(crate) fn hello_command(env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_runtime-hello"));
    cmd.env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts `runtime-hello` on a free port in Cloud Run mode and waits for `/healthz`.
pub(crate) async fn start_hello(
    extra_env: &[(&str, &str)],
) -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let port = free_port();
    let port_s = port.to_string();
    let mut env = vec![("PORT", port_s.as_str()), ("HEARTH_LOG_FORMAT", "json")];
    env.extend_from_slice(extra_env);
    // Logs go to stdout (discarded); stderr is not read here, so do not let a pipe fill up.
    let child =
        hello_command(&env).stderr(Stdio::null()).spawn().context("spawning runtime-hello")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_healthy(addr).await?;
    Ok((child, addr))
}

/// Polls `GET /healthz` until it answers 200 (10 s at most).
pub(crate) async fn wait_healthy(addr: SocketAddr) -> anyhow::Result<()> {
    let client = raw_client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "runtime-hello did not become healthy on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Parses a JSON body, with the raw text in the panic message when it is not JSON.
pub(crate) async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
