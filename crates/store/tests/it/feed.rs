//! The feed fan-out against the emulator: 10,000 followers, exact delivery, crash and redo,
//! continuation ranges, removal from every feed.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use domain::feed::{FeedPolicy, FeedSource, PostFacts, feed_item};
use domain::messages::FollowerCursor;
use store::feed::{Fanout, FollowerRecord, RunEnd};
use store::{BulkWriter, Db, RampPolicy, paths};

/// A ramp that does not hold the emulator back (a warmed-up key space).
fn open_ramp() -> RampPolicy {
    RampPolicy { start_ops_per_sec: 10_000.0, ..RampPolicy::default() }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap()
}

/// `n` followers of `vendor`; every three share a `followedAt`, so pages split ties.
async fn seed_followers(db: &Db, vendor: &str, n: usize) -> Vec<String> {
    let mut writer = BulkWriter::new(db, open_ramp());
    let mut buyers = Vec::with_capacity(n);
    for i in 0..n {
        let buyer = format!("b{i:05}");
        let record = FollowerRecord::new(vendor, &buyer, at(1_700_000_000 + (i / 3) as i64));
        writer.set(paths::follow(vendor, &buyer).unwrap(), &record);
        buyers.push(buyer);
    }
    let report = writer.flush().await;
    assert!(report.is_complete(), "{:?}", report.failed);
    buyers
}

fn post(vendor: &str) -> PostFacts {
    PostFacts {
        vendor_id: vendor.to_owned(),
        active: true,
        created_at: Utc::now(),
        expires_at: None,
        premium: false,
    }
}

async fn assert_exactly(db: &Db, post_id: &str, buyers: &[String]) {
    let holders = store::feed::Feeds::new(db).holders(post_id).await.unwrap();
    let unique: HashSet<&String> = holders.iter().collect();
    assert_eq!(unique.len(), holders.len(), "a feed holds the post twice");
    let expected: HashSet<&String> = buyers.iter().collect();
    assert_eq!(unique.len(), expected.len(), "feeds holding the post");
    assert_eq!(unique, expected);
}

#[tokio::test]
async fn ten_thousand_followers_crash_redo_and_delete() {
    const FOLLOWERS: usize = 10_000;
    let db = crate::fresh_db().await;
    let buyers = seed_followers(&db, "v1", FOLLOWERS).await;
    let policy = FeedPolicy::default();
    let fanout = Fanout::new(&db, policy, open_ramp());
    let item = feed_item("p1", &post("v1"), &policy, FeedSource::Following);

    // A crash part-way: the run is cut off while its writes are in flight (paced at 2,000
    // writes/s, so 400 ms cannot be enough for 10,000 however fast the emulator answers).
    let paced = Fanout::new(&db, policy, RampPolicy { start_ops_per_sec: 2_000.0, ..open_ramp() });
    let crashed =
        tokio::time::timeout(Duration::from_millis(400), paced.add(&item, None, None, None)).await;
    assert!(crashed.is_err(), "the run should have been cut off");
    let partial = store::feed::Feeds::new(&db).holders("p1").await.unwrap().len();
    assert!(partial < FOLLOWERS, "{partial}");

    // Another crash after three pages, its continuation never published.
    let (end, stats) = fanout.add(&item, None, None, Some(3)).await.unwrap();
    assert_eq!(stats.written, 1_500);
    assert!(matches!(end, RunEnd::HandOff(Some(_))));

    // The redelivery runs the whole fan-out again: exactly one entry per follower.
    let (end, stats) = fanout.add(&item, None, None, None).await.unwrap();
    assert_eq!(end, RunEnd::Done);
    assert_eq!(stats.written, FOLLOWERS);
    println!(
        "fan-out: {} entries in {:?} ({:.0}/s), {} queries + {} BatchWrites",
        stats.written,
        stats.elapsed,
        stats.written as f64 / stats.elapsed.as_secs_f64(),
        stats.reads,
        stats.write_requests
    );
    // Round trips: one streamed query of 20 pages, then one that finds the range's end; one
    // BatchWrite per 100 writes (more only if some were retried).
    assert_eq!(stats.reads, 2);
    assert!(stats.write_requests >= FOLLOWERS / store::feed::FANOUT_BATCH_SIZE);
    assert_exactly(&db, "p1", &buyers).await;
    let entry: serde_json::Value =
        db.get(&paths::feed_post("b00042", "p1").unwrap()).await.unwrap().expect("entry");
    assert_eq!(entry["postId"], "p1");
    assert_eq!(entry["vendorId"], "v1");
    assert_eq!(entry["source"], "following");
    assert_eq!(entry["score"], item.score);

    // Deleting the post removes it everywhere, across hand-offs.
    let (end, stats) = fanout.remove("p1", Some(4)).await.unwrap();
    assert_eq!(end, RunEnd::HandOff(None));
    assert_eq!(stats.written, 2_000);
    let (end, stats) = fanout.remove("p1", None).await.unwrap();
    assert_eq!(end, RunEnd::Done);
    assert_eq!(stats.written, FOLLOWERS - 2_000);
    assert!(store::feed::Feeds::new(&db).holders("p1").await.unwrap().is_empty());
}

#[tokio::test]
async fn continuation_ranges_cover_every_follower_once() {
    let db = crate::fresh_db().await;
    let buyers = seed_followers(&db, "v2", 2_345).await;
    let policy = FeedPolicy { page_size: 200, ..FeedPolicy::default() };
    let fanout = Fanout::new(&db, policy, open_ramp());
    let item = feed_item("p2", &post("v2"), &policy, FeedSource::Following);

    // A chain of tasks, two pages each, each starting where the previous one handed off.
    let mut cursor: Option<FollowerCursor> = None;
    let mut runs = 0;
    loop {
        runs += 1;
        let (end, _) = fanout.add(&item, cursor.as_ref(), None, Some(2)).await.unwrap();
        match end {
            RunEnd::Done => break,
            RunEnd::HandOff(next) => cursor = next,
        }
        assert!(runs < 20);
    }
    assert_eq!(runs, 6, "2,345 followers at 400 per task");
    assert_exactly(&db, "p2", &buyers).await;

    // A bounded range (start_after, end_at] writes exactly its followers.
    let page = store::feed::Feeds::new(&db).follower_page("v2", None, None, 1_000).await.unwrap();
    let start = page[99].cursor();
    let end = page[849].cursor();
    let item3 = feed_item("p3", &post("v2"), &policy, FeedSource::Following);
    let (done, stats) = fanout.add(&item3, Some(&start), Some(&end), None).await.unwrap();
    assert_eq!(done, RunEnd::Done);
    assert_eq!(stats.written, 750);
    let expected: Vec<String> = page[100..850].iter().map(|f| f.buyer_id.clone()).collect();
    assert_exactly(&db, "p3", &expected).await;
}

#[tokio::test]
async fn follow_backfill_and_unfollow() {
    let db = crate::fresh_db().await;
    let policy = FeedPolicy::default();
    let fanout = Fanout::new(&db, policy, open_ramp());
    let first =
        store::feed::Feeds::new(&db).follow("buyer", "v9", at(1_700_000_000)).await.unwrap();
    assert_eq!(first.delta, 1);
    let again =
        store::feed::Feeds::new(&db).follow("buyer", "v9", at(1_700_000_500)).await.unwrap();
    assert_eq!(again.delta, 0, "a repeated follow counts once");
    assert_eq!(store::feed::Feeds::new(&db).followed_vendors("buyer", 10).await.unwrap(), ["v9"]);
    let record: FollowerRecord =
        db.get(&paths::follow("v9", "buyer").unwrap()).await.unwrap().expect("record");
    assert_eq!(record.followed_at.as_second(), 1_700_000_000, "kept the first follow time");

    let items: Vec<_> = (0..3)
        .map(|i| feed_item(&format!("p{i}"), &post("v9"), &policy, FeedSource::Following))
        .collect();
    fanout.write_items("buyer", &items).await.unwrap();
    let other = feed_item("other", &post("v8"), &policy, FeedSource::Following);
    fanout.write_items("buyer", &[other]).await.unwrap();
    assert_eq!(store::feed::Feeds::new(&db).feed_page("buyer", None, 10).await.unwrap().len(), 4);

    fanout.remove_vendor("buyer", "v9").await.unwrap();
    let left = store::feed::Feeds::new(&db).feed_page("buyer", None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].post_id, "other");
    assert_eq!(store::feed::Feeds::new(&db).unfollow("buyer", "v9").await.unwrap().delta, -1);
    assert_eq!(store::feed::Feeds::new(&db).unfollow("buyer", "v9").await.unwrap().delta, 0);
    assert!(store::feed::Feeds::new(&db).followed_vendors("buyer", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_entries_are_swept_and_posts_are_left_alone() {
    let db = crate::fresh_db().await;
    let policy = FeedPolicy::default();
    let fanout = Fanout::new(&db, policy, open_ramp());
    let old = PostFacts { expires_at: Some(at(1_000)), ..post("v") };
    let items: Vec<_> = (0..7)
        .map(|i| feed_item(&format!("old-{i}"), &old, &policy, FeedSource::Following))
        .collect();
    for buyer in ["a", "b", "c"] {
        fanout.write_items(buyer, &items).await.unwrap();
        fanout
            .write_items(buyer, &[feed_item("live", &post("v"), &policy, FeedSource::Following)])
            .await
            .unwrap();
    }
    // A vendor's post with an expiresAt in the past is not a feed entry.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ExpiredPost {
        vendor_id: &'static str,
        post_id: &'static str,
        #[serde(with = "firestore::serialize_as_timestamp")]
        expires_at: firestore::FirestoreInstant,
    }
    let record = ExpiredPost {
        vendor_id: "v",
        post_id: "old-0",
        expires_at: firestore::FirestoreInstant::from_second(1_000).unwrap(),
    };
    db.set(&paths::post("old-0").unwrap(), &record).await.unwrap();

    // Entries carry `ttlAt` (the TTL backstop's field) equal to `expiresAt`; posts do not.
    let entry: serde_json::Value =
        db.get(&paths::feed_post("a", "live").unwrap()).await.unwrap().unwrap();
    assert!(!entry["ttlAt"].is_null(), "{entry}");
    assert_eq!(entry["ttlAt"], entry["expiresAt"], "{entry}");

    // 21 expired entries and 1 expired vendor post, in pages of 5 with the run's cursor.
    let mut after = store::cleanup::After::default();
    let (mut deleted, mut pages) = (0, 0);
    loop {
        let sweep = &store::cleanup::FEED_ITEMS;
        let page = store::cleanup::Sweeper::new(&db)
            .delete_expired_page(sweep, Utc::now(), 5, &mut after)
            .await
            .unwrap();
        deleted += page.changed;
        pages += 1;
        if !page.full {
            break;
        }
    }
    assert_eq!((deleted, pages), (21, 5));
    for buyer in ["a", "b", "c"] {
        let left = store::feed::Feeds::new(&db).feed_page(buyer, None, 20).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].post_id, "live");
    }
    assert!(db.get::<serde_json::Value>(&paths::post("old-0").unwrap()).await.unwrap().is_some());
}
