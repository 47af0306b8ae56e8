//! The functions-framework shim every Hearth function stands on.
//!
//! A function's `lib.rs` exposes one builder, `router(name, &env) -> anyhow::Result<Router>`
//! (config from `env`, state, a [`Server`] with its dead-letter sink, the routes), and its
//! `main.rs` is one call:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::{Router, routing::get};
//!
//! async fn router(name: &str, env: &runtime::Env) -> anyhow::Result<Router> {
//!     let config = runtime::BaseConfig::load(env)?; // typed env config; fails fast
//!     let app = Router::new().route("/hello", get(|| async { "hello" }));
//!     // The sink is required: `store::DeadLetters` for event consumers, log-only otherwise.
//!     Ok(runtime::Server::new(name, &config, Arc::new(runtime::LogDeadLetters)).router(app))
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     // Telemetry, the builder, then Cloud Run ($PORT, SIGTERM drain) or Lambda.
//!     runtime::run("hello", router).await
//! }
//! ```
//!
//! - [`config`]: the only reader of the environment; typed getters whose errors name the variable.
//! - [`telemetry`]: Cloud Logging JSON (or pretty text locally), one span per request.
//! - [`Server`]: layers (request id, span + metrics, CORS, gzip, timeout, error mapping, body
//!   limits), built-in routes (`/healthz`, `/health`, `/metrics`, `/metrics.json`), serving with graceful
//!   shutdown on Cloud Run or through `lambda_http` on AWS Lambda.
//! - [`Error`]: the one error type; the one mapping from error to response lives in [`error`].
//! - [`limits`]: per-route body limits ([`limits::push_endpoint`] for Pub/Sub push and CloudEvents).
//! - [`trigger`]: the push and callable extractors ([`trigger::Push`], [`trigger::Callable`]).
//! - [`DeadLetterSink`] (defined in `domain::dead_letter`): where permanent failures are
//!   recorded before they are acknowledged; [`Server::new`] requires one.
//! - [`metrics_auth`]: `/metrics` only for Google OIDC tokens of `HEARTH_METRICS_ALLOWED_EMAILS`.
//! - [`ops`]: Firestore operations counted per request (`hearth_firestore_ops_total`, log line).

pub mod auth;
pub mod config;
pub mod dead_letter;
pub mod error;
mod lambda;
pub mod limits;
pub mod metrics;
pub mod metrics_auth;
mod server;
pub mod telemetry;
pub mod trigger;

pub use config::{BaseConfig, ConfigError, Env};
pub use dead_letter::{BoxFuture, DeadLetterSink, LogDeadLetters, MemoryDeadLetters};
pub use error::{Error, ErrorStyle, callable_style};
/// The per-request count of Firestore operations (the `metering` crate).
pub use metering as ops;
pub use metrics::Metrics;
pub use server::{
    Built, COMPRESS_MIN_BYTES, Server, init, router, run, serve_layered, serve_layered_until,
    shutdown_signal,
};
