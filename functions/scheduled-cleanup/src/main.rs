//! scheduled-cleanup binary: config, state, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = runtime::init("scheduled-cleanup")?;
    let config = scheduled_cleanup::Config::from_env(base)?;
    let state = scheduled_cleanup::AppState::build(&config);
    runtime::Server::new("scheduled-cleanup", &config.base)
        .serve(scheduled_cleanup::app(state))
        .await
}
