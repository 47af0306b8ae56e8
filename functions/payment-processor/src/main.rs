//! payment-processor binary: telemetry, then `payment_processor::router` (config, state, layers)
//! served by `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("payment-processor", payment_processor::router).await
}
