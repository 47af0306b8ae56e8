//! market-stream's benchmark: candles written as a market-data feed writes them, through
//! devstack's Eventarc bridge to the real function, against a Python listener written the seed's
//! way (`benches/market-stream/listener.py`: `on_snapshot` and pandas), on the same emulators in
//! the same run. `scripts/bench-market-stream.sh` installs the Python side and runs this.
//!
//! `cargo run --release -p devstack --example market_stream -- [--instruments 5] [--count 200]
//!  [--rate 0] [--python path/to/python]`
//!
//! Each side gets its own emulator project (the other's documents cost it nothing) and the same
//! candles: `--count` hourly candles for each of the first `--instruments` of the seed's
//! instruments, interleaved, at `--rate` candles per second (0: as fast as the emulator takes
//! them). Both are measured from outside with Firestore's timestamps
//! ([`devstack::candles::processing`]): candles per second and the write-to-bar latency. The
//! Firestore operations per candle are market-stream's own `/metrics` counters and the
//! listener's count of what it received and wrote. The priority budgets are raised for the run
//! (a copy of the manifest), so they do not bound what is measured: with the manifest's budgets
//! the throughput is the budget by design (`tests/it/flow.rs` covers the backpressure).
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use devstack::candles::{self, Plan, Processing};
use devstack::identity::{self, Caller};
use devstack::{Stack, StackOptions};
use domain::market::Granularity;
use serde_json::Value;
use store::{Db, DbConfig};
use testkit::costs::{Cost, minus, route_ops};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const INSTRUMENTS: [&str; 5] = ["EUR_USD", "GBP_USD", "USD_JPY", "USD_CHF", "AUD_USD"];

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context(format!("{name} needs a value"))?.parse()?),
        None => Ok(default),
    }
}

/// One side's figures.
struct Side {
    name: &'static str,
    processing: Processing,
    /// Firestore reads and writes per candle.
    reads: f64,
    writes: f64,
    /// What else to say.
    notes: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let instruments: usize = arg(&args, "--instruments", 5)?;
    let count: usize = arg(&args, "--count", 200)?;
    let rate: f64 = arg(&args, "--rate", 0.0)?;
    let python = Some(arg(&args, "--python", String::new())?).filter(|p| !p.is_empty());
    anyhow::ensure!((1..=5).contains(&instruments), "--instruments is 1 to 5");
    let plan = Plan {
        instruments: INSTRUMENTS[..instruments].iter().map(|s| (*s).to_owned()).collect(),
        granularity: Granularity::H1,
        count,
        rate,
        start: candles::default_start(Granularity::H1, count + 2),
        gap_every: 0,
        bad_every: 0,
        seed: 16,
    };
    let total = instruments * count;
    println!(
        "{total} candles: {count} hourly candles of {} interleaved, rate {}",
        plan.instruments.join(", "),
        if rate > 0.0 { format!("{rate}/s") } else { "unpaced".to_owned() }
    );
    let firestore = testkit::emulators::firestore().await.to_owned();
    let mut sides = Vec::new();
    if let Some(python) = &python {
        sides.push(python_side(python, &firestore, &plan, total).await?);
    }
    sides.push(rust_side(&plan, total).await?);
    print_table(&sides);
    Ok(())
}

async fn rust_side(plan: &Plan, total: usize) -> anyhow::Result<Side> {
    let project = "demo-market-bench";
    // The manifest with budgets far above the run's rate (see the module doc).
    let manifest = std::fs::read_to_string(devstack::default_manifest_path())?;
    let raised = manifest
        .replace(
            r#"HEARTH_MARKET_BUDGETS: "500,200,100,50""#,
            r#"HEARTH_MARKET_BUDGETS: "600000,600000,600000,600000""#,
        )
        .replace(
            r#"HEARTH_MARKET_GLOBAL_BUDGET: "1000""#,
            r#"HEARTH_MARKET_GLOBAL_BUDGET: "600000""#,
        );
    anyhow::ensure!(raised != manifest, "the manifest's market budgets changed: update this bench");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("functions.yaml");
    std::fs::write(&path, raised)?;

    let mut options = StackOptions::on_testkit_emulators(project).await;
    options.manifest = path;
    let stack = Stack::up(options).await?;
    let result = async {
        let base = stack.url("market-stream").context("market-stream is not in the stack")?;
        let token = identity::oidc_token(project, Caller::Operator, base);
        let http = reqwest::Client::new();
        let get = |path: &str| {
            let request = http.get(format!("{base}{path}")).bearer_auth(&token);
            async move { anyhow::Ok(request.send().await?.error_for_status()?) }
        };
        let ops = || async { anyhow::Ok(route_ops(&get("/metrics").await?.text().await?, "/")) };
        let db = Db::new(DbConfig::emulator(project, &stack.emulators.firestore));
        let before: Cost = ops().await?;
        let polled = stack.eventarc.polled();
        let cpu = cpu_seconds();
        let written = candles::write(&db, plan).await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        let streams = loop {
            let streams: Value = get("/metrics/streams").await?.json().await?;
            let done: u64 = streams["streams"]
                .as_object()
                .map(|s| s.values().map(|v| v["processed"].as_u64().unwrap_or(0)).sum())
                .unwrap_or(0);
            if done >= total as u64 {
                break streams;
            }
            if Instant::now() > deadline {
                bail!("market-stream processed {done} of {total} candles within 600 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let cpu = cpu_seconds() - cpu;
        let ops = minus(ops().await?, before);
        let processing = candles::processing(&candles::processing_times(&db, plan).await?);
        let backpressure: u64 = streams["streams"]
            .as_object()
            .map(|s| s.values().map(|v| v["backpressure"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        let per = |n: u64| n as f64 / total as f64;
        Ok(Side {
            name: "market-stream (Rust, Eventarc bridge)",
            processing,
            reads: per(ops[0]),
            writes: per(ops[1]),
            notes: format!(
                "writes took {:.1} s; {:.2} round trips per candle; {backpressure} backpressure \
                 answers; the bridge polled {} documents (a devstack cost, not production's); \
                 devstack's whole process (bridge, every function, this driver) used {cpu:.1} s \
                 of CPU",
                written.elapsed.as_secs_f64(),
                per(ops[4]),
                stack.eventarc.polled() - polled,
            ),
        })
    }
    .await;
    stack.shutdown().await;
    result
}

async fn python_side(
    python: &str,
    firestore: &str,
    plan: &Plan,
    total: usize,
) -> anyhow::Result<Side> {
    let project = "demo-market-python";
    let script = devstack::repo_root().join("benches/market-stream/listener.py");
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .args(["--project", project, "--instruments", &plan.instruments.join(",")])
        .args(["--granularity", plan.granularity.as_str()])
        .args(["--seconds", &plan.granularity.seconds().to_string()])
        .args(["--expect", &total.to_string(), "--timeout", "600"])
        .env("FIRESTORE_EMULATOR_HOST", firestore)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {python} {}", script.display()))?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let ready = tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await;
    anyhow::ensure!(
        matches!(&ready, Ok(Ok(Some(l))) if l == "ready"),
        "the Python listener did not get ready: {ready:?}"
    );
    let db = Db::new(DbConfig::emulator(project, firestore));
    let written = candles::write(&db, plan).await?;
    let last = lines.next_line().await?.context("the listener printed no summary")?;
    let summary: Value = serde_json::from_str(&last).with_context(|| last.clone())?;
    child.wait().await?;
    anyhow::ensure!(summary["finished"] == true, "the listener did not finish: {summary}");
    let processing = candles::processing(&candles::processing_times(&db, plan).await?);
    let per = |k: &str| summary[k].as_f64().unwrap_or(0.0) / total as f64;
    Ok(Side {
        name: "Python on_snapshot + pandas",
        processing,
        reads: per("reads"),
        writes: per("writes"),
        notes: format!(
            "writes took {:.1} s; {:.2} commits per candle; {} errors; the listener used {:.1} s \
             of CPU and peaked at {:.0} MiB resident",
            written.elapsed.as_secs_f64(),
            per("commits"),
            summary["errors"],
            summary["cpu_seconds"].as_f64().unwrap_or(0.0),
            summary["max_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        ),
    })
}

/// User and system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn print_table(sides: &[Side]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\n{:<40} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8}",
        "", "candles", "candles/s", "p50 ms", "p99 ms", "reads", "writes"
    );
    for s in sides {
        let p = &s.processing;
        println!(
            "{:<40} {:>9} {:>10.1} {:>9.0} {:>9.0} {:>8.2} {:>8.2}",
            s.name,
            format!("{}/{}", p.processed, p.written),
            p.per_second(),
            ms(p.latency(0.5)),
            ms(p.latency(0.99)),
            s.reads,
            s.writes
        );
    }
    println!("(reads and writes: Firestore operations per candle)");
    for s in sides {
        println!("{}: {}", s.name, s.notes);
    }
    if let [python, rust] = sides {
        let (p, r) = (&python.processing, &rust.processing);
        println!(
            "Rust / Python: {:.2}x the candles per second, {:.2}x the p50 and {:.2}x the p99 latency",
            r.per_second() / p.per_second().max(1e-9),
            ms(r.latency(0.5)) / ms(p.latency(0.5)).max(1e-9),
            ms(r.latency(0.99)) / ms(p.latency(0.99)).max(1e-9),
        );
    }
}
