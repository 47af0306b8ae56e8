//! Keeps an [`Engine`] a replica of the Firestore catalogue: a snapshot at one read time
//! (`store::search::CatalogueFeed::snapshot`), then the listen stream from that read time.
//!
//! What is searchable: an `active` product that decodes. Every other version (draft, archived,
//! unreadable) and every delete removes the product. Order: `domain::search::Versions` applies
//! a version only if it is newer than what is held and than a delete observed since, so an
//! out-of-order or replayed event never rolls a product back or brings a deleted one back; a
//! resend after a reset deletes what it does not resend.
//!
//! Start-up never blocks the server: this runs as a background task, and the callables answer a
//! retryable `UNAVAILABLE` until both collections are current. If the stream ends or a step
//! fails, the loop starts over from a fresh snapshot (after a backoff) while the engine keeps
//! serving what it has.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use domain::catalogue::ProductStatus;
use domain::search::Versions;
use store::search::{CatalogueFeed, Doc, FeedEvent, Kind, Versioned};

use crate::cache::{OwnedFacts, QueryCache};
use crate::engine::{Change, Engine, IndexedProduct, IndexedVendor};

/// Events applied in one engine batch at most.
const MAX_BATCH: usize = 2_000;

/// What the callables and `/metrics` read about the sync.
#[derive(Debug, Default)]
pub struct Status {
    ready: AtomicBool,
    /// Changes applied since start.
    pub applied: AtomicU64,
    /// Snapshots loaded since start.
    pub snapshots: AtomicU64,
}

impl Status {
    /// Whether the engine has caught up with Firestore once.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Starts the sync loop in the background.
pub fn spawn(
    feed: CatalogueFeed,
    engine: Arc<dyn Engine>,
    cache: QueryCache,
    status: Arc<Status>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            match once(&feed, engine.as_ref(), &cache, &status).await {
                Ok(()) => tracing::warn!("the catalogue listen stream ended; reloading"),
                Err(error) => tracing::warn!(%error, "catalogue sync failed; reloading"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

/// The facts of each product change, before and after, to drop the cache entries they touch
/// once the change is searchable.
type Touched = Vec<(Option<OwnedFacts>, Option<OwnedFacts>)>;

#[derive(Default)]
struct Replica {
    products: Versions,
    vendors: Versions,
    facts: HashMap<String, OwnedFacts>,
    current: [bool; 2],
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

fn indexed(versioned: &Versioned) -> Option<Change> {
    let version = micros(versioned.update_time);
    match &versioned.doc {
        Doc::Product(p) if p.status == ProductStatus::Active => {
            Some(Change::Product(IndexedProduct {
                id: versioned.id.clone(),
                title: p.title.clone(),
                description: p.description.clone(),
                tags: p.tags.clone(),
                category: p.category.clone(),
                vendor_id: p.vendor_id.clone(),
                vendor_name: p.vendor_name.clone(),
                price_minor: p.price_minor,
                currency: p.currency.clone(),
                in_stock: p.in_stock,
                image: p.images.first().cloned(),
                version,
            }))
        }
        Doc::Vendor { vendor, follower_count } => Some(Change::Vendor(IndexedVendor {
            id: versioned.id.clone(),
            name: vendor.name.clone(),
            handle: vendor.handle.clone(),
            follower_count: *follower_count,
            version,
        })),
        Doc::Product(_) | Doc::Unreadable => None,
    }
}

fn removal(kind: Kind, id: String, version: i64) -> Change {
    match kind {
        Kind::Product => Change::RemoveProduct { id, version },
        Kind::Vendor => Change::RemoveVendor { id, version },
    }
}

impl Replica {
    fn versions(&mut self, kind: Kind) -> &mut Versions {
        match kind {
            Kind::Product => &mut self.products,
            Kind::Vendor => &mut self.vendors,
        }
    }

    /// The engine changes an event makes, dropping touched cache entries.
    fn translate(&mut self, event: FeedEvent, touched: &mut Touched, out: &mut Vec<Change>) {
        match event {
            FeedEvent::Upsert(versioned) => {
                if !self.versions(versioned.kind).upsert(&versioned.id, versioned.update_time) {
                    return;
                }
                let change = indexed(&versioned).unwrap_or_else(|| {
                    removal(versioned.kind, versioned.id.clone(), micros(versioned.update_time))
                });
                self.touch(&change, touched);
                out.push(change);
            }
            FeedEvent::Delete { kind, id, at } => {
                if self.versions(kind).delete(&id, at) {
                    let change = removal(kind, id, micros(at));
                    self.touch(&change, touched);
                    out.push(change);
                }
            }
            FeedEvent::Reset { kind } => {
                self.current[kind as usize] = false;
                self.versions(kind).reset();
            }
            FeedEvent::Current { kind, read_time } => {
                self.current[kind as usize] = true;
                for id in self.versions(kind).current(read_time) {
                    let change = removal(kind, id, micros(read_time));
                    self.touch(&change, touched);
                    out.push(change);
                }
            }
            FeedEvent::Consistent { read_time } => {
                self.products.forget_before(read_time);
                self.vendors.forget_before(read_time);
            }
        }
    }

    fn touch(&mut self, change: &Change, touched: &mut Touched) {
        match change {
            Change::Product(p) => {
                let new = OwnedFacts::of(p);
                let old = self.facts.insert(p.id.clone(), new.clone());
                touched.push((old, Some(new)));
            }
            Change::RemoveProduct { id, .. } => {
                touched.push((self.facts.remove(id), None));
            }
            Change::Vendor(_) | Change::RemoveVendor { .. } => {}
        }
    }
}

async fn once(
    feed: &CatalogueFeed,
    engine: &dyn Engine,
    cache: &QueryCache,
    status: &Status,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let snapshot = feed.snapshot().await?;
    let mut replica = Replica::default();
    let (mut products, mut vendors) = (Vec::new(), Vec::new());
    for versioned in &snapshot.docs {
        replica.versions(versioned.kind).upsert(&versioned.id, versioned.update_time);
        match indexed(versioned) {
            Some(Change::Product(p)) => {
                replica.facts.insert(p.id.clone(), OwnedFacts::of(&p));
                products.push(p);
            }
            Some(Change::Vendor(v)) => vendors.push(v),
            _ => {}
        }
    }
    let count = products.len();
    engine.replace_all(products, vendors).await?;
    cache.clear();
    status.snapshots.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        products = count,
        pages = snapshot.pages,
        elapsed_ms = started.elapsed().as_millis(),
        read_time = %snapshot.read_time,
        "catalogue snapshot indexed"
    );
    let mut tail = feed.tail(snapshot.read_time).await?;
    while let Some(first) = tail.next().await {
        let mut events = vec![first];
        while events.len() < MAX_BATCH {
            match tail.try_next() {
                Some(event) => events.push(event),
                None => break,
            }
        }
        let (mut changes, mut touched) = (Vec::new(), Vec::new());
        for event in events {
            replica.translate(event, &mut touched, &mut changes);
        }
        if !changes.is_empty() {
            let n = changes.len() as u64;
            engine.apply(changes).await?;
            status.applied.fetch_add(n, Ordering::Relaxed);
        }
        // After the change is searchable, so a query answered in between is not kept.
        for (old, new) in touched {
            cache.invalidate(old.as_ref(), new.as_ref());
        }
        if replica.current.iter().all(|c| *c) && !status.is_ready() {
            status.ready.store(true, Ordering::Release);
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis(),
                "search replica caught up with Firestore"
            );
        }
    }
    tail.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::Embedded;
    use chrono::{DateTime, Utc};
    use domain::catalogue::Product;
    use domain::search::SearchInput;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn upsert(id: &str, title: &str, status: ProductStatus, ms: i64) -> FeedEvent {
        FeedEvent::Upsert(Box::new(Versioned {
            kind: Kind::Product,
            id: id.into(),
            update_time: at(ms),
            doc: Doc::Product(Product {
                vendor_id: "v1".into(),
                vendor_name: "Vera".into(),
                vendor_avatar_url: None,
                title: title.into(),
                description: String::new(),
                category: "footwear".into(),
                tags: vec![],
                images: vec![],
                price_minor: 100,
                currency: "usd".into(),
                variants: vec![],
                status,
                in_stock: true,
            }),
        }))
    }

    async fn run(events: Vec<FeedEvent>) -> Vec<String> {
        let engine = Embedded::new().unwrap();
        let mut replica = Replica::default();
        for event in events {
            let (mut changes, mut touched) = (Vec::new(), Vec::new());
            replica.translate(event, &mut touched, &mut changes);
            engine.apply(changes).await.unwrap();
        }
        let all = SearchInput::default().validate().unwrap();
        engine.search(&all).await.unwrap().hits.into_iter().map(|h| h.title).collect()
    }

    #[tokio::test]
    async fn a_late_older_version_never_resurrects_a_deleted_product() {
        let delete = FeedEvent::Delete { kind: Kind::Product, id: "p1".into(), at: at(3) };
        let events = vec![
            upsert("p1", "Shoes", ProductStatus::Active, 2),
            delete,
            upsert("p1", "Shoes", ProductStatus::Active, 1),
        ];
        assert_eq!(run(events).await, Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_late_older_version_never_rolls_back_a_newer_one() {
        let events = vec![
            upsert("p1", "New shoes", ProductStatus::Active, 3),
            upsert("p1", "Old shoes", ProductStatus::Active, 1),
            // An archive written before the current version arrives late: ignored too.
            upsert("p1", "Old shoes", ProductStatus::Archived, 2),
        ];
        assert_eq!(run(events).await, ["New shoes"]);
    }

    #[tokio::test]
    async fn archived_and_draft_versions_remove_the_product() {
        let events = vec![
            upsert("p1", "Shoes", ProductStatus::Active, 1),
            upsert("p2", "Boots", ProductStatus::Active, 1),
            upsert("p1", "Shoes", ProductStatus::Archived, 2),
            upsert("p2", "Boots", ProductStatus::Draft, 2),
        ];
        assert_eq!(run(events).await, Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_resend_removes_what_it_no_longer_contains() {
        let events = vec![
            upsert("p1", "Shoes", ProductStatus::Active, 1),
            upsert("p2", "Boots", ProductStatus::Active, 1),
            FeedEvent::Reset { kind: Kind::Product },
            upsert("p2", "Boots", ProductStatus::Active, 1),
            FeedEvent::Current { kind: Kind::Product, read_time: at(5) },
        ];
        assert_eq!(run(events).await, ["Boots"]);
    }
}
