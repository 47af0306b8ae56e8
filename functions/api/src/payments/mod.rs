//! The payments callables: `reserveInventory`, `releaseReservation`, `initiatePayment`,
//! `getOrder`.
//!
//! - Reservations never oversell: `store::inventory` (sharded stock, guarded commits).
//! - `initiatePayment` requires an `Idempotency-Key` (IETF draft semantics, see
//!   [`idempotency`]): the first request runs, a retry after completion replays the stored
//!   result with `Idempotent-Replayed: true`, a retry while running gets 409, the same key with
//!   another payload 422; keys are scoped per user and kept 24 hours, in the same ledger as
//!   webhook event ids and Pub/Sub message ids.
//! - Every callable (these and the feed's) is rate limited per user across instances
//!   ([`limits`]): 429 + `Retry-After`.
//! - Providers are called through `providers` (timeouts, retries never on 4xx, a circuit
//!   breaker per provider); base URLs are configuration.

pub(crate) mod callables;
pub(crate) mod errors;
mod idempotency;
pub(crate) mod limits;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use providers::{CallPolicy, PesapalClient, PesapalSettings, PesapalUse, StripeClient};
use runtime::{BaseConfig, ConfigError, Env};
use secrecy::SecretString;
use store::inventory::Inventory;
use store::payments::Payments;
use store::ratelimit::RateLimiter;
use store::{Db, Ledger};

use crate::AppState;
pub use limits::Limits;

/// The callable paths this module serves.
pub const PATHS: [&str; 4] =
    ["/reserveInventory", "/releaseReservation", "/initiatePayment", "/getOrder"];

/// This module's own configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HEARTH_STRIPE_API_BASE` (default `https://api.stripe.com`) and
    /// `HEARTH_STRIPE_SECRET_KEY` (`None`: Stripe payments are refused).
    pub stripe: Option<(String, SecretString)>,
    /// `HEARTH_PESAPAL_*` (`None` when `HEARTH_PESAPAL_CONSUMER_KEY` is unset).
    pub pesapal: Option<PesapalSettings>,
    /// `HEARTH_PROVIDER_TIMEOUT_SECS` (default 10): one provider request.
    pub provider_timeout: Duration,
    /// `HEARTH_RATE_LIMITS`: overrides, `callable=N/SECS,...`.
    pub limits: Limits,
    /// `HEARTH_IDEMPOTENCY_RETENTION_SECS` (default 86400): how long keys are kept.
    pub idempotency_retention: Duration,
    /// `HEARTH_MAX_HELD_UNITS` (default 30, 1 to 10,000): units one user may hold at once
    /// across all held reservations (`domain::inventory::may_hold`).
    pub max_held_units: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stripe: None,
            pesapal: None,
            provider_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            idempotency_retention: store::ledger::DEFAULT_RETENTION,
            max_held_units: domain::inventory::DEFAULT_MAX_HELD_UNITS,
        }
    }
}

impl Config {
    pub fn load(_base: &BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let stripe = match env.secret("HEARTH_STRIPE_SECRET_KEY") {
            Some(key) => {
                Some((env.url_or("HEARTH_STRIPE_API_BASE", "https://api.stripe.com")?, key))
            }
            None => None,
        };
        let pesapal = PesapalSettings::from_env(env, PesapalUse::Payments)?;
        let max_held_units: i64 = env.parse_or(
            "HEARTH_MAX_HELD_UNITS",
            "1 to 10000 units",
            domain::inventory::DEFAULT_MAX_HELD_UNITS,
        )?;
        if !(1..=10_000).contains(&max_held_units) {
            return Err(ConfigError::invalid(
                "HEARTH_MAX_HELD_UNITS",
                "1 to 10000 units",
                &max_held_units.to_string(),
            ));
        }
        Ok(Self {
            max_held_units,
            stripe,
            pesapal,
            provider_timeout: env
                .positive_secs_or("HEARTH_PROVIDER_TIMEOUT_SECS", Duration::from_secs(10))?,
            limits: Limits::load(env)?,
            idempotency_retention: env.positive_secs_or(
                "HEARTH_IDEMPOTENCY_RETENTION_SECS",
                store::ledger::DEFAULT_RETENTION,
            )?,
        })
    }
}

/// This module's own state.
#[derive(Debug, Clone)]
pub struct State {
    inventory: Inventory,
    payments: Payments,
    ledger: Ledger,
    limiter: RateLimiter,
    limits: Arc<Limits>,
    stripe: Option<StripeClient>,
    pesapal: Option<PesapalClient>,
}

impl State {
    // `async` is the shape `AppState::build` calls (lib.rs); building does no I/O today.
    #[allow(clippy::unused_async)]
    pub async fn build(config: &Config, db: &Db) -> anyhow::Result<Self> {
        let policy =
            CallPolicy { request_timeout: config.provider_timeout, ..CallPolicy::default() };
        let stripe = config
            .stripe
            .clone()
            .map(|(base, key)| StripeClient::new(&base, key, policy))
            .transpose()?;
        let pesapal = config.pesapal.clone().map(|s| PesapalClient::new(s, policy)).transpose()?;
        Ok(Self {
            inventory: Inventory::new(db).with_max_held_units(config.max_held_units),
            payments: Payments::new(db),
            ledger: Ledger::new(db).with_retention(config.idempotency_retention),
            limiter: RateLimiter::new(db),
            limits: Arc::new(config.limits.clone()),
            stripe,
            pesapal,
        })
    }
}

/// This module's routes.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/reserveInventory", post(callables::reserve_inventory))
        .route("/releaseReservation", post(callables::release_reservation))
        .route("/initiatePayment", post(callables::initiate_payment))
        .route("/getOrder", post(callables::get_order))
        .with_state(state)
}
