//! feed-fanout: writes a vendor's new post into its followers' feeds and removes deleted or
//! deactivated posts from every feed (hybrid fan-out: popular vendors are merged at read time instead).
//!
//! - `POST /`: Eventarc Firestore events on `posts/{postId}` (binary-mode CloudEvent,
//!   `DocumentEventData`, decoded by `gcp::eventarc`), Google OIDC-authenticated, deduplicated
//!   on the CloudEvent id through the idempotency ledger. The event only triggers: what is done
//!   follows the post as it is now, so out-of-order deliveries converge.
//! - `POST /pubsub/fanout-tasks`: continuation tasks (`domain::messages::FanoutTask`), each a
//!   cursor range of the vendor's followers, each within the time budget.
//!
//! This crate only wires: the rules are `domain::feed`, the reads and writes `store::feed`,
//! the wire formats `gcp`, publishing `bus`, errors become responses in `runtime`.

mod config;
mod event;
mod tasks;
mod work;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::post;
use bus::{Bus, BusConfig};
use domain::feed::FeedPolicy;
use runtime::auth::PushAuth;
use runtime::{BaseConfig, Built, DeadLetterSink, Env, Server};
use store::feed::Fanout;
use store::{Db, DeadLetters, Ledger};

pub use config::{Config, DEFAULT_LEASE, feed_policy};
pub use event::SCOPE as EVENT_SCOPE;
pub use tasks::SCOPE as TASK_SCOPE;

/// Shared, cheap-to-clone state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    db: Db,
    ledger: Ledger,
    dead_letters: DeadLetters,
    push_auth: PushAuth,
    bus: Bus,
    fanout: Fanout,
    policy: FeedPolicy,
    lease: Duration,
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
            ledger: Ledger::new(&db),
            dead_letters: DeadLetters::new(&db),
            fanout: Fanout::new(&db, config.policy, config.ramp),
            db,
            push_auth: config.push_auth.clone(),
            bus,
            policy: config.policy,
            lease: config.lease,
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

/// The function built from `env`: config, state, and its routes inside a [`Server`] (Firestore dead
/// letters, `dead_letters/{id}`: its events and tasks are redelivered until acknowledged).
/// `main.rs` (through `runtime::run`), devstack's registry and the test harnesses all build it
/// here.
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
    Router::new()
        .route("/", post(event::post_event).layer(runtime::limits::push_endpoint()))
        .route(
            "/pubsub/fanout-tasks",
            post(tasks::fanout_tasks).layer(runtime::limits::push_endpoint()),
        )
        .with_state(state)
}
