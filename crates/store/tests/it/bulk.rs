//! The bulk writer against the emulator: thousands of writes, all applied, reported per write.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use store::{BulkWriter, RampPolicy, paths};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FeedItem {
    post_id: String,
    rank: i64,
}

#[tokio::test]
async fn two_thousand_writes_all_land() {
    const DOCS: usize = 2_000;
    let db = crate::fresh_db().await;
    let mut writer = BulkWriter::new(&db, RampPolicy::default());
    for i in 0..DOCS {
        let path = paths::feed_post(&format!("user-{}", i % 50), &format!("post-{i}")).unwrap();
        writer.set(path, &FeedItem { post_id: format!("post-{i}"), rank: i as i64 });
    }
    assert_eq!(writer.pending(), DOCS);
    let report = writer.flush().await;
    println!(
        "bulk writer: {} writes in {:?} over {} requests = {:.0} ops/s (ramp start 500 ops/s, bucket starts full)",
        report.written,
        report.elapsed,
        report.requests,
        report.ops_per_sec()
    );
    assert!(report.is_complete(), "failed: {:?}", report.failed);
    assert_eq!(report.written, DOCS);
    assert!(report.requests >= DOCS / store::bulk::MAX_BATCH_SIZE);
    // The ramp holds: 2,000 writes at 500 ops/s with a 500-op initial bucket take >= 3 s.
    assert!(report.elapsed >= Duration::from_millis(2_900), "{:?}", report.elapsed);

    for i in (0..DOCS).step_by(97).chain([DOCS - 1]) {
        let path = paths::feed_post(&format!("user-{}", i % 50), &format!("post-{i}")).unwrap();
        let item: FeedItem = db.get(&path).await.unwrap().expect("written");
        assert_eq!(item.rank, i as i64);
    }
    let firestore = db.firestore().await.unwrap();
    let feed = paths::feed("user-7").unwrap();
    let items: Vec<FeedItem> = firestore
        .fluent()
        .select()
        .from(feed.id())
        .parent(feed.parent_name(firestore.get_documents_path()))
        .obj()
        .query()
        .await
        .unwrap();
    assert_eq!(items.len(), DOCS / 50);
}

#[tokio::test]
async fn repeated_writes_to_one_document_keep_their_order_and_deletes_apply() {
    let db = crate::fresh_db().await;
    let fast = RampPolicy { start_ops_per_sec: 10_000.0, ..RampPolicy::default() };
    let mut writer = BulkWriter::new(&db, fast);
    let path = paths::post("p1").unwrap();
    let gone = paths::post("p2").unwrap();
    db.set(&gone, &FeedItem { post_id: "p2".to_owned(), rank: 0 }).await.unwrap();
    for rank in 0..5 {
        writer.set(path.clone(), &FeedItem { post_id: "p1".to_owned(), rank });
    }
    writer.delete(gone.clone());
    let report = writer.flush().await;
    assert!(report.is_complete(), "{:?}", report.failed);
    assert_eq!(report.written, 6);
    let item: FeedItem = db.get(&path).await.unwrap().unwrap();
    assert_eq!(item.rank, 4, "the last write wins");
    assert_eq!(db.get::<FeedItem>(&gone).await.unwrap(), None);
}

#[tokio::test]
async fn unencodable_values_are_reported_per_write() {
    let db = crate::fresh_db().await;
    let mut writer = BulkWriter::new(&db, RampPolicy::default());
    writer.set(paths::post("ok").unwrap(), &FeedItem { post_id: "ok".to_owned(), rank: 1 });
    // A bare number is not a document.
    writer.set(paths::post("bad").unwrap(), &42);
    let report = writer.flush().await;
    assert_eq!(report.written, 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, paths::post("bad").unwrap());
    assert!(!report.failed[0].1.is_retryable());
}
