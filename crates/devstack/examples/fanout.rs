//! The feed fan-out through a whole local stack, timed: brings up devstack (its own
//! emulators, every function of the manifest), seeds one vendor's followers, writes posts one
//! after another and measures the time from each write to the last follower's feed entry.
//!
//! `cargo run -p devstack --example fanout [-- --followers 1000 --posts 5 --within-ms 3000]`
//!
//! Exits non-zero unless every post is in every feed within `--within-ms` of its write and the
//! last post is no slower than the first (`devstack::fanout::verdict`).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use devstack::{Registry, Stack, StackOptions, fanout};
use store::{Db, DbConfig};

fn arg(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).map(|v| v.parse()).transpose()?.unwrap_or(default)),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    let followers = usize::try_from(arg(&args, "--followers", 1_000)?)?;
    let posts = usize::try_from(arg(&args, "--posts", 5)?)?;
    let within = Duration::from_millis(arg(&args, "--within-ms", 3_000)?);

    let mut options = StackOptions::new(Registry::standard());
    options.project = "demo-fanout-bench".to_owned();
    options.base_port = 0;
    let stack = Stack::up(options).await?;
    println!("stack ready in {:.1?}", stack.ready_in);
    let db = Db::new(DbConfig::emulator("demo-fanout-bench", &stack.emulators.firestore));
    fanout::seed_followers(&db, "bench-vendor", followers).await?;
    let timings =
        fanout::run(&stack, &db, "bench-vendor", followers, posts, Duration::from_secs(120)).await;
    stack.shutdown().await;
    let timings = timings?;
    println!("{}", fanout::render(&timings, followers));
    Ok(match fanout::verdict(&timings, within) {
        Ok(why) => {
            println!("PASS: {why}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("FAIL: {why}");
            ExitCode::FAILURE
        }
    })
}
