//! signup-hook: the Identity Platform blocking functions of Hearth.
//!
//! `POST /before-create` verifies the blocking JWT, decides the tenant and role of the new user
//! (`domain::tenancy::assign_tenant`: blocked domain, invitation, verified company domain,
//! personal tenant), reserves an invitation for a proven email, answers the `tenant_id` and `role`
//! custom claims, and announces the user on `user-signups` (bounded wait; an outage never blocks
//! the sign-up). `POST /before-sign-in` blocks suspended tenants and removed memberships and
//! refreshes the claims when the role changed; it also makes a fresh account's invitation
//! reservation final and moves a proven invitee out of their personal tenant into the invitation's.
//! Lookups are cached briefly (`store::tenancy`), so
//! a warm instance answers a sign-in from memory.
//!
//! The crate only wires: decisions live in `domain`, Firestore in `store`, the wire formats in
//! `gcp`, the error shapes in `runtime`.

mod config;
mod hook;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use runtime::{BaseConfig, Built, Env, LogDeadLetters, Server};

pub use config::{
    BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH, Config, DEFAULT_PUBLISH_DEADLINE, MAX_CACHE_TTL,
    MAX_INVITATION_HOLD, MAX_PUBLISH_DEADLINE,
};
pub use hook::{CONTENT_TYPE_MESSAGE, INVALID_CLAIMS_MESSAGE, REMOVED_MESSAGE, SUSPENDED_MESSAGE};
pub use state::AppState;

/// The function built from `env`: config, state, and its routes inside a [`Server`] (log-only dead
/// letters: the identity provider gets every answer and redelivers nothing). `main.rs` (through
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

/// The hook's routes. Errors are answered in the blocking (callable) error shape; serve it
/// through `runtime::Server`, which adds the shared layers and the error mapping.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(BEFORE_CREATE_PATH, post(hook::before_create).fallback(hook::method_not_allowed))
        .route(BEFORE_SIGN_IN_PATH, post(hook::before_sign_in).fallback(hook::method_not_allowed))
        .layer(runtime::callable_style())
        .with_state(state)
}
