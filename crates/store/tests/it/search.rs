//! `store::search::CatalogueFeed` on the emulator: the paged snapshot reads at one read time, and
//! the listen stream from that read time delivers exactly the changes made after it, with the
//! update time of each version and the observation time of each delete.

use std::time::Duration;

use domain::catalogue::{Product, ProductStatus, Vendor};
use store::paths;
use store::search::{CatalogueFeed, Doc, FeedEvent, Kind};

use crate::fresh_db;

pub(crate) fn product(title: &str) -> Product {
    Product {
        vendor_id: "v1".into(),
        vendor_name: "Vera".into(),
        vendor_avatar_url: None,
        title: title.into(),
        description: String::new(),
        category: "footwear".into(),
        tags: vec![],
        images: vec![],
        price_minor: 1_000,
        currency: "usd".into(),
        variants: vec![],
        status: ProductStatus::Active,
        in_stock: true,
    }
}

async fn next(tail: &mut store::search::Tail) -> FeedEvent {
    tokio::time::timeout(Duration::from_secs(10), tail.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
}

#[tokio::test]
async fn snapshot_pages_at_one_read_time_then_the_tail_delivers_only_later_changes() {
    let db = fresh_db().await;
    for i in 0..5 {
        db.set(&paths::product(&format!("p{i}")).unwrap(), &product(&format!("Shoe {i}")))
            .await
            .unwrap();
    }
    db.set(
        &paths::vendor("v1").unwrap(),
        &Vendor { name: "Vera".into(), handle: "vera".into(), avatar_url: None },
    )
    .await
    .unwrap();
    // Not a product: never read as one.
    db.set(&paths::product("bad").unwrap(), &serde_json::json!({"title": 5})).await.unwrap();

    let feed = CatalogueFeed::new(&db, 2);
    let snapshot = feed.snapshot().await.unwrap();
    // 6 products in pages of 2 (3 full pages and an empty one), 1 vendor in one page.
    assert_eq!(snapshot.pages, 5);
    assert_eq!(snapshot.docs.len(), 7);
    let bad = snapshot.docs.iter().find(|d| d.id == "bad").unwrap();
    assert_eq!(bad.doc, Doc::Unreadable);
    let vendor = snapshot.docs.iter().find(|d| d.kind == Kind::Vendor).unwrap();
    assert!(matches!(&vendor.doc, Doc::Vendor { follower_count: 0, .. }));

    // Written after the snapshot: only these arrive.
    db.set(&paths::product("p9").unwrap(), &product("Boot")).await.unwrap();
    db.delete(&paths::product("p0").unwrap()).await.unwrap();

    let mut tail = feed.tail(snapshot.read_time).await.unwrap();
    // Until both collections are current. Production Firestore sends only the changes after the
    // read time (p9, the delete of p0); the emulator does not resume from a read time and resets
    // each target instead, resending what is there now (p9 but not p0): a replica handles both,
    // since a document a reset does not resend is gone.
    let mut events = Vec::new();
    let mut current = 0;
    while current < 2 {
        let event = next(&mut tail).await;
        current += usize::from(matches!(event, FeedEvent::Current { .. }));
        events.push(event);
    }
    let product_reset = events.contains(&FeedEvent::Reset { kind: Kind::Product });
    let upserts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            FeedEvent::Upsert(v) if v.kind == Kind::Product => Some(v.id.as_str()),
            _ => None,
        })
        .collect();
    let deleted_at = events.iter().find_map(|e| match e {
        FeedEvent::Delete { kind: Kind::Product, id, at } if id == "p0" => Some(*at),
        _ => None,
    });
    if product_reset {
        assert!(upserts.contains(&"p9") && !upserts.contains(&"p0"), "{events:?}");
        assert_eq!(upserts.len(), 6, "every product there now: {events:?}");
    } else {
        assert_eq!(upserts, ["p9"], "only the later changes: {events:?}");
        assert!(deleted_at.is_some_and(|at| at > snapshot.read_time), "{events:?}");
    }
    let current_at = events
        .iter()
        .find_map(|e| match e {
            FeedEvent::Current { kind: Kind::Product, read_time } => Some(*read_time),
            _ => None,
        })
        .unwrap();
    assert!(current_at > snapshot.read_time);

    // A change while listening arrives with its update time.
    db.set(&paths::product("p1").unwrap(), &product("Red shoe")).await.unwrap();
    let event = loop {
        // (The emulator resets the target again on a change and resends it whole.)
        if let FeedEvent::Upsert(v) = next(&mut tail).await
            && v.id == "p1"
            && v.update_time > current_at
        {
            break v;
        }
    };
    assert!(matches!(&event.doc, Doc::Product(p) if p.title == "Red shoe"));
    tail.stop().await;
}
