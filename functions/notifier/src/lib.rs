//! notifier: push (FCM HTTP v1) and in-app notifications.
//!
//! - `POST /pubsub/order-paid`, `/pubsub/order-refunded`: the buyer of the order.
//! - `POST /pubsub/stream-alerts`: the operators (`HEARTH_NOTIFY_OPERATORS`).
//! - `POST /posts`: Eventarc, `posts/{postId}` created: the vendor's followers, one page per
//!   `notify-tasks` continuation (`POST /pubsub/notify-tasks`).
//! - `POST /followers`: Eventarc, `followers/{docId}` created: the vendor followed (a burst
//!   within a collapse window is one notification).
//! - `POST /signals`: Eventarc, `users/{uid}/signals/{signalId}` created by the pulse: the
//!   user whose strategy opened or closed a shadow trade.
//! - `POST /jobs/deliver-deferred`: Cloud Scheduler: pushes deferred by quiet hours, or left
//!   pending by a throttled FCM or a crash, once their time has come; then the reads owners
//!   marked, counted off the unread counters.
//!
//! Every delivery is deduplicated through the ledger, and every inbox entry has an id derived
//! from its event, created only if absent: a redelivered event or a retried page sends nothing
//! twice. This crate only wires: the rules are `domain::notify`, Firestore `store::notify`, FCM
//! `providers::fcm`, errors become responses in `runtime`.

mod config;
mod deliver;
mod eventarc;
mod events;
mod jobs;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::post;
use bus::{Bus, BusConfig};
use providers::fcm::{FcmClient, FcmPolicy};
use runtime::auth::PushAuth;
use runtime::{BaseConfig, Built, DeadLetterSink, Env, Server};
use store::{Db, DeadLetters, Ledger};

pub use config::{Config, DEFAULT_LEASE, FcmTarget};
pub use tasks::SCOPE as PAGE_SCOPE;

/// Shared, cheap-to-clone state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    db: Db,
    ledger: Ledger,
    dead_letters: DeadLetters,
    push_auth: PushAuth,
    bus: Bus,
    fcm: FcmClient,
    send_pacer: deliver::SendPacer,
    write_pacer: deliver::WritePacer,
    config: Arc<Config>,
    lease: Duration,
    inbox_ttl: Duration,
    push_ttl: Duration,
    send_concurrency: usize,
}

impl AppState {
    /// Builds the state (Firestore connects on first use; the Pub/Sub client and the FCM client
    /// are set up here).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::new(config.db.clone());
        let project = config.db.project_id.clone();
        let bus =
            Bus::connect(BusConfig::new(project.clone(), config.base.pubsub_emulator_host.clone()))
                .await
                .context("setting up the Pub/Sub publisher")?;
        let fcm = match &config.fcm {
            FcmTarget::Production => FcmClient::production(&project, FcmPolicy::default()),
            FcmTarget::Local(base) => FcmClient::local(base, &project, FcmPolicy::default()),
        }
        .context("setting up the FCM client")?;
        Ok(Self {
            ledger: Ledger::new(&db),
            dead_letters: DeadLetters::new(&db),
            db,
            push_auth: config.push_auth.clone(),
            bus,
            fcm,
            send_pacer: deliver::SendPacer::new(config.pacing.per_instance()),
            write_pacer: deliver::WritePacer::new(config.ramp),
            lease: config.lease,
            inbox_ttl: config.inbox_ttl,
            push_ttl: config.push_ttl,
            send_concurrency: config.send_concurrency,
            config: Arc::new(config.clone()),
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
}

impl FromRef<AppState> for PushAuth {
    fn from_ref(state: &AppState) -> Self {
        state.push_auth.clone()
    }
}

/// The function built from `env`: config, state, and its routes inside a [`Server`] (Firestore
/// dead letters). `main.rs`, devstack's registry and the tests all build it here.
pub async fn build(name: &str, env: &Env) -> anyhow::Result<Built<Config, AppState>> {
    let config = Config::load(BaseConfig::load(env)?, env)?;
    let state = AppState::build(&config).await?;
    let router = Server::new(name, &config.base, state.dead_letters()).router(app(state.clone()));
    Ok(Built { config, state, router })
}

/// [`build`]'s fully layered router, what `main.rs` and devstack serve.
pub async fn router(name: &str, env: &Env) -> anyhow::Result<Router> {
    Ok(build(name, env).await?.router)
}

/// The function's routes (without the runtime layers: wrap with `runtime::Server`).
pub fn app(state: AppState) -> Router {
    let push = runtime::limits::push_endpoint;
    Router::new()
        .route("/pubsub/order-paid", post(events::order_paid).layer(push()))
        .route("/pubsub/order-refunded", post(events::order_refunded).layer(push()))
        .route("/pubsub/stream-alerts", post(events::stream_alerts).layer(push()))
        .route("/pubsub/notify-tasks", post(tasks::notify_tasks).layer(push()))
        .route("/posts", post(eventarc::post_created).layer(push()))
        .route("/followers", post(eventarc::follower_created).layer(push()))
        .route("/signals", post(eventarc::signal_created).layer(push()))
        .route("/jobs/deliver-deferred", post(jobs::deliver_deferred))
        .with_state(state)
}
