//! Latency and Firestore cost of `listProducts` against the official Firestore emulator (not a
//! timed test).
//!
//! Run with `cargo run -p api --example bench_list_products [-- --products N --requests R]`
//! (debug build, as the repository's tests run; add `--release` for production-like latency).
//!
//! The api is served in-process behind the full `runtime::Server` layers (signed ID tokens from
//! a local JWKS server). It seeds N active products of one vendor over 4 categories, then walks
//! pages of 20 with their cursors, R requests per mode, one at a time:
//!
//! - `miss`: `HEARTH_CATALOGUE_CACHE_SECS=0`, every page is a Firestore query (the cost of a
//!   page a warm instance has not seen);
//! - `fill`: a cached instance's first walk (each distinct page misses once; the walk restarts
//!   a category after its last page, so later pages repeat);
//! - `hit`: the same walk again, every page from the instance cache.
//!
//! For each it reports p50 / p99 / max and the Firestore operations per page, read from the
//! function's own `hearth_firestore_ops_total` counters (`runtime::ops`): reads, writes, query
//! results and round trips, the per-user rate limit's read and write included.

// A command-line report: printing is the point.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use api::{AppState, Config, app};
use runtime::{BaseConfig, Env, Metrics};
use serde_json::{Value, json};
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

struct Args {
    products: usize,
    requests: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args { products: 200, requests: 200 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--products" => out.products = value.parse()?,
            "--requests" => out.requests = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(out)
}

async fn instance(vars: &HashMap<String, String>) -> anyhow::Result<(TestApp, Metrics)> {
    let base = BaseConfig::from_map(vars.clone())?;
    let config = Config::load(base, &Env::from_map(vars.clone()))?;
    let state = AppState::build(&config).await?;
    let server = runtime::Server::new("api", &config.base, Arc::new(runtime::LogDeadLetters));
    let metrics = server.metrics().clone();
    Ok((testkit::spawn_app(server.router(app(state))).await, metrics))
}

fn token(project: &str, uid: &str) -> String {
    let mut claims = tokens::firebase_id_claims(project, uid);
    claims["tenant_id"] = json!(domain::tenancy::personal_tenant_id(uid));
    claims["role"] = json!("owner");
    tokens::sign(&claims, keys::primary())
}

async fn call(app: &TestApp, token: &str, name: &str, data: Value) -> anyhow::Result<Value> {
    let response = app
        .client
        .post(app.url(&format!("/{name}")))
        .bearer_auth(token)
        .json(&json!({"data": data}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "{name}: {status} {body}");
    Ok(body["result"].clone())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

async fn run_mode(
    label: &str,
    app: &TestApp,
    metrics: &Metrics,
    buyer: &str,
    requests: usize,
) -> anyhow::Result<()> {
    let categories = ["kitchen", "garden", "toys", "books"];
    let before = metrics.firestore_ops("/listProducts");
    let mut times = Vec::with_capacity(requests);
    let mut cursors: HashMap<&str, Option<String>> = HashMap::new();
    let mut products = 0usize;
    for i in 0..requests {
        let category = categories[i % categories.len()];
        let mut data = json!({"category": category, "limit": 20});
        if let Some(Some(c)) = cursors.get(category) {
            data["cursor"] = json!(c);
        }
        let t = Instant::now();
        let page = call(app, buyer, "listProducts", data).await?;
        times.push(t.elapsed());
        products += page["products"].as_array().map_or(0, Vec::len);
        cursors.insert(category, page["nextCursor"].as_str().map(str::to_owned));
    }
    let after = metrics.firestore_ops("/listProducts");
    times.sort();
    #[allow(clippy::cast_precision_loss)]
    let per = |n: u64| n as f64 / requests as f64;
    println!(
        "{label:<5} {requests} pages ({:.1} products/page): p50 {}  p99 {}  max {}  | per page: reads {:.1} (query results {:.1}), writes {:.1}, round trips {:.1}",
        products as f64 / requests as f64,
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        per(after.reads - before.reads),
        per(after.query_results - before.query_results),
        per(after.writes - before.writes),
        per(after.round_trips - before.round_trips),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let firestore = testkit::emulators::firestore().await;
    let pubsub = testkit::emulators::pubsub().await;
    let project = testkit::project_id();
    let jwks = JwksServer::start(&[keys::primary()], 300).await;
    let jwks_url = jwks.url();
    let limits = "listProducts=1000000/60,createProduct=1000000/60,publishProduct=1000000/60";
    let mut vars: HashMap<String, String> = [
        ("GOOGLE_CLOUD_PROJECT", project.as_str()),
        ("FIRESTORE_EMULATOR_HOST", firestore),
        ("PUBSUB_EMULATOR_HOST", pubsub),
        ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.as_str()),
        ("HEARTH_RATE_LIMITS", limits),
        ("HEARTH_LOG_FORMAT", "pretty"),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.insert("HEARTH_CATALOGUE_CACHE_SECS".to_owned(), "0".to_owned());
    let (uncached, uncached_metrics) = instance(&vars).await?;
    vars.insert("HEARTH_CATALOGUE_CACHE_SECS".to_owned(), "600".to_owned());
    let (cached, cached_metrics) = instance(&vars).await?;

    let vendor = token(&project, "bench-vendor");
    let buyer = token(&project, "bench-buyer");
    call(&uncached, &vendor, "becomeVendor", json!({"name": "Bench", "handle": "bench"})).await?;
    let categories = ["kitchen", "garden", "toys", "books"];
    let seeding = Instant::now();
    for i in 0..args.products {
        let fields = json!({"title": format!("Item {i}"), "category": categories[i % 4],
                            "priceMinor": 100 + (i as i64 * 37) % 5_000, "currency": "usd",
                            "images": ["https://img.example.com/i.png"]});
        let created = call(&uncached, &vendor, "createProduct", fields).await?;
        call(&uncached, &vendor, "publishProduct", json!({"productId": created["productId"]}))
            .await?;
    }
    println!(
        "seeded {} active products in 4 categories in {:.1} s; Firestore emulator, debug build",
        args.products,
        seeding.elapsed().as_secs_f64()
    );
    // Warm-up: connections open, the buyer provisioned lazily, the limiter's documents exist.
    for _ in 0..5 {
        call(&uncached, &buyer, "listProducts", json!({"limit": 1})).await?;
        call(&cached, &buyer, "listProducts", json!({"limit": 1})).await?;
    }
    run_mode("miss", &uncached, &uncached_metrics, &buyer, args.requests).await?;
    // The cached instance sees each page once (a miss), then serves the same walk again.
    run_mode("fill", &cached, &cached_metrics, &buyer, args.requests).await?;
    run_mode("hit", &cached, &cached_metrics, &buyer, args.requests).await?;
    drop(jwks);
    Ok(())
}
