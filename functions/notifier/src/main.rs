//! notifier binary: telemetry, then `notifier::router` (config, state, layers) served by
//! `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("notifier", notifier::router).await
}
