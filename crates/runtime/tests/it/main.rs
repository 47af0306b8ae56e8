//! Integration tests of `runtime`: one binary, one module per concern.

mod auth;
mod config;
mod errors;
mod fake_lambda;
mod helpers;
mod lambda;
mod lambda_lifecycle;
mod layers;
mod metrics;
mod metrics_auth;
mod shutdown;
mod telemetry;
