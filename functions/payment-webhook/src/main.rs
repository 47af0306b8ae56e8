//! payment-webhook binary: config, state, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = runtime::init("payment-webhook")?;
    let config = payment_webhook::Config::from_env(base)?;
    let state = payment_webhook::AppState::build(&config).await?;
    runtime::Server::new("payment-webhook", &config.base).serve(payment_webhook::app(state)).await
}
