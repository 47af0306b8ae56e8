//! onboarding: provisions a new user's documents (the plan of `domain::onboarding`) from the
//! `user-signups` topic, atomically and idempotently, and lets tenant admins and operators
//! re-run provisioning to repair a user.
//!
//! - `POST /pubsub/user-signups`: Pub/Sub push, Google OIDC-authenticated. Deduplicated on the
//!   message id through the idempotency ledger; provisioning itself is `store::onboarding`.
//! - `POST /provision`: repair, for a tenant admin (Firebase ID token) or an operator (Google
//!   OIDC service account); answers what was created and what already existed.
//! - `POST /members/remove` (tenant admin or operator) and `POST /tenants/suspend` (operator):
//!   delete the membership / suspend the tenant, then revoke the affected users' sessions and
//!   clear their tenant claims through the Identity Toolkit admin API.
//!
//! This crate only wires: the plan is `domain::onboarding`, the writes are `store::onboarding`,
//! the envelope and tokens are `gcp`, errors become responses in `runtime`.

mod access;
mod config;
mod push;
mod repair;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::post;
use gcp::identity_toolkit::IdentityToolkit;
use runtime::auth::{FirebaseAuth, PushAuth};
use runtime::{BaseConfig, Built, DeadLetterSink, Env, Server};
use store::{Db, DeadLetters, Ledger};

pub use config::{Config, DEFAULT_LEASE};
pub use domain::repair::{
    Denied, RepairRequest, Requester, TargetFacts, authorize_requester, authorize_target,
};
pub use push::{SCOPE as LEDGER_SCOPE, signup_fingerprint};

/// Shared, cheap-to-clone state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    db: Db,
    ledger: Ledger,
    dead_letters: DeadLetters,
    push_auth: PushAuth,
    firebase_auth: FirebaseAuth,
    lease: Duration,
    /// Session revocation; `None` when no credentials could be set up (the access routes then
    /// answer 503).
    toolkit: Option<IdentityToolkit>,
}

impl AppState {
    /// Builds the state; does no I/O (Firestore connects on first use).
    pub fn build(config: &Config) -> Self {
        let db = Db::new(config.db.clone());
        let project = config.db.project_id.clone();
        let toolkit = match &config.base.firebase_auth_emulator_host {
            Some(host) => Some(IdentityToolkit::emulator(host, project)),
            None => IdentityToolkit::production(project)
                .inspect_err(|error| {
                    tracing::error!(%error, "no credentials for the Identity Toolkit API; removals and suspensions will answer 503");
                })
                .ok(),
        };
        Self {
            toolkit,
            ledger: Ledger::new(&db),
            dead_letters: DeadLetters::new(&db),
            db,
            push_auth: config.push_auth.clone(),
            firebase_auth: config.firebase_auth.clone(),
            lease: config.lease,
        }
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

impl FromRef<AppState> for FirebaseAuth {
    fn from_ref(state: &AppState) -> Self {
        state.firebase_auth.clone()
    }
}

/// The function built from `env`: config, state, and its routes inside a [`Server`] (Firestore dead
/// letters, `dead_letters/{id}`: its push deliveries are redelivered until acknowledged). `main.rs`
/// (through `runtime::run`), devstack's registry and the test harnesses all build it here.
#[expect(clippy::unused_async, reason = "every function's builder has this async signature")]
pub async fn build(name: &str, env: &Env) -> anyhow::Result<Built<Config, AppState>> {
    let config = Config::load(BaseConfig::load(env)?, env)?;
    let state = AppState::build(&config);
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
            "/pubsub/user-signups",
            post(push::user_signups).layer(runtime::limits::push_endpoint()),
        )
        .route("/provision", post(repair::provision))
        .route("/members/remove", post(access::remove_member))
        .route("/tenants/suspend", post(access::suspend_tenant))
        .with_state(state)
}
