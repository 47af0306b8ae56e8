//! Sharded counters (rules in `domain::counters`): shard `n` of field `f` of a
//! counted document is `<counted>/shards/{f}_{n}` holding `{count, dirty}`; an increment is a
//! server-side `increment` transform on one random shard that also sets `dirty`; a read sums the
//! shards with one `BatchGetDocuments`; [`Counters::aggregate`] writes the total to the parent's
//! field (`likes`, `followerCount`, ...), and [`Counters::aggregate_dirty_page`] does so for every
//! counter with a dirty shard (the scheduled `aggregate-counters` job).
//!
//! Membership counters (likes, follows, unique views) are idempotent: [`Counters::set_membership`]
//! reads the per-(item, user) marker document and writes the marker and the shard increment in the
//! same transaction, so a retried or duplicated request counts once and an unlike without a like
//! never decrements.
//!
//! The dirty flag lives on the shard itself, not in a separate "dirty counters" document: a
//! shared marker would be written by every like and become the hot document sharding exists to
//! avoid. The aggregation reads all shards of a counter, then commits atomically the total on
//! the parent and `dirty = false` on each shard it saw dirty, each guarded by the update time it
//! read. So a shard incremented after the read fails the commit (the counter stays dirty and is
//! read again), a shard that was clean at the read and changed since is dirty again and is
//! aggregated by the next run, and two runs at once cannot both commit the same dirty shard:
//! the total on the parent is a plain set, never an addition, so nothing is ever counted twice.

use std::collections::BTreeMap;

use crate::db::Db;
use crate::error::{Code, Error};
use crate::paths::{self, DocPath};
use crate::rpc;
use domain::cleanup::Page;
use domain::counters::{
    CounterField, Membership, MembershipOutcome, membership, pick_shard, total,
};
use firestore::gcloud_sdk::google::firestore::v1::{
    Document, DocumentMask, Precondition, Write, document_transform, precondition, write,
};
use serde::Serialize;

/// The field of a shard document holding its part of the count.
pub const SHARD_FIELD: &str = "count";

/// The field of a shard document that is `true` from an increment until an aggregation has
/// written a total that includes it.
pub const DIRTY_FIELD: &str = "dirty";

/// How many times [`Counters::aggregate_dirty_page`] re-reads a counter whose shards moved under it
/// before it writes the total alone (leaving the shards dirty for the next run).
const AGGREGATE_ATTEMPTS: usize = 3;

/// Counters aggregated at once by one page.
const AGGREGATE_CONCURRENCY: usize = 8;

/// The shard documents of `field` on `counted`, in shard order.
pub fn shard_paths(counted: &DocPath, field: CounterField) -> Result<Vec<DocPath>, Error> {
    (0..field.shards())
        .map(|n| paths::field_counter_shard(counted, field.key(), n).map_err(Error::from))
        .collect()
}

/// A random shard of `field` on `counted`.
pub fn random_shard(counted: &DocPath, field: CounterField) -> Result<DocPath, Error> {
    Ok(paths::field_counter_shard(counted, field.key(), pick_shard(field, rand::random::<f64>()))?)
}

/// `count += by` and `dirty = true` on `shard` (created if missing), as one write for a commit
/// or transaction of the caller's.
pub(crate) fn increment_write(db: &Db, shard: &DocPath, by: i64) -> Write {
    let mut doc = Document { name: shard.full_name(db.documents_root()), ..Default::default() };
    doc.fields.insert(DIRTY_FIELD.to_owned(), rpc::boolean(true));
    Write {
        operation: Some(write::Operation::Update(doc)),
        update_mask: Some(DocumentMask { field_paths: vec![DIRTY_FIELD.to_owned()] }),
        update_transforms: vec![document_transform::FieldTransform {
            field_path: SHARD_FIELD.to_owned(),
            transform_type: Some(document_transform::field_transform::TransformType::Increment(
                rpc::integer(by),
            )),
        }],
        ..Default::default()
    }
}

/// What aggregating one counter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregated {
    /// The total was written; `settled` when the dirty flags were cleared with it.
    Written { total: u64, settled: bool },
    /// No shard was dirty: the parent already holds the total.
    AlreadyClean,
    /// The counted document no longer exists; its shards' flags were cleared.
    ParentGone { total: u64 },
}

/// Aggregates the counter `field` of the document named `counted` (a full name): see the
/// module docs. Without `force`, a counter with no dirty shard is left alone.
async fn aggregate_counter(
    db: &Db,
    counted: &str,
    field: CounterField,
    force: bool,
) -> Result<Aggregated, Error> {
    let names: Vec<String> = (0..field.shards())
        .map(|n| format!("{counted}/{}/{}", paths::names::SHARDS, field.shard_id(n)))
        .collect();
    let mut last_total = 0;
    for _ in 0..AGGREGATE_ATTEMPTS {
        let shards: Vec<Document> =
            rpc::batch_get(db, names.clone()).await?.into_iter().flatten().collect();
        let sum = total(shards.iter().map(|d| rpc::get_i64(d, SHARD_FIELD).unwrap_or(0)));
        last_total = sum;
        let clears: Vec<Write> = shards
            .iter()
            .filter(|d| rpc::get_bool(d, DIRTY_FIELD) == Some(true))
            .map(clear_dirty_write)
            .collect();
        if clears.is_empty() && !force {
            return Ok(Aggregated::AlreadyClean);
        }
        let mut writes = vec![total_write(counted, field, sum)];
        writes.extend(clears.iter().cloned());
        match db.commit(writes).await {
            Ok(()) => return Ok(Aggregated::Written { total: sum, settled: true }),
            Err(error) if error.code() == Some(Code::NotFound) => {
                // The counted document is gone; settle the flags so the shards are not looked
                // at again (a shard that moved meanwhile stays dirty and comes back).
                if !clears.is_empty() {
                    match db.commit(clears).await {
                        Ok(()) => {}
                        Err(e) if e.code() == Some(Code::FailedPrecondition) => {}
                        Err(e) => return Err(e),
                    }
                }
                return Ok(Aggregated::ParentGone { total: sum });
            }
            // A shard moved between the read and the commit: read again.
            Err(error) if error.code() == Some(Code::FailedPrecondition) => {}
            Err(error) => return Err(error),
        }
    }
    // A counter this hot may move on every attempt: write the latest total anyway (a set, so
    // never a double count) and leave its shards dirty for the next run.
    tracing::debug!(%counted, field = field.key(), "counter kept moving; total written, shards left dirty");
    match db.commit(vec![total_write(counted, field, last_total)]).await {
        Ok(()) => Ok(Aggregated::Written { total: last_total, settled: false }),
        Err(error) if error.code() == Some(Code::NotFound) => {
            Ok(Aggregated::ParentGone { total: last_total })
        }
        Err(error) => Err(error),
    }
}

/// `parent_field = total` on the counted document, only if it exists.
fn total_write(counted: &str, field: CounterField, total: u64) -> Write {
    let name = field.parent_field();
    let mut doc = Document { name: counted.to_owned(), ..Default::default() };
    doc.fields.insert(name.to_owned(), rpc::integer(i64::try_from(total).unwrap_or(i64::MAX)));
    Write {
        operation: Some(write::Operation::Update(doc)),
        update_mask: Some(DocumentMask { field_paths: vec![name.to_owned()] }),
        current_document: Some(Precondition {
            condition_type: Some(precondition::ConditionType::Exists(true)),
        }),
        ..Default::default()
    }
}

/// `dirty = false` on `shard`, only if it is unchanged since it was read.
fn clear_dirty_write(shard: &Document) -> Write {
    let mut doc = Document { name: shard.name.clone(), ..Default::default() };
    doc.fields.insert(DIRTY_FIELD.to_owned(), rpc::boolean(false));
    Write {
        operation: Some(write::Operation::Update(doc)),
        update_mask: Some(DocumentMask { field_paths: vec![DIRTY_FIELD.to_owned()] }),
        current_document: shard.update_time.map(|t| Precondition {
            condition_type: Some(precondition::ConditionType::UpdateTime(t)),
        }),
        ..Default::default()
    }
}

/// Sharded counters: increments, reads, membership toggles and the aggregation.
#[derive(Debug, Clone)]
pub struct Counters {
    db: Db,
}

impl Counters {
    /// The repository on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Adds `by` to `field` of `counted` on one random shard: for counters that count events
    /// rather than members (shares). Not idempotent by design; use [`Counters::set_membership`]
    /// when a retry must not count twice.
    pub async fn increment(
        &self,
        counted: &DocPath,
        field: CounterField,
        by: i64,
    ) -> Result<(), Error> {
        let db = &self.db;
        let shard = random_shard(counted, field)?;
        db.commit(vec![increment_write(db, &shard, by)]).await
    }

    /// The total of `field` on `counted`: the sum of its shards (never below 0).
    pub async fn read(&self, counted: &DocPath, field: CounterField) -> Result<u64, Error> {
        let db = &self.db;
        let names =
            shard_paths(counted, field)?.iter().map(|p| p.full_name(db.documents_root())).collect();
        let docs = rpc::batch_get(db, names).await?;
        Ok(total(
            docs.iter().flatten().map(|d: &Document| rpc::get_i64(d, SHARD_FIELD).unwrap_or(0)),
        ))
    }

    /// Sums the shards of `field` and writes the total to the parent's field (only that field;
    /// nothing is written when the parent no longer exists), clearing the shards' dirty flags when
    /// no shard moved meanwhile. Returns the total. Safe to run at any time and any number of
    /// times.
    pub async fn aggregate(&self, counted: &DocPath, field: CounterField) -> Result<u64, Error> {
        let db = &self.db;
        let counted = counted.full_name(db.documents_root());
        match aggregate_counter(db, &counted, field, true).await? {
            Aggregated::Written { total, .. } | Aggregated::ParentGone { total } => Ok(total),
            Aggregated::AlreadyClean => unreachable!("a forced aggregation always writes"),
        }
    }

    /// One page of the `aggregate-counters` job: finds up to `page` dirty shards (collection group
    /// `shards` where `dirty == true`), and aggregates each counter they belong to. `examined`
    /// counts the dirty shards found, `changed` the counters whose total this call wrote. Shards
    /// whose id names no counter field (stock shards never carry the flag) are ignored. Pages go
    /// in name order from `after` (the last shard name of the previous page, which this advances),
    /// so a counter hot enough to stay dirty is not re-read by every page of the same run.
    pub async fn aggregate_dirty_page(
        &self,
        page: u32,
        after: &mut Option<String>,
    ) -> Result<Page, Error> {
        let db = &self.db;
        let mut query = rpc::from(paths::names::SHARDS, true);
        query.select = rpc::select(&[rpc::NAME]);
        query.r#where = rpc::and(vec![rpc::eq(DIRTY_FIELD, rpc::boolean(true))]);
        query.order_by = vec![rpc::asc(rpc::NAME)];
        if let Some(name) = after.take() {
            query.start_at = Some(rpc::cursor(vec![rpc::reference(name)], false));
        }
        query.limit = Some(i32::try_from(page.max(1)).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        let examined = docs.len() as u64;
        let full = examined >= u64::from(page.max(1));
        *after = docs.last().map(|d| d.name.clone());
        let suffix = format!("/{}", paths::names::SHARDS);
        let mut counters: BTreeMap<(String, &'static str), CounterField> = BTreeMap::new();
        for doc in &docs {
            let Some((collection, id)) = doc.name.rsplit_once('/') else { continue };
            let (Some(counted), Some((field, _))) =
                (collection.strip_suffix(&suffix), CounterField::parse_shard_id(id))
            else {
                continue;
            };
            counters.insert((counted.to_owned(), field.key()), field);
        }
        // Counters are independent: a few at once, each still one read and one commit.
        let counters: Vec<(String, CounterField)> =
            counters.into_iter().map(|((counted, _), field)| (counted, field)).collect();
        let mut changed = 0;
        for chunk in counters.chunks(AGGREGATE_CONCURRENCY) {
            let outcomes = futures::future::join_all(
                chunk.iter().map(|(counted, field)| aggregate_counter(db, counted, *field, false)),
            )
            .await;
            for outcome in outcomes {
                if let Aggregated::Written { .. } = outcome? {
                    changed += 1;
                }
            }
        }
        Ok(Page { examined, changed, full })
    }

    /// Sets or clears `marker` (e.g. `posts/{p}/likes/{uid}`) and moves `field` of `counted` by the
    /// change, in one transaction. `value` is the marker's content when it is set. Repeating a
    /// request changes nothing; the answer says what this call did.
    pub async fn set_membership<T: Serialize + Sync>(
        &self,
        marker: &DocPath,
        counted: &DocPath,
        field: CounterField,
        request: Membership,
        value: &T,
    ) -> Result<MembershipOutcome, Error> {
        let db = &self.db;
        let shard = random_shard(counted, field)?;
        let shard = &shard;
        db.run_transaction(|tx| {
            Box::pin(async move {
                let exists = tx.get::<serde_json::Value>(marker).await?.is_some();
                let outcome = membership(request, exists);
                match outcome.marker {
                    Some(true) => tx.set(marker, value)?,
                    Some(false) => tx.delete(marker),
                    None => {}
                }
                if outcome.delta != 0 {
                    tx.push_write(increment_write(tx.db(), shard, outcome.delta));
                }
                Ok::<_, Error>(outcome)
            })
        })
        .await
    }

    /// Whether `marker` exists (e.g. whether a user likes a post).
    pub async fn has_marker(&self, marker: &DocPath) -> Result<bool, Error> {
        let db = &self.db;
        Ok(db.get::<serde_json::Value>(marker).await?.is_some())
    }
}
