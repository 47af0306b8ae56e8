//! Search benchmark against the official Firestore emulator (not a timed test).
//!
//! Run with `cargo run --release -p search --example bench_search [-- --products N]
//! [--queries Q] [--lag-writes W]` (defaults: 10,000 products, 2,000 queries of each kind, 20
//! writes for the sync lag).
//!
//! 1. Seeds N generated active products (titles from a small vocabulary, 20 categories, 200
//!    vendors) into a fresh project with the bulk writer.
//! 2. Start-up: builds the function exactly as `main.rs` does (`search::build`) and times
//!    until the replica is ready (snapshot read at one read time, index built, listen stream
//!    current), with the process's resident memory before and after (`VmRSS`, Linux).
//! 3. Queries, in process against the engine (no HTTP, no rate limiter, no cache): Q
//!    `searchProducts` queries (one to three words, a third of them misspelt, a third with a
//!    category filter, every fourth sorted by price) and Q `suggest` prefixes (2 to 5 letters),
//!    sequential then from 8 tasks at once: queries per second, p50 and p99.
//! 4. Sync lag: W times, a product written to Firestore until the engine finds it.

// A command-line report: printing is the point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use domain::catalogue::{Product, ProductStatus};
use domain::search::{SearchInput, Sort, SuggestInput};
use runtime::Env;
use store::{BulkWriter, Db, DbConfig, RampPolicy, paths};

const WORDS: [&str; 24] = [
    "leather", "running", "shoes", "boots", "wool", "socks", "linen", "shirt", "denim", "jacket",
    "silver", "ring", "ceramic", "mug", "oak", "table", "brass", "lantern", "cotton", "scarf",
    "canvas", "bag", "copper", "kettle",
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deterministic pseudo-random stream (xorshift), so runs compare.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % 1_000_003).unwrap_or(0)
    }
    fn word(&mut self) -> &'static str {
        WORDS[self.next() % WORDS.len()]
    }
}

fn generated(i: usize, draw: &mut Draw) -> Product {
    let title = format!("{} {} {}", draw.word(), draw.word(), draw.word());
    let vendor = i % 200;
    Product {
        vendor_id: format!("v{vendor}"),
        vendor_name: format!("Vendor {vendor}"),
        vendor_avatar_url: None,
        description: format!("Handmade {title}, item {i}"),
        title,
        category: format!("c{}", i % 20),
        tags: vec![draw.word().to_owned()],
        images: vec![],
        price_minor: i64::try_from(100 + draw.next() % 50_000).unwrap_or(100),
        currency: "usd".into(),
        variants: vec![],
        status: ProductStatus::Active,
        in_stock: !i.is_multiple_of(7),
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn misspell(word: &str, draw: &mut Draw) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    let i = draw.next() % chars.len();
    chars.insert(i, chars[i]);
    chars.into_iter().collect()
}

fn report(what: &str, mut took: Vec<Duration>, wall: Duration) {
    took.sort();
    let pct = |p: f64| {
        let i = ((took.len() as f64 - 1.0) * p).round() as usize;
        took[i].as_secs_f64() * 1000.0
    };
    println!(
        "{what:<34} {:>9.0} q/s   p50 {:>7.3} ms   p99 {:>7.3} ms",
        took.len() as f64 / wall.as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
}

async fn timed<F, Fut>(inputs: &[F], tasks: usize) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let chunks: Vec<&[F]> = inputs.chunks(inputs.len().div_ceil(tasks)).collect();
    let per_task = futures::future::join_all(chunks.into_iter().map(|chunk| async move {
        let mut took = Vec::with_capacity(chunk.len());
        for f in chunk {
            let t = Instant::now();
            f().await;
            took.push(t.elapsed());
        }
        took
    }))
    .await;
    (per_task.into_iter().flatten().collect(), started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = arg("--products", 10_000);
    let q = arg("--queries", 2_000);
    let lag_writes = arg("--lag-writes", 20).max(1);
    let host = testkit::emulators::firestore().await;
    let project = testkit::project_id();
    let db = Db::new(DbConfig::emulator(project.clone(), host));
    let open = RampPolicy { start_ops_per_sec: 10_000.0, ..RampPolicy::default() };
    let mut writer = BulkWriter::new(&db, open).with_max_in_flight(16).with_batch_size(250);
    let mut draw = Draw(0x9E37_79B9_7F4A_7C15);
    let seeding = Instant::now();
    for i in 0..n {
        writer.set(paths::product(&format!("p{i:06}"))?, &generated(i, &mut draw));
        if writer.pending() >= 5_000 {
            writer.flush().await;
        }
    }
    let seeded = writer.flush().await;
    anyhow::ensure!(seeded.is_complete(), "seeding failed: {seeded:?}");
    println!("seeded {n} products in {:.1} s", seeding.elapsed().as_secs_f64());

    let before = rss_mib();
    let started = Instant::now();
    let env = Env::from_pairs([
        ("GOOGLE_CLOUD_PROJECT", project.as_str()),
        ("FIRESTORE_EMULATOR_HOST", host),
        ("HEARTH_SEARCH_CACHE_TTL_SECS", "0"),
        ("HEARTH_LOG_LEVEL", "warn"),
    ]);
    let built = search::build("search", &env).await?;
    let state = built.state;
    while !state.status.is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let startup = started.elapsed();
    let after = rss_mib();
    println!(
        "start-up to ready: {:.2} s; resident memory {before:.0} MiB before, {after:.0} MiB after (+{:.0} MiB)",
        startup.as_secs_f64(),
        after - before
    );

    let engine = state.engine.clone();
    let mut searches = Vec::with_capacity(q);
    for i in 0..q {
        let words = 1 + draw.next() % 3;
        let mut text: Vec<String> = (0..words).map(|_| draw.word().to_owned()).collect();
        if i % 3 == 0 {
            text[0] = misspell(&text[0], &mut draw);
        }
        let input = SearchInput {
            query: text.join(" "),
            category: (i % 3 == 1).then(|| format!("c{}", draw.next() % 20)),
            sort: if i.is_multiple_of(4) { Sort::PriceAsc } else { Sort::Relevance },
            ..Default::default()
        };
        searches.push(input.validate()?);
    }
    let mut prefixes = Vec::with_capacity(q);
    for _ in 0..q {
        let word = draw.word();
        let len = (2 + draw.next() % 4).min(word.len());
        prefixes.push(SuggestInput { prefix: word[..len].to_owned(), limit: None }.validate()?);
    }
    let search_calls: Vec<_> = searches
        .iter()
        .map(|query| {
            let engine = engine.clone();
            move || {
                let engine = engine.clone();
                async move {
                    engine.search(query).await.expect("search");
                }
            }
        })
        .collect();
    let suggest_calls: Vec<_> = prefixes
        .iter()
        .map(|query| {
            let engine = engine.clone();
            move || {
                let engine = engine.clone();
                async move {
                    engine.suggest(query).await.expect("suggest");
                }
            }
        })
        .collect();
    for tasks in [1, 8] {
        let (took, wall) = timed(&search_calls, tasks).await;
        report(&format!("searchProducts, {tasks} task(s)"), took, wall);
        let (took, wall) = timed(&suggest_calls, tasks).await;
        report(&format!("suggest, {tasks} task(s)"), took, wall);
    }

    let mut lags = Vec::new();
    for i in 0..lag_writes {
        let mut p = generated(n + i, &mut draw);
        p.title = format!("zeppelin{i} model");
        let written = Instant::now();
        db.set(&paths::product(&format!("lag{i}"))?, &p).await?;
        let query =
            SearchInput { query: format!("zeppelin{i}"), ..Default::default() }.validate()?;
        loop {
            let id = format!("lag{i}");
            if engine.search(&query).await?.hits.iter().any(|h| h.id == id) {
                break;
            }
            anyhow::ensure!(
                written.elapsed() < Duration::from_secs(30),
                "never searchable (changes applied {}, snapshots {})",
                state.status.applied.load(std::sync::atomic::Ordering::Relaxed),
                state.status.snapshots.load(std::sync::atomic::Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lags.push(written.elapsed());
    }
    lags.sort();
    println!(
        "sync lag, Firestore write to searchable: p50 {:.0} ms, max {:.0} ms ({lag_writes} writes)",
        lags[lags.len() / 2].as_secs_f64() * 1000.0,
        lags[lags.len() - 1].as_secs_f64() * 1000.0
    );
    Ok(())
}
