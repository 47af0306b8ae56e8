//! payment-processor binary: config, state, serve (permanent failures go to dead letters).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = runtime::init("payment-processor")?;
    let config = payment_processor::Config::from_env(base)?;
    let state = payment_processor::AppState::build(&config).await?;
    runtime::Server::new("payment-processor", &config.base)
        .dead_letters(state.dead_letters())
        .serve(payment_processor::app(state))
        .await
}
