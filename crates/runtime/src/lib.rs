//! The functions-framework shim every Hearth function stands on.
//!
//! A function's `main.rs` is a few lines (its `lib.rs` exposes `app(state) -> Router`):
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! fn app() -> Router {
//!     Router::new().route("/hello", get(|| async { "hello" }))
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let config = runtime::init("hello")?; // typed env config + telemetry; fails fast
//!     runtime::Server::new("hello", &config)
//!         .dead_letters(std::sync::Arc::new(runtime::LogDeadLetters)) // `store` supplies Firestore's
//!         .serve(app()) // Cloud Run ($PORT) or Lambda (AWS_LAMBDA_RUNTIME_API)
//!         .await
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
//! - [`metrics_auth`]: `/metrics` only for Google OIDC tokens of `HEARTH_METRICS_ALLOWED_EMAILS`.
//! - [`ops`]: Firestore operations counted per request (`hearth_firestore_ops_total`, log line).
//! - [`DeadLetterSink`]: where permanent failures are recorded before they are acknowledged.

pub mod auth;
pub mod config;
pub mod dead_letter;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod metrics_auth;
pub mod ops;
mod server;
pub mod telemetry;

pub use config::{BaseConfig, ConfigError, Env};
pub use dead_letter::{BoxFuture, DeadLetterSink, LogDeadLetters, MemoryDeadLetters};
pub use error::{Error, ErrorStyle, callable_style};
pub use metrics::Metrics;
pub use server::{COMPRESS_MIN_BYTES, Server, init, router, serve, shutdown_signal};
