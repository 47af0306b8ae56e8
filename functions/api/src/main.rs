//! api binary: telemetry, then `api::router` (config, state, layers) served by `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("api", api::router).await
}
