//! search binary: telemetry, then `search::router` (config, state, the catalogue sync, layers)
//! served by `runtime`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::run("search", search::router).await
}
