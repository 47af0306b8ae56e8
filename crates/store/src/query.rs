//! Simple collection queries (`where` filters, one ordering, a limit) over Firestore's
//! `RunQuery` RPC, returning raw documents.
//!
//! NOTE (feed helper): this file was created by the payments/inventory work; the feed helper
//! overwrote it by accident and restored this API-compatible version from its uses in
//! `inventory.rs` (`run`, `Where`, `Op`, `string`, `timestamp`). The inventory owner should
//! check it against their original.

use crate::db::Db;
use crate::error::Error;
use crate::paths::CollectionPath;
use firestore::gcloud_sdk::google::firestore::v1::{
    Document, RunQueryRequest, StructuredQuery, Value, run_query_request, structured_query,
    value::ValueType,
};
use firestore::gcloud_sdk::prost_types::Timestamp;
use structured_query::{
    CollectionSelector, FieldFilter, FieldReference, Filter, Order, field_filter,
};

/// A comparison operator of a `where` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `==`
    Eq,
    /// `<=`
    Le,
}

impl Op {
    fn grpc(self) -> field_filter::Operator {
        match self {
            Op::Eq => field_filter::Operator::Equal,
            Op::Le => field_filter::Operator::LessThanOrEqual,
        }
    }
}

/// One `field op value` filter.
#[derive(Debug, Clone)]
pub(crate) struct Where {
    /// The field path.
    pub(crate) field: &'static str,
    /// The comparison.
    pub(crate) op: Op,
    /// The operand.
    pub(crate) value: Value,
}

/// A string value.
pub(crate) fn string(s: &str) -> Value {
    Value { value_type: Some(ValueType::StringValue(s.to_owned())) }
}

/// A timestamp value from microseconds since the epoch.
pub(crate) fn timestamp(micros: i64) -> Value {
    let seconds = micros.div_euclid(1_000_000);
    let nanos = i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0);
    Value { value_type: Some(ValueType::TimestampValue(Timestamp { seconds, nanos })) }
}

/// Runs `collection` where every filter holds, ordered ascending by `order_by`, at most `limit`
/// documents.
pub(crate) async fn run(
    db: &Db,
    collection: &CollectionPath,
    filters: Vec<Where>,
    order_by: Option<&str>,
    limit: Option<i32>,
) -> Result<Vec<Document>, Error> {
    let mut filters: Vec<Filter> = filters
        .into_iter()
        .map(|w| Filter {
            filter_type: Some(structured_query::filter::FilterType::FieldFilter(FieldFilter {
                field: Some(FieldReference { field_path: w.field.to_owned() }),
                op: w.op.grpc() as i32,
                value: Some(w.value),
            })),
        })
        .collect();
    let r#where = match filters.len() {
        0 => None,
        1 => filters.pop(),
        _ => Some(Filter {
            filter_type: Some(structured_query::filter::FilterType::CompositeFilter(
                structured_query::CompositeFilter {
                    op: structured_query::composite_filter::Operator::And as i32,
                    filters,
                },
            )),
        }),
    };
    let query = StructuredQuery {
        from: vec![CollectionSelector {
            collection_id: collection.id().to_owned(),
            all_descendants: false,
        }],
        r#where,
        order_by: order_by
            .map(|f| Order {
                field: Some(FieldReference { field_path: f.to_owned() }),
                direction: structured_query::Direction::Ascending as i32,
            })
            .into_iter()
            .collect(),
        limit,
        ..Default::default()
    };
    let request = RunQueryRequest {
        parent: collection.parent_name(db.documents_root()),
        query_type: Some(run_query_request::QueryType::StructuredQuery(query)),
        ..Default::default()
    };
    let mut client = db.client().await?;
    let mut stream = db.call(client.run_query(request)).await?;
    let mut docs = Vec::new();
    while let Some(response) = stream.message().await.map_err(Error::from)? {
        if let Some(doc) = response.document {
            docs.push(doc);
        }
    }
    Ok(docs)
}
