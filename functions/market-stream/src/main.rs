//! market-stream binary: telemetry, then `market_stream::router` (config, state, layers) served
//! by `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("market-stream", market_stream::router).await
}
