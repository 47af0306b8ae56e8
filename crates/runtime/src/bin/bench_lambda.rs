//! Lambda benchmark for binaries built on `runtime`, against the local fake of the Lambda
//! Runtime API that the integration tests use (`tests/it/fake_lambda.rs`).
//!
//! - Cold start, `--runs` times: a fresh process (`AWS_LAMBDA_RUNTIME_API` pointing at a fresh
//!   fake with one function URL event for `GET /healthz` already queued), from `spawn` to the
//!   fake receiving the answer (`POST .../response`). This covers what Lambda's init plus the
//!   first invocation cost in-process: start-up, registering the shutdown extension, `next`,
//!   routing, the answer. Not covered: Lambda's own sandbox creation and code download.
//! - Warm, `--invocations` times in one process: queue a function URL event for
//!   `GET /hello?name=bench`, until its answer is posted (one at a time).
//!
//! Usage: `runtime-bench-lambda <binary> [--runs N] [--invocations M]`, e.g.
//! `cargo build --release -p runtime --bin runtime-hello --bin runtime-bench-lambda` then
//! `target/release/runtime-bench-lambda target/release/runtime-hello`. It is a binary rather
//! than an example so that a release build of it needs no release build of the test-only
//! dependencies (the emulator harness).

// A command-line report: printing is the point.
#![allow(clippy::print_stdout)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/it/fake_lambda.rs"]
mod fake_lambda;

use fake_lambda::FakeLambda;

struct Args {
    binary: String,
    runs: usize,
    invocations: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut binary, mut runs, mut invocations) = (None, 20, 1000);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> anyhow::Result<usize> {
            args.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--runs" => runs = number("--runs")?,
            "--invocations" => invocations = number("--invocations")?,
            other if binary.is_none() && !other.starts_with('-') => binary = Some(other.to_owned()),
            other => bail!("unknown argument {other}"),
        }
    }
    let binary =
        binary.context("usage: runtime-bench-lambda <binary> [--runs N] [--invocations M]")?;
    if runs == 0 || invocations == 0 {
        bail!("--runs and --invocations must be at least 1");
    }
    Ok(Args { binary, runs, invocations })
}

/// A function URL event for `GET path?query`.
fn event(path: &str, query: &str, id: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "bench.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.lambda-url.us-east-1.on.aws",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "bench"},
            "requestId": id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1_583_348_638_390_u64
        },
        "isBase64Encoded": false
    })
}

fn spawn(binary: &str, fake: &FakeLambda) -> anyhow::Result<tokio::process::Child> {
    // The bench's own environment passes through (a function's configuration), plus Lambda's.
    tokio::process::Command::new(binary)
        .envs(fake.env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {binary}"))
}

async fn answered(fake: &mut FakeLambda, id: &str) -> anyhow::Result<()> {
    let answer = fake.response(id).await;
    if answer["statusCode"] != 200 {
        bail!("{id} answered {answer}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// min / median / p90 / p99 / max in milliseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        ms(samples[i])
    };
    format!(
        "min {:.2} / median {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms ({} samples)",
        at(0.0),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        samples.len()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    println!("binary: {}", args.binary);

    let mut cold = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        let mut fake = FakeLambda::start().await;
        let id = format!("cold-{run}");
        fake.invoke(&id, event("/healthz", "", &id));
        let started = Instant::now();
        let mut child = spawn(&args.binary, &fake)?;
        answered(&mut fake, &id).await?;
        cold.push(started.elapsed());
        child.kill().await.context("stopping the process")?;
    }
    println!("cold start (spawn to first answered invocation): {}", summary(cold));

    let mut fake = FakeLambda::start().await;
    let mut child = spawn(&args.binary, &fake)?;
    // Warm the process up first; it is not measured.
    fake.invoke("warm-up", event("/healthz", "", "warm-up"));
    answered(&mut fake, "warm-up").await?;
    let mut warm = Vec::with_capacity(args.invocations);
    for i in 0..args.invocations {
        let id = format!("warm-{i}");
        let started = Instant::now();
        fake.invoke(&id, event("/hello", "name=bench", &id));
        answered(&mut fake, &id).await?;
        warm.push(started.elapsed());
    }
    println!("warm invocation (queued to answer posted, one at a time): {}", summary(warm));
    child.kill().await.context("stopping the process")?;
    Ok(())
}
