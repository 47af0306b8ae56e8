//! payment-processor: applies `payment-events` exactly once in effect.
//!
//! - `POST /pubsub/payment-events`: Pub/Sub push (ordered by order id), Google OIDC-verified.
//!   Deduplicated by the provider's event id through the idempotency ledger (scope
//!   `pubsub:payment-events:v2`); Pesapal hints are resolved by asking Pesapal for the status
//!   first; then ONE Firestore transaction moves the order and payment and commits the
//!   reservations (`store::payments`), with a per-order watermark so an older event never
//!   overwrites a newer state. A payment that arrives after its reservation expired re-reserves
//!   if stock allows, else the order is flagged `refund_pending`.
//! - `POST /jobs/reconcile-payments`: Cloud Scheduler, Google OIDC-verified. Asks Pesapal
//!   about every payment whose outcome is not final yet (`reconcile.rs`).
//! - Every event changes an order only when it is about that order's money (its provider
//!   payment id is one of the order's payments; merchant reference, amount and currency, where
//!   reported, match); anything else is dead-lettered flagged as a suspected forgery.
//! - Outcomes: `order-paid` (a paid order), `refund-requests` (paid without stock) and
//!   `order-refunded` (the provider confirmed a refund) are always published.
//! - `POST /pubsub/refund-requests`: executes refunds through the provider (`refunds.rs`).
//! - `POST /pubsub/order-paid`: keeps the vendors' sales counters per day (`sales.rs`).
//!
//! Transient failures answer 5xx (Pub/Sub redelivers); permanent ones become dead letters and
//! are acknowledged.

mod config;
mod push;
mod reconcile;
mod refunds;
mod sales;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::post;
use bus::{Bus, BusConfig};
use providers::{CallPolicy, PesapalClient, StripeClient};
use runtime::auth::PushAuth;
use runtime::{BaseConfig, Built, DeadLetterSink, Env, Server};
use store::payments::Payments;
use store::refunds::Refunds;
use store::vendor_orders::VendorOrders;
use store::{Db, DeadLetters, Ledger};

pub use config::{Config, DEFAULT_LEASE};
pub use push::SCOPE as LEDGER_SCOPE;
pub use reconcile::{JOB as RECONCILE_JOB, Report as ReconcileReport};
pub use refunds::SCOPE as REFUNDS_LEDGER_SCOPE;
pub use sales::SCOPE as SALES_LEDGER_SCOPE;

/// Shared, cheap-to-clone state of the handler.
#[derive(Debug, Clone)]
pub struct AppState {
    db: Db,
    ledger: Ledger,
    payments: Payments,
    dead_letters: DeadLetters,
    push_auth: PushAuth,
    pesapal: Option<PesapalClient>,
    stripe: Option<StripeClient>,
    refunds: Refunds,
    vendor_orders: VendorOrders,
    bus: Bus,
    lease: Duration,
}

impl AppState {
    /// Builds the state; does no I/O.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::new(config.db.clone());
        let pesapal = config
            .pesapal
            .clone()
            .map(|settings| PesapalClient::new(settings, CallPolicy::default()))
            .transpose()?;
        let stripe = config
            .stripe
            .clone()
            .map(|(base, key)| StripeClient::new(&base, key, CallPolicy::default()))
            .transpose()?;
        let bus = Bus::connect(BusConfig::new(
            config.db.project_id.clone(),
            config.base.pubsub_emulator_host.clone(),
        ))
        .await?;
        Ok(Self {
            ledger: Ledger::new(&db),
            payments: Payments::new(&db),
            refunds: Refunds::new(&db),
            vendor_orders: VendorOrders::new(&db),
            dead_letters: DeadLetters::new(&db),
            db,
            push_auth: config.push_auth.clone(),
            pesapal,
            stripe,
            bus,
            lease: config.lease,
        })
    }

    /// Where permanent failures are recorded.
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
/// letters, `dead_letters/{id}`: its payment events are redelivered until acknowledged). `main.rs`
/// (through `runtime::run`), devstack's registry and the test harnesses all build it here.
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
        .route(
            "/pubsub/payment-events",
            post(push::payment_events).layer(runtime::limits::push_endpoint()),
        )
        .route(
            "/pubsub/refund-requests",
            post(refunds::refund_requests).layer(runtime::limits::push_endpoint()),
        )
        .route(
            "/pubsub/order-paid",
            post(sales::order_paid).layer(runtime::limits::push_endpoint()),
        )
        .route("/jobs/reconcile-payments", post(reconcile::reconcile_payments))
        .with_state(state)
}
