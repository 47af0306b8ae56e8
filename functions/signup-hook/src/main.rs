//! signup-hook binary: config, state, serve.

use signup_hook::{AppState, Config, app};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = runtime::init("signup-hook")?;
    let config = Config::from_base(base, &runtime::Env::from_process())?;
    let state = AppState::build(&config).await?;
    runtime::Server::new("signup-hook", &config.base).serve(app(state)).await
}
