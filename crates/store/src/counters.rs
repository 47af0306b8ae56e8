//! Sharded counters (seed 002 section 2; rules in `domain::counters`): shard `n` of field `f`
//! of a counted document is `<counted>/shards/{f}_{n}` holding `{count}`; an increment is a
//! server-side `increment` transform on one random shard; a read sums the shards with one
//! `BatchGetDocuments`; [`aggregate`] writes the total to the parent's field (`likes`,
//! `followerCount`, ...), for the scheduled cleanup job.
//!
//! Membership counters (likes, follows, unique views) are idempotent: [`set_membership`] reads
//! the per-(item, user) marker document and writes the marker and the shard increment in the
//! same transaction, so a retried or duplicated request counts once and an unlike without a
//! like never decrements.

use crate::db::Db;
use crate::error::Error;
use crate::paths::{self, DocPath};
use crate::rpc;
use domain::counters::{
    CounterField, Membership, MembershipOutcome, membership, pick_shard, total,
};
use firestore::gcloud_sdk::google::firestore::v1::{
    Document, DocumentMask, DocumentTransform, Precondition, Write, document_transform,
    precondition, write,
};
use serde::Serialize;

/// The field of a shard document holding its part of the count.
pub const SHARD_FIELD: &str = "count";

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

/// `count += by` on `shard`, as a write (for a commit or transaction of the caller's).
pub(crate) fn increment_write(db: &Db, shard: &DocPath, by: i64) -> Write {
    Write {
        operation: Some(write::Operation::Transform(DocumentTransform {
            document: shard.full_name(db.documents_root()),
            field_transforms: vec![document_transform::FieldTransform {
                field_path: SHARD_FIELD.to_owned(),
                transform_type: Some(
                    document_transform::field_transform::TransformType::Increment(rpc::integer(by)),
                ),
            }],
        })),
        ..Default::default()
    }
}

/// Adds `by` to `field` of `counted` on one random shard: for counters that count events
/// rather than members (shares). Not idempotent by design; use [`set_membership`] when a
/// retry must not count twice.
pub async fn increment(
    db: &Db,
    counted: &DocPath,
    field: CounterField,
    by: i64,
) -> Result<(), Error> {
    let shard = random_shard(counted, field)?;
    db.commit(vec![increment_write(db, &shard, by)]).await
}

/// The total of `field` on `counted`: the sum of its shards (never below 0).
pub async fn read(db: &Db, counted: &DocPath, field: CounterField) -> Result<u64, Error> {
    let names =
        shard_paths(counted, field)?.iter().map(|p| p.full_name(db.documents_root())).collect();
    let docs = rpc::batch_get(db, names).await?;
    Ok(total(docs.iter().flatten().map(|d: &Document| rpc::get_i64(d, SHARD_FIELD).unwrap_or(0))))
}

/// Sums the shards of `field` and writes the total to the parent's field (only that field;
/// nothing is written when the parent no longer exists). Returns the total. Safe to run at
/// any time and any number of times.
pub async fn aggregate(db: &Db, counted: &DocPath, field: CounterField) -> Result<u64, Error> {
    let sum = read(db, counted, field).await?;
    let name = field.parent_field();
    let mut doc = Document { name: counted.full_name(db.documents_root()), ..Default::default() };
    doc.fields.insert(name.to_owned(), rpc::integer(i64::try_from(sum).unwrap_or(i64::MAX)));
    let write = Write {
        operation: Some(write::Operation::Update(doc)),
        update_mask: Some(DocumentMask { field_paths: vec![name.to_owned()] }),
        current_document: Some(Precondition {
            condition_type: Some(precondition::ConditionType::Exists(true)),
        }),
        ..Default::default()
    };
    match db.commit(vec![write]).await {
        Ok(()) => Ok(sum),
        Err(error) if error.code() == Some(crate::Code::NotFound) => Ok(sum),
        Err(error) => Err(error),
    }
}

/// Sets or clears `marker` (e.g. `posts/{p}/likes/{uid}`) and moves `field` of `counted` by the
/// change, in one transaction. `value` is the marker's content when it is set. Repeating a
/// request changes nothing; the answer says what this call did.
pub async fn set_membership<T: Serialize + Sync>(
    db: &Db,
    marker: &DocPath,
    counted: &DocPath,
    field: CounterField,
    request: Membership,
    value: &T,
) -> Result<MembershipOutcome, Error> {
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
                tx.increment(shard, SHARD_FIELD, outcome.delta);
            }
            Ok::<_, Error>(outcome)
        })
    })
    .await
}

/// Whether `marker` exists (e.g. whether a user likes a post).
pub async fn has_marker(db: &Db, marker: &DocPath) -> Result<bool, Error> {
    Ok(db.get::<serde_json::Value>(marker).await?.is_some())
}
