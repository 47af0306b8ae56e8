//! onboarding binary: telemetry, then `onboarding::router` (config, state, layers) served by
//! `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("onboarding", onboarding::router).await
}
