//! The feed fan-out through a whole local stack, timed: starts the emulators, seeds one
//! vendor's followers, brings up devstack (every function of the manifest), writes posts one
//! after another and measures the time from each write to the last follower's feed entry.
//!
//! `cargo run -p devstack --example fanout [-- --followers 1000 --posts 5 --within-ms 3000]`
//!
//! Exits non-zero unless every post is in every feed within `--within-ms` of its write and the
//! last post is no slower than the first (`devstack::fanout::verdict`).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use devstack::{Stack, StackOptions, fanout};
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

    // The emulators first (testkit's, as the tests start them), then the followers, then the
    // stack: the followers exist before the stack's triggers, as an established vendor's do,
    // so the notifier's new-follower trigger does not fire for them and what is timed is the
    // posts' fan-out alone.
    let project = "demo-fanout-bench";
    let options = StackOptions::on_testkit_emulators(project).await;
    let db = Db::new(DbConfig::emulator(project, testkit::emulators::firestore().await));
    fanout::seed_followers(&db, "bench-vendor", followers).await?;
    let stack = Stack::up(options).await?;
    println!("stack ready in {:.1?}", stack.ready_in);
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
