//! feed-fanout binary: config, state, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = runtime::init("feed-fanout")?;
    let config = feed_fanout::Config::from_env(base)?;
    let state = feed_fanout::AppState::build(&config).await?;
    runtime::Server::new("feed-fanout", &config.base)
        .dead_letters(state.dead_letters())
        .serve(feed_fanout::app(state))
        .await
}
