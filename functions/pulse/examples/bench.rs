//! The pulse on this machine against the Firestore emulator: how many users one instance
//! pulses per minute, the Firestore operations of a user-minute, and how long a task takes to
//! mark its users' open trades (the P&L update latency of an open trade is at most its task's).
//!
//! `cargo run --release -p pulse --example bench [-- --users 2000 --per-strategy 100]`
//!
//! It starts the emulators (testkit), serves the function in-process over HTTP, seeds
//! `--users` users on strategies of `--per-strategy` users each, then runs two minutes the way
//! Pub/Sub delivers them (every task pushed at once, each with its own message id): minute 1
//! opens a trade for every user, minute 2 marks every open trade on a new candle. The write
//! ramp is the `aggressive` profile for one instance (700 writes/s at the start): the
//! figures are what one instance does inside its share.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use domain::market::candle::ts_id;
use domain::market::{Granularity, StreamKey};
use domain::messages::{PulseTask, StrategyRef, Version};
use domain::pulse::{EntrySignal, Sides, Strategy};
use futures::StreamExt;
use runtime::Env;
use store::market::BarRecord;
use store::paths;
use testkit::costs::{minus, route_ops};
use testkit::{keys, tokens};

const AUDIENCE: &str = "https://pulse.bench/";
const PUSH_SA: &str = "pulse-bench@hearth-bench.iam.gserviceaccount.com";

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).map(|v| v.parse()).transpose()?.unwrap_or(default)),
        None => Ok(default),
    }
}

fn bar(minute: i64, close: f64, z: f64) -> BarRecord {
    let ts = Utc.with_ymd_and_hms(2026, 1, 5, 13, 0, 0).unwrap() + TimeDelta::minutes(minute);
    BarRecord {
        ts,
        o: close,
        h: close * 1.001,
        l: close * 0.999,
        c: close,
        v: 1.0,
        bid: None,
        ask: None,
        ret: Some(0.0),
        vol: Some(0.01),
        scaled: Some(z),
        label: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let users = arg(&args, "--users", 2_000)?;
    let per_strategy = arg(&args, "--per-strategy", 100)?.clamp(1, 100);
    let firestore = testkit::emulators::firestore().await;
    let pubsub = testkit::emulators::pubsub().await;
    let project = testkit::project_id();
    testkit::pubsub::create_topic(pubsub, &project, "pulse-tasks").await;
    let jwks = testkit::jwks::JwksServer::start(&[keys::primary()], 300).await;
    let jwks_url = jwks.url();
    let vars: HashMap<String, String> = [
        ("GOOGLE_CLOUD_PROJECT", project.as_str()),
        ("FIRESTORE_EMULATOR_HOST", firestore),
        ("PUBSUB_EMULATOR_HOST", pubsub),
        ("HEARTH_GOOGLE_OIDC_JWKS_URL", jwks_url.as_str()),
        ("HEARTH_OIDC_AUDIENCE", AUDIENCE),
        ("HEARTH_OIDC_ALLOWED_EMAILS", PUSH_SA),
        ("HEARTH_METRICS_ALLOWED_EMAILS", PUSH_SA),
        ("HEARTH_PULSE_RAMP", "aggressive"),
        ("HEARTH_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let built = pulse::build("pulse", &Env::from_map(vars)).await?;
    let db = built.state.db().clone();
    let app = testkit::spawn_app(built.router).await;
    let token = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSH_SA), keys::primary());

    // Seed: strategies of `per_strategy` users each, one stream, two candles to come.
    let uids: Vec<String> = (0..users).map(|i| format!("bench-u{i:06}")).collect();
    let mut refs = Vec::new();
    for (n, chunk) in uids.chunks(per_strategy).enumerate() {
        let id = format!("s{n:05}");
        let strategy = Strategy {
            name: format!("bench {n}"),
            assigned_uids: chunk.to_vec(),
            instrument: "EUR_USD".into(),
            granularity: "M1".into(),
            enabled: true,
            entry: EntrySignal::VolScaledReturn { threshold: 1.5 },
            sides: Sides::Both,
            take_profit: 5.0,
            stop_loss: 5.0,
            max_candles: 100,
            notional: 1_000.0,
            vol_target: 0.01,
            max_notional: 10_000.0,
        };
        db.set(&paths::strategy("bench-tenant", &id)?, &strategy).await?;
        refs.push(StrategyRef { tenant_id: "bench-tenant".into(), strategy_id: id });
    }
    let stream = StreamKey::new("EUR_USD", Granularity::M1)?;
    let seed_bar = |b: BarRecord| {
        let db = db.clone();
        let stream = stream.clone();
        async move { db.set(&paths::stream_bar(&stream.id(), &ts_id(b.ts))?, &b).await }
    };
    seed_bar(bar(0, 100.0, 2.0)).await?;

    let metrics = || async {
        let text =
            app.client.get(app.url("/metrics")).bearer_auth(&token).send().await?.text().await?;
        anyhow::Ok(route_ops(&text, "/pubsub/pulse-tasks"))
    };
    for (minute, what) in [(1i64, "opened"), (2, "marked")] {
        if minute == 2 {
            seed_bar(bar(1, 100.1, 0.0)).await?;
        }
        let time = Utc.with_ymd_and_hms(2026, 1, 5, 13, 0, 0).unwrap() + TimeDelta::minutes(minute);
        let tasks: Vec<PulseTask> = refs
            .chunks(20)
            .map(|page| PulseTask {
                v: Version,
                minute: time,
                runs_in_minute: users as u64,
                strategies: page.to_vec(),
            })
            .collect();
        let before = metrics().await?;
        let started = Instant::now();
        let durations: Vec<anyhow::Result<Duration>> =
            futures::stream::iter(tasks.iter().enumerate())
                .map(|(i, task)| {
                    let body = gcp::pubsub::build_push_envelope_bytes(&gcp::pubsub::PushEvent {
                        message_id: format!("m{minute}-{i}"),
                        publish_time: Utc::now(),
                        attributes: BTreeMap::new(),
                        ordering_key: None,
                        delivery_attempt: Some(1),
                        subscription: format!(
                            "projects/{project}/subscriptions/pulse-tasks--pulse"
                        ),
                        data: serde_json::to_vec(task).expect("task"),
                    });
                    let (client, url, token) =
                        (app.client.clone(), app.url("/pubsub/pulse-tasks"), token.clone());
                    async move {
                        let t0 = Instant::now();
                        let res = client
                            .post(url)
                            .bearer_auth(token)
                            .header("content-type", "application/json")
                            .body(body?)
                            .send()
                            .await?;
                        anyhow::ensure!(res.status() == 204, "task answered {}", res.status());
                        Ok(t0.elapsed())
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await;
        let wall = started.elapsed();
        let mut durations: Vec<Duration> = durations.into_iter().collect::<anyhow::Result<_>>()?;
        durations.sort();
        let ops = minus(metrics().await?, before);
        let per_user = ops.map(|n| n as f64 / users as f64);
        println!(
            "minute {minute} ({what}): {users} users in {:.2} s = {:.0} users/min; task p50 {:.0} ms, p99 {:.0} ms; per user-minute: {:.2} reads, {:.2} writes, {:.2} round trips",
            wall.as_secs_f64(),
            users as f64 / wall.as_secs_f64() * 60.0,
            percentile(&durations, 0.5).as_secs_f64() * 1e3,
            percentile(&durations, 0.99).as_secs_f64() * 1e3,
            per_user[0],
            per_user[1],
            per_user[4],
        );
    }
    Ok(())
}
