//! Fan-out benchmark against the official Firestore emulator (not a timed test).
//!
//! Run with `cargo run --release -p feed-fanout --example bench_fanout [-- --followers N]
//! [--rounds R] [--sweep] [--explore [--reps K]]`.
//!
//! Seeds N followers (default 10,000) of one vendor, then, in each round, in the same run
//! against the same emulator, each into a fresh project that is cleared afterwards (so no
//! measurement pays for the emulator heap another one filled):
//!
//! 1. the naive approach (the Node original's): read 500 followers, commit one 500-write
//!    batch, wait, repeat, all sequential; then the follower reads alone (a query per page, and
//!    one query for all) to show what bounds it;
//! 2. `store::feed::Fanout` as the function uses it, the key space warm (ramp at its 10,000
//!    ops/s ceiling): one streamed follower query per 20 pages, BatchWrites of 100, 25 in
//!    flight, pages read ahead of the writes;
//! 3. the same with the Node.js SDK BulkWriter's 20-write BatchWrites;
//! 4. the emulator's ceiling: the same N entries written with no reads at all, by the fastest
//!    shapes `--explore` found (the best of the round is reported);
//!
//! and once the production ramp as a cold key space starts (500 ops/s, 500/50/5), which bounds
//! it by design. For each: entries written per second and Firestore round trips (queries +
//! commits or BatchWrites). Every run is checked: exactly N feeds hold the post.
//!
//! `--sweep` measures `Fanout` over batch sizes and requests in flight; `--explore` measures
//! query costs and raw writes over a grid (Commit vs BatchWrite, 20/100/500 writes, 1 to 32
//! in flight, one gRPC channel or four separate clients), K runs each.

// A command-line report: printing is the point.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::feed::{FeedItem, FeedPolicy, FeedSource, PostFacts, feed_item};
use firestore::gcloud_sdk::google::firestore::v1::{
    CommitRequest, Document, Value, Write, value::ValueType, write,
};
use store::feed::{Fanout, FollowerRecord};
use store::{BulkWriter, Db, DbConfig, RampPolicy, paths};

struct Outcome {
    name: String,
    written: usize,
    elapsed: Duration,
    round_trips: usize,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.written as f64 / self.elapsed.as_secs_f64()
    }
}

fn value(v: ValueType) -> Value {
    Value { value_type: Some(v) }
}

/// The naive approach: one page of 500 followers, one 500-write batch commit, sequentially.
async fn seed_approach(db: &Db, item: &FeedItem, page_size: u32) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let mut client = db.firestore().await?.client().get();
    let (mut written, mut round_trips) = (0, 0);
    let mut cursor = None;
    loop {
        let page = store::feed::Feeds::new(db)
            .follower_page(&item.vendor_id, cursor.as_ref(), None, page_size)
            .await?;
        round_trips += 1;
        if page.is_empty() {
            break;
        }
        let writes = page
            .iter()
            .map(|f| entry_write(db, item, &f.buyer_id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        written += writes.len();
        client
            .commit(CommitRequest {
                database: db.database_name().to_owned(),
                writes,
                ..Default::default()
            })
            .await?;
        round_trips += 1;
        cursor = page.last().map(store::feed::Follower::cursor);
        if page.len() < page_size as usize {
            break;
        }
    }
    Ok(Outcome {
        name: "seed: sequential 500-write commits".to_owned(),
        written,
        elapsed: began.elapsed(),
        round_trips,
    })
}

/// `store::feed::Fanout` as the function builds it (its default batch size and requests in
/// flight).
async fn bulk(db: &Db, name: &str, item: &FeedItem, ramp: RampPolicy) -> anyhow::Result<Outcome> {
    let fanout = Fanout::new(db, FeedPolicy::default(), ramp);
    let (_, stats) = fanout.add(item, None, None, None).await?;
    Ok(Outcome {
        name: name.to_owned(),
        written: stats.written,
        elapsed: stats.elapsed,
        round_trips: stats.round_trips(),
    })
}

async fn bulk_with(
    db: &Db,
    name: &str,
    item: &FeedItem,
    ramp: RampPolicy,
    in_flight: usize,
    batch: usize,
) -> anyhow::Result<Outcome> {
    let fanout = Fanout::new(db, FeedPolicy::default(), ramp)
        .with_max_in_flight(in_flight)
        .with_batch_size(batch);
    let (_, stats) = fanout.add(item, None, None, None).await?;
    Ok(Outcome {
        name: name.to_owned(),
        written: stats.written,
        elapsed: stats.elapsed,
        round_trips: stats.round_trips(),
    })
}

/// Which RPC carries a batch of writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    /// `Commit`: atomic, all or nothing (what the seed's `batch.commit()` sends).
    Commit,
    /// `BatchWrite`: not atomic, one status per write (what the bulk writer sends).
    BatchWrite,
}

/// How raw writes are sent: `batch` writes per request, `in_flight` requests at once, spread
/// round-robin over `channels` separate clients (separate HTTP/2 connections).
#[derive(Debug, Clone, Copy)]
struct Shape {
    rpc: Rpc,
    batch: usize,
    in_flight: usize,
    channels: usize,
}

impl Shape {
    fn label(&self) -> String {
        format!(
            "{:?} x{}, {} in flight, {} channel(s)",
            self.rpc, self.batch, self.in_flight, self.channels
        )
    }
}

/// The feed entry of `item` for `buyer`, as a raw `Write`.
fn entry_write(db: &Db, item: &FeedItem, buyer: &str) -> anyhow::Result<Write> {
    let ts = |t: chrono::DateTime<Utc>| {
        value(ValueType::TimestampValue(firestore::gcloud_sdk::prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }))
    };
    let fields: HashMap<String, Value> = HashMap::from([
        ("postId".to_owned(), value(ValueType::StringValue(item.post_id.clone()))),
        ("vendorId".to_owned(), value(ValueType::StringValue(item.vendor_id.clone()))),
        ("createdAt".to_owned(), ts(item.created_at)),
        ("expiresAt".to_owned(), ts(item.expires_at)),
        ("score".to_owned(), value(ValueType::IntegerValue(item.score))),
        ("source".to_owned(), value(ValueType::StringValue("following".to_owned()))),
    ]);
    let name = paths::feed_post(buyer, &item.post_id)?.full_name(db.documents_root());
    Ok(Write {
        operation: Some(write::Operation::Update(Document { name, fields, ..Default::default() })),
        ..Default::default()
    })
}

/// Writes one feed entry per buyer (no follower reads: the writes alone), shaped by `shape`.
/// Every client is a separate `Db` on the same project (its own gRPC channel); the first is
/// `db`, which also receives the check.
async fn raw_writes(
    db: &Db,
    host: &str,
    item: &FeedItem,
    followers: usize,
    shape: Shape,
) -> anyhow::Result<Outcome> {
    use firestore::gcloud_sdk::google::firestore::v1::BatchWriteRequest;
    use futures::stream::{self, StreamExt, TryStreamExt};
    let mut clients = vec![db.firestore().await?.client().get()];
    for _ in 1..shape.channels {
        let other = Db::new(DbConfig::emulator(db.config().project_id.clone(), host));
        clients.push(other.firestore().await?.client().get());
    }
    let writes = (0..followers)
        .map(|i| entry_write(db, item, &format!("b{i:06}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let chunks: Vec<Vec<Write>> = writes.chunks(shape.batch).map(<[Write]>::to_vec).collect();
    let requests = chunks.len();
    let database = db.database_name().to_owned();
    let began = Instant::now();
    let written: usize = stream::iter(chunks.into_iter().enumerate())
        .map(|(i, writes)| {
            let mut client = clients[i % clients.len()].clone();
            let database = database.clone();
            async move {
                let n = writes.len();
                match shape.rpc {
                    Rpc::Commit => {
                        client
                            .commit(CommitRequest { database, writes, ..Default::default() })
                            .await?;
                        Ok::<usize, anyhow::Error>(n)
                    }
                    Rpc::BatchWrite => {
                        let response = client
                            .batch_write(BatchWriteRequest {
                                database,
                                writes,
                                ..Default::default()
                            })
                            .await?
                            .into_inner();
                        let failed = response.status.iter().filter(|s| s.code != 0).count();
                        anyhow::ensure!(failed == 0, "{failed} writes of a BatchWrite failed");
                        Ok(n)
                    }
                }
            }
        })
        .buffer_unordered(shape.in_flight)
        .try_fold(0, |sum, n| async move { Ok(sum + n) })
        .await?;
    Ok(Outcome { name: shape.label(), written, elapsed: began.elapsed(), round_trips: requests })
}

/// Reads every follower page after page, as the seed does (without writing).
async fn read_followers(db: &Db, page_size: u32) -> anyhow::Result<(usize, Duration)> {
    let began = Instant::now();
    let (mut cursor, mut pages) = (None, 0);
    loop {
        let page = store::feed::Feeds::new(db)
            .follower_page("bench", cursor.as_ref(), None, page_size)
            .await?;
        pages += 1;
        if page.len() < page_size as usize {
            return Ok((pages, began.elapsed()));
        }
        cursor = page.last().map(store::feed::Follower::cursor);
    }
}

/// Every shape of the exploration grid.
fn grid() -> Vec<Shape> {
    let mut shapes = Vec::new();
    for rpc in [Rpc::Commit, Rpc::BatchWrite] {
        for batch in [20, 100, 500] {
            for in_flight in [1, 4, 16, 32] {
                for channels in [1, 4] {
                    if channels > in_flight {
                        continue;
                    }
                    shapes.push(Shape { rpc, batch, in_flight, channels });
                }
            }
        }
    }
    shapes
}

/// Drops every document of `db`'s project from the emulator (keeps its heap, and so its
/// garbage collector, out of the later measurements).
async fn clear(db: &Db, host: &str) -> anyhow::Result<()> {
    let url = format!(
        "http://{host}/emulator/v1/projects/{}/databases/(default)/documents",
        db.config().project_id
    );
    let res = reqwest::Client::new().delete(url).send().await?;
    anyhow::ensure!(res.status().is_success(), "clearing the emulator: {}", res.status());
    Ok(())
}

/// Writes with `shape` on a fresh project, checks exactly `followers` entries landed, clears.
async fn measure_shape(
    host: &str,
    item: &FeedItem,
    followers: usize,
    shape: Shape,
) -> anyhow::Result<Outcome> {
    let db = Db::new(DbConfig::emulator(testkit::project_id(), host));
    let o = raw_writes(&db, host, item, followers, shape).await?;
    let holders = store::feed::Feeds::new(&db).holders(&item.post_id).await?.len();
    anyhow::ensure!(holders == followers, "{}: {holders} feeds hold the post", shape.label());
    clear(&db, host).await?;
    Ok(o)
}

/// Measures every shape of the grid `reps` times (interleaved), a fresh project each time.
async fn explore(host: &str, item: &FeedItem, followers: usize, reps: usize) -> anyhow::Result<()> {
    for page_size in [500u32, 1000] {
        let db = Db::new(DbConfig::emulator(testkit::project_id(), host));
        let open = RampPolicy { start_ops_per_sec: 10_000.0, ..RampPolicy::default() };
        seed_followers(&db, followers, open).await?;
        if page_size == 500 {
            let last = store::feed::Feeds::new(&db)
                .follower_page("bench", None, None, followers as u32)
                .await?;
            for (label, after, limit) in [
                ("limit 1 from the start", None, 1u32),
                ("limit 500 from the start", None, 500),
                (
                    "limit 500 from the middle",
                    last.get(followers / 2).map(store::feed::Follower::cursor),
                    500,
                ),
                (
                    "limit 500 near the end",
                    last.get(followers - 501).map(store::feed::Follower::cursor),
                    500,
                ),
                ("all at once", None, followers as u32),
            ] {
                let mut times = Vec::new();
                for _ in 0..5 {
                    let t = Instant::now();
                    store::feed::Feeds::new(&db)
                        .follower_page("bench", after.as_ref(), None, limit)
                        .await?;
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                println!("query {label}: {times:.1?} ms");
            }
            for conc in [1usize, 2, 4, 8] {
                let t = Instant::now();
                let feeds = store::feed::Feeds::new(&db);
                let qs = (0..conc).map(|_| feeds.follower_page("bench", None, None, 500));
                futures::future::try_join_all(qs).await?;
                println!(
                    "{conc} concurrent 500-limit queries: {:.1} ms",
                    t.elapsed().as_secs_f64() * 1000.0
                );
            }
        }
        for _ in 0..reps {
            let (pages, elapsed) = read_followers(&db, page_size).await?;
            println!(
                "follower reads, pages of {page_size}: {pages} queries in {:.3}s",
                elapsed.as_secs_f64()
            );
        }
        clear(&db, host).await?;
    }
    let shapes = grid();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    for _ in 0..reps {
        for (i, shape) in shapes.iter().enumerate() {
            rates[i].push(measure_shape(host, item, followers, *shape).await?.rate());
        }
    }
    println!("\nraw writes of {followers} feed entries (no reads), {reps} run(s) per shape:");
    println!("{:<46} {:>10} {:>10} {:>10}", "shape", "median/s", "min/s", "max/s");
    for (shape, runs) in shapes.iter().zip(&mut rates) {
        runs.sort_by(f64::total_cmp);
        println!(
            "{:<46} {:>10.0} {:>10.0} {:>10.0}",
            shape.label(),
            runs[runs.len() / 2],
            runs[0],
            runs[runs.len() - 1]
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let followers: usize = args
        .iter()
        .position(|a| a == "--followers")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);

    let host = testkit::emulators::firestore().await;
    let open = RampPolicy {
        start_ops_per_sec: RampPolicy::default().max_ops_per_sec,
        ..RampPolicy::default()
    };
    let policy = FeedPolicy::default();
    let post = |id: &str| {
        let facts = PostFacts {
            vendor_id: "bench".to_owned(),
            active: true,
            created_at: Utc::now(),
            expires_at: None,
            premium: false,
        };
        feed_item(id, &facts, &policy, FeedSource::Following)
    };
    // Each approach gets its own fresh project with the same followers, so none pays for the
    // documents another one wrote; the approaches alternate over `--rounds` rounds.
    let fresh = || async {
        let db = Db::new(DbConfig::emulator(testkit::project_id(), host));
        seed_followers(&db, followers, open).await.map(|()| db)
    };
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(2);
    println!("{followers} followers, {rounds} round(s), a fresh project per measurement");
    {
        // Warm the emulator (JIT) and the client with an untimed run.
        let db = fresh().await?;
        bulk(&db, "warm-up", &post("warm-up"), open).await?;
        seed_approach(&db, &post("warm-up-2"), policy.page_size).await?;
    }
    if args.iter().any(|a| a == "--explore") {
        let reps = args
            .iter()
            .position(|a| a == "--reps")
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse())
            .transpose()?
            .unwrap_or(3);
        explore(host, &post("p"), followers, reps).await?;
        return Ok(());
    }
    if args.iter().any(|a| a == "--sweep") {
        for batch in [20usize, 50, 100, 500] {
            for n in [1usize, 4, 8, 16, 25, 50] {
                let db = fresh().await?;
                let o = bulk_with(&db, "sweep", &post("p"), open, n, batch).await?;
                check(&db, &o, followers).await?;
                clear(&db, host).await?;
                println!(
                    "batch {batch:>3}, in flight {n:>2}: {:>6.0} writes/s over {:.2}s",
                    o.rate(),
                    o.elapsed.as_secs_f64()
                );
            }
        }
    }

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut reads: Vec<(&str, usize, Duration)> = Vec::new();
    let fanout_name = "Fanout: streamed reads, BatchWrite x100, 25 in flight";
    for _ in 0..rounds {
        let db = fresh().await?;
        let o = seed_approach(&db, &post("p"), policy.page_size).await?;
        check(&db, &o, followers).await?;
        outcomes.push(o);
        // What bounds it: the follower reads alone, a query per page vs streamed.
        let (queries, elapsed) = read_followers(&db, policy.page_size).await?;
        reads.push(("a query per 500-follower page (the seed's reads)", queries, elapsed));
        let began = Instant::now();
        let all = store::feed::Feeds::new(&db)
            .follower_page("bench", None, None, followers as u32)
            .await?;
        anyhow::ensure!(all.len() == followers, "read {} followers", all.len());
        reads.push(("one query for every follower", 1, began.elapsed()));
        clear(&db, host).await?;

        let db = fresh().await?;
        let o = bulk(&db, fanout_name, &post("p"), open).await?;
        check(&db, &o, followers).await?;
        outcomes.push(o);
        clear(&db, host).await?;

        let db = fresh().await?;
        let o = bulk_with(
            &db,
            "Fanout, BatchWrite x20 (Node.js BulkWriter size), 25 in flight",
            &post("p"),
            open,
            store::bulk::DEFAULT_MAX_IN_FLIGHT,
            store::bulk::MAX_BATCH_SIZE,
        )
        .await?;
        check(&db, &o, followers).await?;
        outcomes.push(o);
        clear(&db, host).await?;

        // The emulator's ceiling: the same entries written with no reads at all, by the
        // fastest shapes of `--explore`; the best one of this round is kept.
        let mut best: Option<Outcome> = None;
        for shape in CEILING_SHAPES {
            let o = measure_shape(host, &post("p"), followers, shape).await?;
            if best.as_ref().is_none_or(|b| o.rate() > b.rate()) {
                best = Some(o);
            }
        }
        if let Some(mut best) = best {
            best.name = format!("ceiling, writes only: {}", best.name);
            outcomes.push(best);
        }
    }
    let db = fresh().await?;
    let o = bulk(&db, "Fanout, cold key space (500/50/5 ramp)", &post("p"), RampPolicy::default())
        .await?;
    check(&db, &o, followers).await?;
    outcomes.push(o);
    clear(&db, host).await?;

    let mean = |prefix: &str| {
        let runs: Vec<f64> =
            outcomes.iter().filter(|o| o.name.starts_with(prefix)).map(Outcome::rate).collect();
        runs.iter().sum::<f64>() / runs.len().max(1) as f64
    };
    let seed_rate = mean("seed");
    println!("\nfan-out of one post to {followers} followers (Firestore emulator, same run):");
    println!(
        "{:<72} {:>7} {:>9} {:>11} {:>7}",
        "approach", "time", "writes/s", "round trips", "vs seed"
    );
    for o in &outcomes {
        println!(
            "{:<72} {:>6.2}s {:>9.0} {:>11} {:>6.1}x",
            o.name,
            o.elapsed.as_secs_f64(),
            o.rate(),
            o.round_trips,
            o.rate() / seed_rate
        );
    }
    println!("(vs seed: against the mean of the seed runs)");
    let ceiling = mean("ceiling");
    println!(
        "mean writes/s: seed {seed_rate:.0} ({:.0}% of the ceiling), Fanout {:.0} ({:.0}% of the \
         ceiling, {:.1}x the seed), ceiling {ceiling:.0} ({:.1}x the seed)",
        100.0 * seed_rate / ceiling,
        mean(fanout_name),
        100.0 * mean(fanout_name) / ceiling,
        mean(fanout_name) / seed_rate,
        ceiling / seed_rate,
    );
    // Medians too: one JVM pause in the emulator can halve a round, and the first round of
    // every approach is its slowest (the emulator warming up).
    let median = |prefix: &str| {
        let mut runs: Vec<f64> =
            outcomes.iter().filter(|o| o.name.starts_with(prefix)).map(Outcome::rate).collect();
        runs.sort_by(f64::total_cmp);
        match runs.len() {
            0 => 0.0,
            n if n % 2 == 1 => runs[n / 2],
            n => (runs[n / 2 - 1] + runs[n / 2]) / 2.0,
        }
    };
    println!(
        "median writes/s: seed {:.0}, Fanout {:.0} ({:.1}x the seed), ceiling {:.0} ({:.1}x \
         the seed)",
        median("seed"),
        median(fanout_name),
        median(fanout_name) / median("seed"),
        median("ceiling"),
        median("ceiling") / median("seed"),
    );
    println!("\nfollower reads alone ({followers} followers):");
    for (name, queries, elapsed) in &reads {
        println!("{name:<50} {queries:>3} queries {:>6.2}s", elapsed.as_secs_f64());
    }
    Ok(())
}

/// The shapes the ceiling is measured with (the fastest of `--explore` on a 2-core machine).
const CEILING_SHAPES: [Shape; 4] = [
    Shape { rpc: Rpc::BatchWrite, batch: 100, in_flight: 4, channels: 1 },
    Shape { rpc: Rpc::BatchWrite, batch: 100, in_flight: 16, channels: 1 },
    Shape { rpc: Rpc::Commit, batch: 500, in_flight: 16, channels: 4 },
    Shape { rpc: Rpc::Commit, batch: 500, in_flight: 4, channels: 1 },
];

async fn seed_followers(db: &Db, followers: usize, ramp: RampPolicy) -> anyhow::Result<()> {
    let mut writer = BulkWriter::new(db, ramp);
    for i in 0..followers {
        let buyer = format!("b{i:06}");
        let at = Utc.timestamp_opt(1_700_000_000 + i as i64, 0).single().unwrap_or_default();
        writer.set(paths::follow("bench", &buyer)?, &FollowerRecord::new("bench", &buyer, at));
    }
    let seeded = writer.flush().await;
    anyhow::ensure!(seeded.is_complete(), "seeding failed: {:?}", seeded.failed.first());
    Ok(())
}

/// Exactly `followers` feeds hold the post, and the run says it wrote that many.
async fn check(db: &Db, outcome: &Outcome, followers: usize) -> anyhow::Result<()> {
    let holders = store::feed::Feeds::new(db).holders("p").await?.len();
    anyhow::ensure!(holders == followers, "{}: {holders} feeds hold the post", outcome.name);
    anyhow::ensure!(outcome.written == followers, "{}: wrote {}", outcome.name, outcome.written);
    Ok(())
}
