//! feed-fanout binary: telemetry, then `feed_fanout::router` (config, state, layers) served by
//! `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("feed-fanout", feed_fanout::router).await
}
