//! Expiry sweeps for the scheduled cleanup jobs: one page of documents of a collection group
//! whose timestamp field is in the past, deleted in one `BatchWrite` where each delete carries
//! the document's update time as a precondition.
//!
//! Why that is safe:
//! - nothing unexpired is deleted: only documents the query saw expired are candidates, and a
//!   document renewed after the read (a new idempotency claim, say) no longer matches its update
//!   time, so its delete is refused;
//! - two runs at once do not double anything: for each document at most one delete succeeds
//!   (the second finds it gone or changed), and only successful deletes are counted;
//! - an interrupted run loses nothing: every delete is independent, and the next run's query
//!   finds whatever is still expired.

use chrono::{DateTime, Utc};
use domain::cleanup::Page;
use firestore::gcloud_sdk::google::firestore::v1::precondition::ConditionType;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::{
    CollectionSelector, FieldFilter, FieldReference, Filter, Order, filter::FilterType,
};
use firestore::gcloud_sdk::google::firestore::v1::{
    BatchWriteRequest, Precondition, RunQueryRequest, StructuredQuery, Value, Write,
    run_query_request, structured_query, value::ValueType, write,
};
use firestore::gcloud_sdk::prost_types::Timestamp;

use crate::db::Db;
use crate::error::Error;

/// The collection group of idempotency records and its expiry field.
pub const IDEMPOTENCY: (&str, &str) = ("idempotency", "expires_at");

/// Deletes up to `page` documents of collection group `collection` whose `field` is before
/// `now` (oldest first). Returns what it examined and how many deletes took effect.
pub async fn delete_expired_page(
    db: &Db,
    collection: &str,
    field: &str,
    now: DateTime<Utc>,
    page: u32,
) -> Result<Page, Error> {
    let field_ref = || FieldReference { field_path: field.to_owned() };
    let query = StructuredQuery {
        from: vec![CollectionSelector {
            collection_id: collection.to_owned(),
            all_descendants: true,
        }],
        r#where: Some(Filter {
            filter_type: Some(FilterType::FieldFilter(FieldFilter {
                field: Some(field_ref()),
                op: structured_query::field_filter::Operator::LessThan as i32,
                value: Some(timestamp(now)),
            })),
        }),
        order_by: vec![Order {
            field: Some(field_ref()),
            direction: structured_query::Direction::Ascending as i32,
        }],
        limit: Some(i32::try_from(page).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    let request = RunQueryRequest {
        parent: db.documents_root().to_owned(),
        query_type: Some(run_query_request::QueryType::StructuredQuery(query)),
        ..Default::default()
    };
    let mut client = db.client().await?;
    let mut stream = db.call(client.run_query(request)).await?;
    let mut writes = Vec::new();
    while let Some(response) = stream.message().await.map_err(Error::from)? {
        if let Some(doc) = response.document {
            writes.push(Write {
                operation: Some(write::Operation::Delete(doc.name)),
                current_document: doc
                    .update_time
                    .map(|t| Precondition { condition_type: Some(ConditionType::UpdateTime(t)) }),
                ..Default::default()
            });
        }
    }
    let examined = writes.len() as u64;
    let full = examined >= u64::from(page);
    if writes.is_empty() {
        return Ok(Page { examined, changed: 0, full });
    }
    let request =
        BatchWriteRequest { database: db.database_name().to_owned(), writes, ..Default::default() };
    let response = db.call(client.batch_write(request)).await?;
    // Status code 0 is OK; anything else (FAILED_PRECONDITION, NOT_FOUND) means another run or
    // writer got there first: not counted, not an error.
    let changed = response.status.iter().filter(|s| s.code == 0).count() as u64;
    Ok(Page { examined, changed, full })
}

fn timestamp(t: DateTime<Utc>) -> Value {
    let nanos = i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0);
    Value {
        value_type: Some(ValueType::TimestampValue(Timestamp { seconds: t.timestamp(), nanos })),
    }
}
