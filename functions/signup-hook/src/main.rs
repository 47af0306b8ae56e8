//! signup-hook binary: telemetry, then `signup_hook::router` (config, state, layers) served by
//! `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("signup-hook", signup_hook::router).await
}
