//! scheduled-cleanup binary: telemetry, then `scheduled_cleanup::router` (config, state, layers)
//! served by `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("scheduled-cleanup", scheduled_cleanup::router).await
}
