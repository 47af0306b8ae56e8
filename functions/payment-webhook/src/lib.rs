//! payment-webhook: the providers' door into the system. Verifies what can be verified, dedupes
//! by the provider's event id, forwards a `PaymentEvent` to `payment-events` (ordering key: the
//! order id) and answers at once; the payment-processor does the work.
//!
//! - `POST /stripe`: `Stripe-Signature` over the raw body with every active secret, 300 s
//!   tolerance (`providers::stripe`); uninteresting event types are acknowledged and ignored.
//! - `GET|POST /pesapal`: an unsigned IPN, forwarded as a hint only (the processor asks Pesapal
//!   for the status); answered in Pesapal's acknowledgement shape. Limited per source, and
//!   forwarded only when the order it names holds a Pesapal payment with its tracking id.
//!
//! Forged, stale, malformed and oversized requests are refused before anything is claimed or
//! published. Dedupe goes through the idempotency ledger (scopes `webhook:stripe:v2`,
//! `webhook:pesapal:v2`), shared with the api's Idempotency-Key records and Pub/Sub message ids,
//! in its leased mode: one create per event (`forward.rs` says why that is enough).

mod config;
mod forward;
mod pesapal;
mod sources;
mod stripe;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use bus::{Bus, BusConfig};
use runtime::{BaseConfig, Built, Env, LogDeadLetters, Server};
use secrecy::SecretString;
use store::payments::Payments;
use store::{Db, Ledger};

pub use sources::SourceLimiter;

pub use config::{Config, MAX_BODY_BYTES};
pub use forward::{PESAPAL_SCOPE, STRIPE_SCOPE};

/// Shared, cheap-to-clone state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    db: Db,
    ledger: Ledger,
    payments: Payments,
    sources: SourceLimiter,
    bus: Bus,
    secrets: Arc<Vec<SecretString>>,
    tolerance: Duration,
    publish_deadline: Duration,
    lease: Duration,
}

impl AppState {
    /// Builds the state; does no I/O (Firestore and Pub/Sub connect on first use).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::new(config.db.clone());
        let mut bus_config =
            BusConfig::new(config.db.project_id.clone(), config.base.pubsub_emulator_host.clone());
        // Every event carries its own order's ordering key, so there is nothing to wait for: a
        // batch of one key fills only while an earlier message of that key is in flight, which
        // the client sends after it without a timer.
        bus_config.batch_delay = std::time::Duration::ZERO;
        let bus = Bus::connect(bus_config).await?;
        Ok(Self {
            ledger: Ledger::new(&db),
            payments: Payments::new(&db),
            sources: SourceLimiter::new(config.ipn_rate_per_source, config.ipn_burst_per_source),
            db,
            bus,
            secrets: Arc::new(config.stripe_secrets.clone()),
            tolerance: config.tolerance,
            publish_deadline: config.publish_deadline,
            lease: config.lease,
        })
    }

    /// The Firestore handle.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The function built from `env`: config, state, and its routes inside a [`Server`] (log-only dead
/// letters: no route answers a permanent error; the providers retry what fails). `main.rs` (through
/// `runtime::run`), devstack's registry and the test harnesses all build it here.
pub async fn build(name: &str, env: &Env) -> anyhow::Result<Built<Config, AppState>> {
    let config = Config::load(BaseConfig::load(env)?, env)?;
    let state = AppState::build(&config).await?;
    let router =
        Server::new(name, &config.base, Arc::new(LogDeadLetters)).router(app(state.clone()));
    Ok(Built { config, state, router })
}

/// [`build`]'s fully layered router, what `main.rs` and devstack serve.
pub async fn router(name: &str, env: &Env) -> anyhow::Result<Router> {
    Ok(build(name, env).await?.router)
}

/// The function's routes (without the runtime layers: wrap with `runtime::Server`).
pub fn app(state: AppState) -> Router {
    let limit = runtime::limits::body_limit(MAX_BODY_BYTES);
    Router::new()
        .route("/stripe", post(stripe::receive).layer(limit))
        .route("/pesapal", get(pesapal::receive_get).post(pesapal::receive_post).layer(limit))
        .with_state(state)
}
