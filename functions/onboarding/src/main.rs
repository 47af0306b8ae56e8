//! onboarding binary: config, state, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = runtime::init("onboarding")?;
    let config = onboarding::Config::from_env(base)?;
    let state = onboarding::AppState::build(&config);
    runtime::Server::new("onboarding", &config.base)
        .dead_letters(state.dead_letters())
        .serve(onboarding::app(state))
        .await
}
