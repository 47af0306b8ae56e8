//! api binary: config, state, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = runtime::init("api")?;
    let config = api::Config::from_env(base)?;
    let state = api::AppState::build(&config).await?;
    runtime::Server::new("api", &config.base).serve(api::app(state)).await
}
