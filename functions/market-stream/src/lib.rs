//! market-stream: turns market-data candles into features and triple-barrier labels, as
//! Eventarc delivers every write of `candles/{instrument}/{granularity}/{ts}`, and watches the
//! streams' health.
//!
//! - `POST /`: Eventarc Firestore events on candle documents (binary-mode CloudEvent, Google
//!   OIDC), see [`event`].
//! - `POST /replay`: operators (Google OIDC) reprocess a dead-lettered candle as it is now.
//! - `GET /dead-letters`: operators list this function's dead letters.
//! - `POST /jobs/stream-health`: Cloud Scheduler marks streams silent or recovered, one
//!   `stream-alerts` message per transition.
//! - `GET /health/streams`: every stream's health; 503 while a critical stream is silent.
//! - `GET /metrics/streams`: per-stream counters and latency (readers of `/metrics`).
//!
//! This crate only wires: the rules are `domain::market`, the reads and writes `store::market`,
//! the wire formats `gcp`, publishing `bus`, errors become responses in `runtime`.

mod config;
mod event;
mod health;
mod metrics;
mod replay;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use bus::{Bus, BusConfig};
use domain::market::FlowControl;
use parking_lot::Mutex;
use runtime::auth::PushAuth;
use runtime::{BaseConfig, Built, DeadLetterSink, Env, Server};
use store::market::Market;
use store::{Db, DeadLetters, Ledger};

pub use config::{
    Config, DEFAULT_GRANULARITIES, DEFAULT_INSTRUMENTS, DEFAULT_LEASE, DEFAULT_PRIORITIES,
};
pub use event::{SCOPE as EVENT_SCOPE, dead_letter_id};
pub use health::JOB as HEALTH_JOB;
pub use metrics::StreamMetrics;

/// Shared, cheap-to-clone state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    config: Arc<Config>,
    /// The service name (dead letters are `{service}-{event id}`, their source
    /// `{service} POST /`).
    service: Arc<str>,
    db: Db,
    ledger: Ledger,
    dead_letters: DeadLetters,
    market: Market,
    bus: Bus,
    flow: Arc<Mutex<FlowControl>>,
    /// One lock per stream: an instance applies one change of a stream at a time (the
    /// transactions would otherwise contend on the stream's health document; across instances
    /// they still serialize the changes).
    streams: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    metrics: StreamMetrics,
}

impl AppState {
    /// Builds the state (Firestore connects on first use; the Pub/Sub client is set up here).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::new(config.db.clone());
        let project = config.db.project_id.clone();
        let bus = Bus::connect(BusConfig::new(project, config.base.pubsub_emulator_host.clone()))
            .await
            .context("setting up the Pub/Sub publisher")?;
        Ok(Self {
            config: Arc::new(config.clone()),
            service: Arc::from("market-stream"),
            ledger: Ledger::new(&db),
            dead_letters: DeadLetters::new(&db),
            market: Market::new(&db),
            db,
            bus,
            flow: Arc::new(Mutex::new(FlowControl::new(config.budgets))),
            streams: Arc::default(),
            metrics: StreamMetrics::default(),
        })
    }

    /// Where permanent failures are recorded: `dead_letters/{id}` in Firestore.
    pub fn dead_letters(&self) -> Arc<dyn DeadLetterSink> {
        Arc::new(self.dead_letters.clone())
    }

    /// The Firestore handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The lock of one stream in this instance.
    fn stream_lock(&self, stream: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.streams.lock().entry(stream.to_owned()).or_default().clone()
    }

    /// The per-stream metrics of this instance.
    pub fn metrics(&self) -> &StreamMetrics {
        &self.metrics
    }
}

impl FromRef<AppState> for PushAuth {
    fn from_ref(state: &AppState) -> Self {
        state.config.push_auth.clone()
    }
}

/// The function built from `env`: config, state, and its routes inside a [`Server`] (Firestore
/// dead letters, `dead_letters/{id}`: candle events are redelivered until acknowledged, and
/// operators list and replay them). `main.rs` (through `runtime::run`), devstack's registry and
/// the test harnesses all build it here.
pub async fn build(name: &str, env: &Env) -> anyhow::Result<Built<Config, AppState>> {
    let config = Config::load(BaseConfig::load(env)?, env)?;
    let mut state = AppState::build(&config).await?;
    state.service = Arc::from(name);
    let router = Server::new(name, &config.base, state.dead_letters()).router(app(state.clone()));
    Ok(Built { config, state, router })
}

/// [`build`]'s fully layered router, what `main.rs` and devstack serve.
pub async fn router(name: &str, env: &Env) -> anyhow::Result<Router> {
    Ok(build(name, env).await?.router)
}

/// The function's routes (without the runtime layers: wrap with `runtime::Server`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", post(event::candle_event).layer(runtime::limits::push_endpoint()))
        .route("/replay", post(replay::replay))
        .route("/dead-letters", get(replay::list))
        .route("/jobs/{job}", post(health::run_job))
        .route("/health/streams", get(health::streams))
        .route("/metrics/streams", get(metrics::serve))
        .with_state(state)
}
