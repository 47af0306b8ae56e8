//! pulse binary: telemetry, then `pulse::router` (config, state, layers) served by `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("pulse", pulse::router).await
}
