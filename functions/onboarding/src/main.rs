//! onboarding binary: config, state, serve.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(())
}
