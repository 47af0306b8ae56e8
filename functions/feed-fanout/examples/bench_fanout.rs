//! Fan-out benchmark against the official Firestore emulator (not a timed test).
//!
//! Run with `cargo run --release -p feed-fanout --example bench_fanout [-- --followers N]`.
//!
//! Seeds N followers (default 10,000) of one vendor, then fans one post out three ways in the
//! same run against the same emulator, each into fresh documents:
//!
//! 1. the seed's approach (seed 002 section 4.5): read 500 followers, commit one 500-write
//!    batch, wait, repeat, all sequential;
//! 2. `store::feed::Fanout` with the key space warm (ramp at its 10,000 ops/s ceiling):
//!    parallel BatchWrites of 20 (25 in flight), the next follower page read while the
//!    current one is written;
//! 3. the same with the production ramp as a cold key space starts (500 ops/s, 500/50/5),
//!    which bounds it by design, shown for honesty.
//!
//! For each: entries written per second and Firestore round trips (queries + commits or
//! BatchWrites). Every run is checked: exactly N feeds hold the post.

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
    name: &'static str,
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

/// Seed 002 section 4.5: one page of 500 followers, one 500-write batch commit, sequentially.
async fn seed_approach(db: &Db, item: &FeedItem, page_size: u32) -> anyhow::Result<Outcome> {
    let began = Instant::now();
    let mut client = db.firestore().await?.client().get();
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
    let (mut written, mut round_trips) = (0, 0);
    let mut cursor = None;
    loop {
        let page =
            store::feed::follower_page(db, &item.vendor_id, cursor.as_ref(), None, page_size)
                .await?;
        round_trips += 1;
        if page.is_empty() {
            break;
        }
        let writes = page
            .iter()
            .map(|f| {
                let name =
                    paths::feed_post(&f.buyer_id, &item.post_id)?.full_name(db.documents_root());
                Ok(Write {
                    operation: Some(write::Operation::Update(Document {
                        name,
                        fields: fields.clone(),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>, store::Error>>()?;
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
        name: "seed: sequential 500-write commits",
        written,
        elapsed: began.elapsed(),
        round_trips,
    })
}

async fn bulk(
    db: &Db,
    name: &'static str,
    item: &FeedItem,
    ramp: RampPolicy,
) -> anyhow::Result<Outcome> {
    bulk_with(db, name, item, ramp, store::bulk::DEFAULT_MAX_IN_FLIGHT).await
}

async fn bulk_with(
    db: &Db,
    name: &'static str,
    item: &FeedItem,
    ramp: RampPolicy,
    in_flight: usize,
) -> anyhow::Result<Outcome> {
    let fanout = Fanout::new(db, FeedPolicy::default(), ramp).with_max_in_flight(in_flight);
    let (_, stats) = fanout.add(item, None, None, None).await?;
    Ok(Outcome {
        name,
        written: stats.written,
        elapsed: stats.elapsed,
        round_trips: stats.round_trips(),
    })
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
    if args.iter().any(|a| a == "--sweep") {
        for n in [1usize, 2, 4, 8, 16, 25, 50] {
            let db = fresh().await?;
            let o = bulk_with(&db, "sweep", &post("sweep"), open, n).await?;
            println!(
                "in flight {n:>2}: {:>6.0} writes/s over {:.2}s",
                o.rate(),
                o.elapsed.as_secs_f64()
            );
        }
    }

    let mut outcomes: Vec<Outcome> = Vec::new();
    for _ in 0..rounds {
        let db = fresh().await?;
        let o = seed_approach(&db, &post("p"), policy.page_size).await?;
        check(&db, &o, followers).await?;
        outcomes.push(o);
        let db = fresh().await?;
        let o =
            bulk(&db, "bulk writer, warm key space (10,000 ops/s ramp)", &post("p"), open).await?;
        check(&db, &o, followers).await?;
        outcomes.push(o);
    }
    let db = fresh().await?;
    let o =
        bulk(&db, "bulk writer, cold key space (500/50/5 ramp)", &post("p"), RampPolicy::default())
            .await?;
    check(&db, &o, followers).await?;
    outcomes.push(o);

    let seed_runs: Vec<f64> =
        outcomes.iter().filter(|o| o.name.starts_with("seed")).map(Outcome::rate).collect();
    let seed_rate = seed_runs.iter().sum::<f64>() / seed_runs.len() as f64;
    println!("\nfan-out of one post to {followers} followers (Firestore emulator, same run):");
    println!(
        "{:<50} {:>10} {:>12} {:>12} {:>8}",
        "approach", "time", "writes/s", "round trips", "vs seed"
    );
    for o in &outcomes {
        println!(
            "{:<50} {:>9.2}s {:>12.0} {:>12} {:>7.1}x",
            o.name,
            o.elapsed.as_secs_f64(),
            o.rate(),
            o.round_trips,
            o.rate() / seed_rate
        );
    }
    println!("(vs seed: against the mean of the seed runs)");
    Ok(())
}

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
    let holders = store::feed::holders(db, "p").await?.len();
    anyhow::ensure!(holders == followers, "{}: {holders} feeds hold the post", outcome.name);
    anyhow::ensure!(outcome.written == followers, "{}: wrote {}", outcome.name, outcome.written);
    Ok(())
}
