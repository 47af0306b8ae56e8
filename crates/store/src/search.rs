//! The catalogue as a search replica reads it: a consistent paged read of `products` and
//! `vendors` at one read time ([`CatalogueFeed::snapshot`]), then every change from that read
//! time on, over Firestore's `Listen` stream ([`CatalogueFeed::tail`]).
//!
//! Wire parsing stays here: the search function sees [`Versioned`] documents (decoded into
//! `domain::catalogue` types, with the document's update time) and [`FeedEvent`]s, never
//! protobuf. The replica's ordering rule (apply a version only if it is newer than what it holds
//! or last deleted) needs the update time of every document and the observation time of every
//! delete, which is why both travel with the events.
//!
//! Popularity, for autocomplete: a vendor's `followerCount` (the total the `aggregate-counters`
//! job writes from the vendor's sharded follower counter, `domain::counters::CounterField::
//! Followers`), read with the vendor; 0 when absent.
//!
//! Cost: the snapshot is one `RunQuery` round trip per page (`page_size` documents per page,
//! every document billed as a read) per collection; the listen stream bills one read per changed
//! document delivered (and, on a resume past Firestore's retention, a full resend of the target).

use chrono::{DateTime, Utc};
use domain::catalogue::{Product, Vendor};
use firestore::gcloud_sdk::google::firestore::v1::{
    Document, StructuredQuery, listen_response::ResponseType, run_query_request,
    target_change::TargetChangeType,
};
use firestore::gcloud_sdk::prost_types::Timestamp;
use firestore::{
    FirestoreDb, FirestoreListener, FirestoreListenerTarget, FirestoreListenerTargetParams,
    FirestoreListenerTargetResumeType, FirestoreMemListenStateStorage, FirestoreQueryParams,
    FirestoreTargetType,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::db::Db;
use crate::error::Error;
use crate::paths::{self, CollectionPath};
use crate::rpc;

/// Which collection a document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `products/{id}`
    Product,
    /// `vendors/{id}`
    Vendor,
}

impl Kind {
    fn collection(self) -> CollectionPath {
        match self {
            Self::Product => paths::products(),
            Self::Vendor => paths::vendors(),
        }
    }

    fn target_id(self) -> i32 {
        match self {
            Self::Product => 1,
            Self::Vendor => 2,
        }
    }

    fn target(self) -> FirestoreListenerTarget {
        FirestoreListenerTarget::new(self.target_id().unsigned_abs())
    }
}

/// A document's content as the replica indexes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// A product (any status; the replica decides what is searchable).
    Product(Product),
    /// A vendor and its popularity.
    Vendor {
        /// The profile.
        vendor: Vendor,
        /// `followerCount`, 0 when absent.
        follower_count: i64,
    },
    /// A document that does not decode as its collection's type: never searchable.
    Unreadable,
}

/// One document at one version.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// Its collection.
    pub kind: Kind,
    /// Its id.
    pub id: String,
    /// Firestore's update time of this version.
    pub update_time: DateTime<Utc>,
    /// Its content.
    pub doc: Doc,
}

/// What the listen stream says.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A document was created or changed to this version.
    Upsert(Box<Versioned>),
    /// A document was deleted; observed at `at` (at or after the delete).
    Delete {
        /// Its collection.
        kind: Kind,
        /// Its id.
        id: String,
        /// The observation's read time.
        at: DateTime<Utc>,
    },
    /// Firestore resends the whole of `kind`'s collection from here on (a resume it could not
    /// honour, or a target dropped and added back): until [`FeedEvent::Current`] of `kind`,
    /// every document still there arrives as an upsert, and one that does not arrive is gone.
    Reset {
        /// The collection resent.
        kind: Kind,
    },
    /// `kind`'s target is current: everything up to `read_time` has been delivered.
    Current {
        /// The collection.
        kind: Kind,
        /// As of when.
        read_time: DateTime<Utc>,
    },
    /// Everything up to `read_time` has been delivered on every target (a consistent point).
    Consistent {
        /// The point.
        read_time: DateTime<Utc>,
    },
}

/// Every searchable document at one read time.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The read time of every page.
    pub read_time: DateTime<Utc>,
    /// The documents.
    pub docs: Vec<Versioned>,
    /// `RunQuery` round trips made.
    pub pages: u64,
}

/// The catalogue feed on one database.
#[derive(Debug, Clone)]
pub struct CatalogueFeed {
    db: Db,
    page_size: u32,
}

/// A running listen stream; dropping it stops the stream.
pub struct Tail {
    listener: FirestoreListener<FirestoreDb, FirestoreMemListenStateStorage>,
    events: mpsc::UnboundedReceiver<FeedEvent>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").field("targets", &self.listener.targets()).finish_non_exhaustive()
    }
}

impl Tail {
    /// The next event; `None` once the stream has stopped for good.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        self.events.recv().await
    }

    /// The next event if one is already waiting.
    pub fn try_next(&mut self) -> Option<FeedEvent> {
        self.events.try_recv().ok()
    }

    /// Stops the stream.
    pub async fn stop(mut self) {
        if let Err(error) = self.listener.shutdown().await {
            tracing::warn!(%error, "the catalogue listen stream did not stop cleanly");
        }
    }
}

#[derive(Deserialize)]
struct Popularity {
    #[serde(rename = "followerCount", default)]
    follower_count: Option<i64>,
}

impl CatalogueFeed {
    /// A feed on `db` reading `page_size` documents per snapshot page (1 to 1000).
    pub fn new(db: &Db, page_size: u32) -> Self {
        Self { db: db.clone(), page_size: page_size.clamp(1, 1000) }
    }

    /// Every product and vendor, read in pages at one read time (the first page's).
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        let mut read_time = None;
        let mut docs = Vec::new();
        let mut pages = 0;
        for kind in [Kind::Product, Kind::Vendor] {
            let mut after: Option<String> = None;
            loop {
                let (page, at) = self.page(kind, after.as_deref(), read_time).await?;
                pages += 1;
                read_time = read_time.or(at);
                let full = page.len() >= self.page_size as usize;
                after = page.last().map(|d| d.name.clone());
                docs.extend(page.iter().filter_map(|d| self.versioned(d)));
                if !full {
                    break;
                }
            }
        }
        let read_time = read_time
            .ok_or_else(|| Error::Unreachable("Firestore answered no read time".to_owned()))?;
        Ok(Snapshot { read_time, docs, pages })
    }

    async fn page(
        &self,
        kind: Kind,
        after: Option<&str>,
        at: Option<DateTime<Utc>>,
    ) -> Result<(Vec<Document>, Option<DateTime<Utc>>), Error> {
        let collection = kind.collection();
        let query = StructuredQuery {
            order_by: vec![rpc::asc(rpc::NAME)],
            start_at: after.map(|name| rpc::cursor(vec![rpc::reference(name.to_owned())], false)),
            limit: Some(i32::try_from(self.page_size).unwrap_or(i32::MAX)),
            ..rpc::from(collection.id(), false)
        };
        let mut request =
            rpc::query_request(collection.parent_name(self.db.documents_root()), query);
        request.consistency_selector =
            at.map(|t| run_query_request::ConsistencySelector::ReadTime(timestamp(t)));
        let mut client = self.db.client().await?;
        let mut stream = self.db.call(client.run_query(request)).await?;
        let mut docs = Vec::new();
        let mut read_time = None;
        while let Some(response) = stream.message().await.map_err(Error::from)? {
            read_time = read_time.or_else(|| response.read_time.as_ref().and_then(time));
            docs.extend(response.document);
        }
        Ok((docs, read_time))
    }

    /// Every change to products and vendors after `from`, until the [`Tail`] is dropped. The
    /// stream reconnects by itself (resuming where it was); a [`FeedEvent::Reset`] says a
    /// collection is being resent whole instead (Firestore does that for a read time past its
    /// retention, and the emulator for any read time).
    pub async fn tail(&self, from: DateTime<Utc>) -> Result<Tail, Error> {
        let db = self.db.firestore().await?.clone();
        let (sender, events) = mpsc::unbounded_channel();
        let mut listener = db.create_listener(FirestoreMemListenStateStorage::new()).await?;
        for kind in [Kind::Product, Kind::Vendor] {
            let collection = kind.collection();
            let query = FirestoreQueryParams::new(collection.id().into())
                .with_parent(collection.parent_name(self.db.documents_root()));
            listener.add_target(
                FirestoreListenerTargetParams::new(
                    kind.target(),
                    FirestoreTargetType::Query(query),
                    std::collections::HashMap::new(),
                )
                .with_resume_type(FirestoreListenerTargetResumeType::ReadTime(
                    crate::inventory::to_instant(from),
                )),
            )?;
        }
        let feed = self.clone();
        listener
            .start(move |event| {
                let events = feed.events(event);
                let sender = sender.clone();
                async move {
                    for event in events {
                        // A closed receiver means the replica stopped listening.
                        sender.send(event).map_err(|e| Box::new(e) as Box<_>)?;
                    }
                    Ok(())
                }
            })
            .await?;
        Ok(Tail { listener, events })
    }

    fn events(&self, event: ResponseType) -> Vec<FeedEvent> {
        match event {
            ResponseType::DocumentChange(change) => {
                let Some(doc) = change.document else { return Vec::new() };
                if change.target_ids.is_empty() && !change.removed_target_ids.is_empty() {
                    // Left every target: gone from the collection's view.
                    let at = doc.update_time.as_ref().and_then(time);
                    return self
                        .locate(&doc.name)
                        .zip(at)
                        .map(|((kind, id), at)| FeedEvent::Delete { kind, id, at })
                        .into_iter()
                        .collect();
                }
                self.versioned(&doc).map(|v| FeedEvent::Upsert(Box::new(v))).into_iter().collect()
            }
            ResponseType::DocumentDelete(delete) => {
                self.delete(&delete.document, delete.read_time.as_ref()).into_iter().collect()
            }
            ResponseType::DocumentRemove(remove) => {
                self.delete(&remove.document, remove.read_time.as_ref()).into_iter().collect()
            }
            ResponseType::TargetChange(change) => {
                let kinds: Vec<Kind> = if change.target_ids.is_empty() {
                    vec![Kind::Product, Kind::Vendor]
                } else {
                    [Kind::Product, Kind::Vendor]
                        .into_iter()
                        .filter(|k| change.target_ids.contains(&k.target_id()))
                        .collect()
                };
                let read_time = change.read_time.as_ref().and_then(time);
                match TargetChangeType::try_from(change.target_change_type) {
                    Ok(TargetChangeType::NoChange) if change.target_ids.is_empty() => read_time
                        .map(|read_time| FeedEvent::Consistent { read_time })
                        .into_iter()
                        .collect(),
                    // A removed target is added back by the listener without its resume state:
                    // a resend, like a reset.
                    Ok(TargetChangeType::Reset | TargetChangeType::Remove) => {
                        kinds.into_iter().map(|kind| FeedEvent::Reset { kind }).collect()
                    }
                    Ok(TargetChangeType::Current) => read_time
                        .map(|read_time| {
                            kinds
                                .into_iter()
                                .map(|kind| FeedEvent::Current { kind, read_time })
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => Vec::new(),
                }
            }
            // An existence filter mismatch makes the client resend the target; the crate does
            // that, and the documents arrive as changes.
            ResponseType::Filter(_) => Vec::new(),
        }
    }

    fn delete(&self, name: &str, read_time: Option<&Timestamp>) -> Option<FeedEvent> {
        let (kind, id) = self.locate(name)?;
        let at = read_time.and_then(time)?;
        Some(FeedEvent::Delete { kind, id, at })
    }

    /// The collection and id of a full document name, if it is a product or a vendor.
    fn locate(&self, name: &str) -> Option<(Kind, String)> {
        let relative = name.strip_prefix(self.db.documents_root())?.strip_prefix('/')?;
        let (collection, id) = relative.split_once('/')?;
        if id.contains('/') {
            return None;
        }
        let kind = [Kind::Product, Kind::Vendor]
            .into_iter()
            .find(|k| k.collection().id() == collection)?;
        Some((kind, id.to_owned()))
    }

    fn versioned(&self, doc: &Document) -> Option<Versioned> {
        let (kind, id) = self.locate(&doc.name)?;
        let update_time = doc.update_time.as_ref().and_then(time)?;
        let decoded = match kind {
            Kind::Product => FirestoreDb::deserialize_doc_to::<Product>(doc).map(Doc::Product),
            Kind::Vendor => FirestoreDb::deserialize_doc_to::<Vendor>(doc).map(|vendor| {
                let follower_count = FirestoreDb::deserialize_doc_to::<Popularity>(doc)
                    .ok()
                    .and_then(|p| p.follower_count)
                    .unwrap_or(0);
                Doc::Vendor { vendor, follower_count }
            }),
        };
        let doc = decoded.unwrap_or_else(|error| {
            tracing::warn!(%error, ?kind, %id, "catalogue document does not decode; not searchable");
            Doc::Unreadable
        });
        Some(Versioned { kind, id, update_time, doc })
    }
}

fn time(ts: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
