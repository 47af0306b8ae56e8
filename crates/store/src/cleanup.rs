//! Expiry sweeps for the scheduled cleanup jobs: one page of documents of a collection group
//! whose timestamp field is in the past, deleted in one `BatchWrite` where each delete carries
//! the document's update time as a precondition.
//!
//! Why that is safe:
//! - nothing unexpired is deleted: only documents the query saw expired are candidates, and a
//!   document renewed after the read (a new idempotency claim, a feed entry rewritten by a
//!   follow) no longer matches its update time, so its delete is refused;
//! - two runs at once do not double anything: for each document at most one delete succeeds
//!   (the second finds it gone or changed), and only successful deletes are counted;
//! - an interrupted run loses nothing: every delete is independent, and the next run's query
//!   finds whatever is still expired.
//!
//! A sweep may be limited to documents under one top-level collection ([`Sweep::under`]): the
//! collection group `posts` holds both the vendors' posts and the feed entries
//! (`feeds/{uid}/posts/{postId}`), and only the feed entries expire by this job. The feed
//! sweep therefore queries `ttlAt`, a field only feed entries carry (the same instant as their
//! `expiresAt`), so vendor posts never enter its pages: a query on `expiresAt` returned every
//! expired vendor post first, and past a run's page budget of them (30,000 at the defaults) it
//! never reached a feed entry. The `under` filter stays as a second guard; documents of the
//! group outside it are passed over with a cursor ([`After`]) that the caller keeps for the rest
//! of its run.

use chrono::{DateTime, Utc};
use domain::cleanup::Page;
use firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use firestore::gcloud_sdk::google::firestore::v1::{
    BatchWriteRequest, Document, Precondition, Value, Write, write,
};

use crate::db::Db;
use crate::error::Error;
use crate::paths;
use crate::rpc::{self, NAME};

/// What one expiry job sweeps: documents of a collection group whose timestamp `field` is in
/// the past, optionally only those under one top-level collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// The collection group.
    pub collection: &'static str,
    /// The timestamp field compared with now.
    pub field: &'static str,
    /// Only documents whose path starts with this top-level collection (`None`: all).
    pub under: Option<&'static str>,
}

/// Idempotency records past `expires_at` (Firestore TTL on the same field is the backstop).
pub const IDEMPOTENCY: Sweep =
    Sweep { collection: "idempotency", field: "expires_at", under: None };

/// Feed entries (`feeds/{uid}/posts/{postId}`) past `ttlAt` (= their `expiresAt`). The vendors'
/// own `posts/{postId}` share the collection group but never carry `ttlAt`, so the query does
/// not return them (however many expired ones there are) and they are never touched.
pub const FEED_ITEMS: Sweep =
    Sweep { collection: paths::names::POSTS, field: "ttlAt", under: Some(paths::names::FEEDS) };

/// Where the next page of a run starts: after the last document the previous page examined
/// (its expiry value and name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct After(Option<(Value, String)>);

/// A delete of `doc` that only takes effect if it is unchanged since it was read.
fn guarded_delete(doc: Document) -> Write {
    Write {
        current_document: doc
            .update_time
            .map(|t| Precondition { condition_type: Some(ConditionType::UpdateTime(t)) }),
        operation: Some(write::Operation::Delete(doc.name)),
        ..Default::default()
    }
}

/// The guarded expiry sweeps of the cleanup jobs.
#[derive(Debug, Clone)]
pub struct Sweeper {
    db: Db,
}

impl Sweeper {
    /// The repository on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Deletes up to `page` documents matched by `sweep` whose field is before `now`, oldest
    /// first, starting after `after` (which it advances). Returns what it examined (every document
    /// the query returned, including those passed over) and how many deletes took effect.
    pub async fn delete_expired_page(
        &self,
        sweep: &Sweep,
        now: DateTime<Utc>,
        page: u32,
        after: &mut After,
    ) -> Result<Page, Error> {
        let db = &self.db;
        let mut query = rpc::from(sweep.collection, true);
        query.select = rpc::select(&[sweep.field]);
        query.r#where =
            rpc::and(vec![rpc::filter(sweep.field, Operator::LessThan, rpc::timestamp(now))]);
        query.order_by = vec![rpc::asc(sweep.field), rpc::asc(NAME)];
        if let Some((value, name)) = after.0.take() {
            query.start_at = Some(rpc::cursor(vec![value, rpc::reference(name)], false));
        }
        query.limit = Some(i32::try_from(page.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        let examined = docs.len() as u64;
        let full = examined >= u64::from(page.max(1));
        after.0 =
            docs.last().and_then(|d| Some((d.fields.get(sweep.field)?.clone(), d.name.clone())));
        let prefix = sweep.under.map(|top| format!("{}/{top}/", db.documents_root()));
        let writes: Vec<Write> = docs
            .into_iter()
            .filter(|doc| prefix.as_deref().is_none_or(|p| doc.name.starts_with(p)))
            .map(guarded_delete)
            .collect();
        if writes.is_empty() {
            return Ok(Page { examined, changed: 0, full });
        }
        let request = BatchWriteRequest {
            database: db.database_name().to_owned(),
            writes,
            ..Default::default()
        };
        let mut client = db.client().await?;
        let response = db.call(client.batch_write(request)).await?;
        // Status code 0 is OK; anything else (FAILED_PRECONDITION, NOT_FOUND) means another run or
        // writer got there first: not counted, not an error.
        let changed = response.status.iter().filter(|s| s.code == 0).count() as u64;
        Ok(Page { examined, changed, full })
    }
}
