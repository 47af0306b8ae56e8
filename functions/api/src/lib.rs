//! api: the client-facing function. Speaks the Firebase callable protocol (`POST /<name>`,
//! Firebase ID token, `{"data":...}` in, `{"result":...}` or `{"error":...}` out) so
//! `httpsCallable` in the client SDKs works unchanged.
//!
//! Three groups of callables, each in its own module with its own config and state:
//! - [`payments`]: `reserveInventory`, `releaseReservation`, `initiatePayment`, `getOrder`;
//! - [`feed`]: `getFeed`, `followVendor`, `unfollowVendor`, `getStories`, `likePost`,
//!   `unlikePost`, `recordView`;
//! - [`strategies`]: `saveStrategy` (tenant admins; the trading pulse runs what it stores);
//! - [`catalogue`]: `becomeVendor`, `updateVendor`, `createProduct`, `updateProduct`,
//!   `publishProduct`, `archiveProduct`, `setStock`, `addStock`, `listProducts`,
//!   `listVendorOrders`, `requestRefund`.
//!
//! Every callable takes a [`SignedIn`] user, which provisions the user lazily when the
//! onboarding message has not arrived yet. This crate only wires: rules live in `domain`,
//! Firestore access in `store`, errors become responses in `runtime`.

pub mod catalogue;
pub mod clients;
pub mod devices;
pub mod feed;
pub mod payments;
mod signed_in;
pub mod strategies;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use runtime::auth::FirebaseAuth;
use runtime::{BaseConfig, Built, ConfigError, Env, LogDeadLetters, Server};
use store::{Db, DbConfig};

pub use signed_in::SignedIn;

/// Everything the function needs, validated at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub base: BaseConfig,
    /// Firestore: `GOOGLE_CLOUD_PROJECT` (required) and `FIRESTORE_EMULATOR_HOST`.
    pub db: DbConfig,
    /// Firebase ID tokens (`HEARTH_SECURETOKEN_JWKS_URL`; unsigned only in Auth emulator mode).
    pub firebase_auth: FirebaseAuth,
    pub payments: payments::Config,
    pub feed: feed::Config,
    pub strategies: strategies::Config,
    pub catalogue: catalogue::Config,
}

impl Config {
    /// From `env` (tests pass a map), on top of `base`.
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let firebase_auth = FirebaseAuth::from_config(&base)?;
        let payments = payments::Config::load(&base, env)?;
        let feed = feed::Config::load(&base, env)?;
        let strategies = strategies::Config::load(env)?;
        let catalogue = catalogue::Config::load(&base, env)?;
        Ok(Self { base, db, firebase_auth, payments, feed, strategies, catalogue })
    }
}

/// Shared, cheap-to-clone state: the Firestore handle and token verifier every callable
/// needs, plus each module's own state.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub firebase_auth: FirebaseAuth,
    pub signed_in: signed_in::Provisioned,
    pub payments: payments::State,
    pub feed: feed::State,
    pub strategies: strategies::Config,
    pub catalogue: catalogue::State,
}

impl AppState {
    /// Builds the state; does no I/O (Firestore connects on first use).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::new(config.db.clone());
        Ok(Self {
            payments: payments::State::build(&config.payments, &db).await?,
            feed: feed::State::build(&config.feed, &db).await?,
            strategies: config.strategies.clone(),
            catalogue: catalogue::State::build(&config.catalogue, &db).await?,
            signed_in: signed_in::Provisioned::default(),
            firebase_auth: config.firebase_auth.clone(),
            db,
        })
    }
}

impl FromRef<AppState> for FirebaseAuth {
    fn from_ref(state: &AppState) -> Self {
        state.firebase_auth.clone()
    }
}

/// The function built from `env`: config, state, and its routes inside a [`Server`] (log-only dead
/// letters: callables answer their caller and are never redelivered). `main.rs` (through
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

/// Every callable, with the callable error shape.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(payments::routes(state.clone()))
        .merge(devices::routes(state.clone()))
        .merge(feed::routes(state.clone()))
        .merge(strategies::routes(state.clone()))
        .merge(catalogue::routes(state))
        .layer(runtime::callable_style())
}
