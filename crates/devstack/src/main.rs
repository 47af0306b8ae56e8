//! `cargo run -p devstack [-- up|invoke|demo ...]`: see `devstack --help`.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let started = std::time::Instant::now();
    let cli = devstack::cli::Cli::parse();
    devstack::cli::run(cli, started).await
}
