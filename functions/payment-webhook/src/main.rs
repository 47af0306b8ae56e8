//! payment-webhook binary: telemetry, then `payment_webhook::router` (config, state, layers) served
//! by `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("payment-webhook", payment_webhook::router).await
}
