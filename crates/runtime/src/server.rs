//! Wraps a function's `Router` with the shared layers and serves it on Cloud Run or AWS Lambda.
//!
//! Layers, outermost first: request id (`x-request-id`, generated when absent, echoed back) ->
//! request span + metrics -> CORS allowlist -> gzip (responses of 1 KiB and more) -> request
//! timeout + error mapping -> default body limit -> route-level layers
//! ([`crate::limits::push_endpoint`], [`crate::callable_style`]) -> handler.
//! CORS and compression sit outside the error mapping so error answers carry CORS headers too.
//!
//! Built-in routes: `GET /healthz` and `GET /health` (`ok`, touch nothing), `GET /metrics`,
//! `GET /metrics.json` (only for the callers [`crate::metrics_auth`] admits). A function must not define these paths itself (axum panics on the
//! duplicate at start-up).
//!
//! `/health` exists because Cloud Run reserves some URL paths ending in `z` on a service's
//! public `*.run.app` address: `GET /healthz` there gets Google's own 404 and never reaches the
//! container. External checks (`scripts/deploy.sh`'s verify step) use `/health`; the startup
//! probe, which Cloud Run sends to the container port, and local tools keep `/healthz`.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use http::{HeaderName, HeaderValue, Method, header};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::config::{BaseConfig, Env, Platform};
use crate::dead_letter::{DeadLetterSink, LogDeadLetters};
use crate::error::{self, ErrorContext};
use crate::metrics::{self, Metrics};
use crate::metrics_auth::{self, MetricsAuth};
use crate::telemetry;

/// Responses of at least this many bytes are gzip-compressed when the client accepts gzip.
pub const COMPRESS_MIN_BYTES: u16 = 1024;

/// Wraps a function's routes in the shared layers. A function's builder makes one (see
/// [`run`]); the dead-letter sink is a required argument, so no function can forget to choose
/// where its permanent failures go.
///
/// ```no_run
/// # async fn build(app: axum::Router, sink: std::sync::Arc<dyn runtime::DeadLetterSink>) -> anyhow::Result<axum::Router> {
/// let config = runtime::BaseConfig::local();
/// Ok(runtime::Server::new("onboarding", &config, sink).router(app))
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Server {
    name: Arc<str>,
    config: BaseConfig,
    dead_letters: Arc<dyn DeadLetterSink>,
    metrics: Metrics,
}

impl Server {
    /// `name` identifies the function in logs and dead letters; `dead_letters` is where
    /// permanent failures are recorded before they are acknowledged: `store::DeadLetters` for
    /// a function that consumes redelivered events, [`LogDeadLetters`] (log only) otherwise.
    pub fn new(
        name: impl Into<String>,
        config: &BaseConfig,
        dead_letters: Arc<dyn DeadLetterSink>,
    ) -> Self {
        let name: Arc<str> = Arc::from(name.into());
        Self { metrics: Metrics::for_function(&name), name, config: config.clone(), dead_letters }
    }

    /// The metrics the layered routers of this server record into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The config this server was built with.
    pub fn config(&self) -> &BaseConfig {
        &self.config
    }

    /// `app` plus the built-in routes, wrapped in every layer. Tests mount this in-process.
    pub fn router(&self, app: Router) -> Router {
        let config = &self.config;
        let builtin = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/health", get(|| async { "ok" }))
            .merge(
                Router::new()
                    .route("/metrics", get(metrics::text_handler))
                    .route("/metrics.json", get(metrics::json_handler))
                    .route_layer(from_fn_with_state(
                        MetricsAuth::from_config(config),
                        metrics_auth::require,
                    )),
            )
            .with_state(self.metrics.clone());
        let errors = ErrorContext {
            service: self.name.clone(),
            sink: self.dead_letters.clone(),
            timeout: config.request_timeout,
            default_body_limit: config.body_limit,
        };
        let compress_when = SizeAbove::new(COMPRESS_MIN_BYTES)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE);
        app.merge(builtin)
            .layer(axum::Extension(self.metrics.clone()))
            .layer(DefaultBodyLimit::max(config.body_limit))
            .layer(from_fn_with_state(errors, error::map_errors))
            .layer(CompressionLayer::new().gzip(true).compress_when(compress_when))
            .layer(cors_layer(&config.cors_origins))
            .layer(from_fn_with_state(self.metrics.clone(), telemetry::observe))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
    }

    /// Serves `app` until the platform stops the process: see [`serve_layered`].
    pub async fn serve(self, app: Router) -> anyhow::Result<()> {
        let router = self.router(app);
        serve_layered(&self.name, &self.config, router).await
    }

    /// Serves `app` on `listener` until `signal` completes: see [`serve_layered_until`].
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        app: Router,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router(app);
        serve_layered_until(&self.name, self.config.shutdown_grace, listener, router, signal).await
    }
}

/// Serves an already layered `router` (what a function's builder returns) until the platform
/// stops the process: on Lambda (`AWS_LAMBDA_RUNTIME_API` set) through `lambda_http` (stages
/// stripped, repeated headers joined, deadline-derived timeouts, concurrent invocations, see
/// `lambda.rs`), otherwise on `0.0.0.0:$PORT`. On SIGTERM/SIGINT either way, in-flight work
/// gets up to the grace period to finish, then this returns `Ok`.
pub async fn serve_layered(name: &str, config: &BaseConfig, router: Router) -> anyhow::Result<()> {
    match config.platform() {
        Platform::Lambda => {
            // SIGTERM reaches the process because `lambda::serve` registers an extension.
            let signal = shutdown_signal()?;
            crate::lambda::serve(name, config, router, signal).await
        }
        Platform::CloudRun => {
            // Register the signal handlers before accepting anything.
            let signal = shutdown_signal()?;
            let addr = SocketAddr::from(([0, 0, 0, 0], config.port));
            let listener =
                TcpListener::bind(addr).await.with_context(|| format!("binding {addr} (PORT)"))?;
            serve_layered_until(name, config.shutdown_grace, listener, router, signal).await
        }
    }
}

/// Serves an already layered `router` on `listener` until `signal` completes, then stops
/// accepting and waits up to `grace` for in-flight requests. Returns `Ok` either way (past the
/// grace period the remaining requests are abandoned, as the platform would kill them anyway).
pub async fn serve_layered_until(
    name: &str,
    grace: Duration,
    listener: TcpListener,
    router: Router,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the listener address")?;
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        signal.await;
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            "shutdown signal received; draining in-flight requests"
        );
        let _ = signalled_tx.send(());
    };
    tracing::info!(service = %name, %addr, "listening");
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown).into_future();
    let deadline = async move {
        match signalled_rx.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        result = server => {
            result.context("serving HTTP")?;
            tracing::info!("all requests drained; exiting");
        }
        () = deadline => {
            tracing::warn!(grace_s = grace.as_secs_f64(), "grace period elapsed with requests still in flight; exiting");
        }
    }
    Ok(())
}

/// A function built from its environment by its `build(name, &env)`: the validated config,
/// the state (tests reach the database through it) and the fully layered router that
/// `main.rs` (through [`run`]), devstack and the test harnesses serve.
#[derive(Debug)]
pub struct Built<C, S> {
    pub config: C,
    pub state: S,
    pub router: Router,
}

/// Completes on SIGTERM (what Cloud Run sends) or SIGINT (Ctrl-C). The handlers are registered
/// when this is called, so a signal that arrives before the future is polled is not lost.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    // Origins were validated as header values by BaseConfig; an empty list allows nothing.
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(3600))
}

/// The default service name: Cloud Run's `K_SERVICE`, Lambda's function name,
/// `HEARTH_SERVICE_NAME`, or `hearth`.
fn default_name(config: &BaseConfig) -> String {
    config
        .k_service
        .clone()
        .or_else(|| config.lambda_function_name.clone())
        .or_else(|| config.service_name.clone())
        .unwrap_or_else(|| "hearth".to_owned())
}

/// `app` wrapped in every layer, with the log-only dead-letter sink (tests of routes that
/// consume no events). A function builds its [`Server`] with an explicit sink instead.
pub fn router(app: Router, config: &BaseConfig) -> Router {
    Server::new(default_name(config), config, Arc::new(LogDeadLetters)).router(app)
}

/// Start-up in one call: parse [`BaseConfig`] from the environment (failing fast with a message
/// that names the variable), install telemetry, and log a summary of the config.
pub fn init(service_name: &str) -> anyhow::Result<BaseConfig> {
    init_with(service_name, &Env::from_process())
}

/// [`init`] from an already taken snapshot of the environment.
fn init_with(service_name: &str, env: &Env) -> anyhow::Result<BaseConfig> {
    let config = BaseConfig::load(env)?;
    telemetry::init(service_name, &config)?;
    tracing::info!(service = service_name, config = ?telemetry::config_summary(&config), "starting");
    Ok(config)
}

/// A function's whole `main`: telemetry ([`init`]), one snapshot of the environment, the
/// function's builder (config, state, [`Server`] with its dead-letter sink, routes: the fully
/// layered `Router`), then [`serve_layered`] (Cloud Run with the SIGTERM drain, or Lambda).
///
/// ```no_run
/// # mod hello { pub async fn router(_: &str, _: &runtime::Env) -> anyhow::Result<axum::Router> { Ok(axum::Router::new()) } }
/// #[tokio::main]
/// async fn main() -> anyhow::Result<()> {
///     runtime::run("hello", hello::router).await
/// }
/// ```
pub async fn run<B>(name: &str, build: B) -> anyhow::Result<()>
where
    B: AsyncFnOnce(&str, &Env) -> anyhow::Result<Router>,
{
    let env = Env::from_process();
    let config = init_with(name, &env)?;
    let router = build(name, &env).await?;
    serve_layered(name, &config, router).await
}
