//! Feed and counter query helpers: small builders over Firestore's `StructuredQuery`, `RunQuery` and `BatchGetDocuments` RPCs,
//! for the queries the feed and the counters need (equality filters, orderings, cursors that
//! name a document, projections, collection-group scope), plus readers of typed fields.
//!
//! The raw RPCs are used rather than the firestore crate's fluent API because cursors here
//! mix a field value with a document reference (`startAfter(followedAt, __name__)`), which is
//! what a stable page boundary needs.

use crate::db::Db;
use crate::error::Error;
use chrono::{DateTime, Utc};
use firestore::gcloud_sdk::google::firestore::v1::{
    ArrayValue, BatchGetDocumentsRequest, Cursor, Document, RunQueryRequest, StructuredQuery,
    Value, batch_get_documents_request, batch_get_documents_response, run_query_request,
    structured_query, value::ValueType,
};
use firestore::gcloud_sdk::prost_types::Timestamp;
use structured_query::{
    CollectionSelector, FieldFilter, FieldReference, Filter, Order, Projection, field_filter,
    filter::FilterType,
};

/// The special field naming the document itself.
pub(crate) const NAME: &str = "__name__";

pub(crate) fn string(s: &str) -> Value {
    Value { value_type: Some(ValueType::StringValue(s.to_owned())) }
}

pub(crate) fn null() -> Value {
    Value { value_type: Some(ValueType::NullValue(0)) }
}

pub(crate) fn integer(i: i64) -> Value {
    Value { value_type: Some(ValueType::IntegerValue(i)) }
}

pub(crate) fn boolean(b: bool) -> Value {
    Value { value_type: Some(ValueType::BooleanValue(b)) }
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> Value {
    let nanos = i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0);
    Value {
        value_type: Some(ValueType::TimestampValue(Timestamp { seconds: t.timestamp(), nanos })),
    }
}

pub(crate) fn reference(full_name: String) -> Value {
    Value { value_type: Some(ValueType::ReferenceValue(full_name)) }
}

pub(crate) fn strings(items: &[String]) -> Value {
    Value {
        value_type: Some(ValueType::ArrayValue(ArrayValue {
            values: items.iter().map(|s| string(s)).collect(),
        })),
    }
}

fn field(path: &str) -> FieldReference {
    FieldReference { field_path: path.to_owned() }
}

/// `path op value`.
pub(crate) fn filter(path: &str, op: field_filter::Operator, value: Value) -> Filter {
    Filter {
        filter_type: Some(FilterType::FieldFilter(FieldFilter {
            field: Some(field(path)),
            op: op as i32,
            value: Some(value),
        })),
    }
}

/// `path == value`.
pub(crate) fn eq(path: &str, value: Value) -> Filter {
    filter(path, field_filter::Operator::Equal, value)
}

/// All of `filters` (a single filter stays as it is).
pub(crate) fn and(mut filters: Vec<Filter>) -> Option<Filter> {
    match filters.len() {
        0 => None,
        1 => filters.pop(),
        _ => Some(Filter {
            filter_type: Some(FilterType::CompositeFilter(structured_query::CompositeFilter {
                op: structured_query::composite_filter::Operator::And as i32,
                filters,
            })),
        }),
    }
}

pub(crate) fn asc(path: &str) -> Order {
    Order { field: Some(field(path)), direction: structured_query::Direction::Ascending as i32 }
}

pub(crate) fn desc(path: &str) -> Order {
    Order { field: Some(field(path)), direction: structured_query::Direction::Descending as i32 }
}

/// A cursor on the ordering's values; `before: false` = strictly after (start) or inclusive
/// (end).
pub(crate) fn cursor(values: Vec<Value>, before: bool) -> Cursor {
    Cursor { values, before }
}

/// A query on `collection_id` (a collection group when `all_descendants`).
pub(crate) fn from(collection_id: &str, all_descendants: bool) -> StructuredQuery {
    StructuredQuery {
        from: vec![CollectionSelector { collection_id: collection_id.to_owned(), all_descendants }],
        ..Default::default()
    }
}

/// Returns only `fields` (`[NAME]` for keys only).
pub(crate) fn select(fields: &[&str]) -> Option<Projection> {
    Some(Projection { fields: fields.iter().map(|f| field(f)).collect() })
}

/// Runs `query` under `parent` (a documents root or a document's full name) and collects the
/// documents.
pub(crate) async fn run(
    db: &Db,
    parent: String,
    query: StructuredQuery,
) -> Result<Vec<Document>, Error> {
    let request = query_request(parent, query);
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

/// The `RunQuery` request of `query` under `parent`. Every query `store` sends is built here,
/// so its shape is noted for the index check (`query_log`).
pub(crate) fn query_request(parent: String, query: StructuredQuery) -> RunQueryRequest {
    crate::query_log::note(&query);
    RunQueryRequest {
        parent,
        query_type: Some(run_query_request::QueryType::StructuredQuery(query)),
        ..Default::default()
    }
}

/// Reads the documents named (full names) in one `BatchGetDocuments` call; the answer is in
/// the order asked, `None` for a missing document.
pub(crate) async fn batch_get(db: &Db, names: Vec<String>) -> Result<Vec<Option<Document>>, Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    Ok(batch_get_in(db, names, None).await?.0)
}

/// [`batch_get`] under `selector` (a transaction, or a new one to begin); also answers the id
/// of the transaction the call began, if it began one.
pub(crate) async fn batch_get_in(
    db: &Db,
    names: Vec<String>,
    selector: Option<batch_get_documents_request::ConsistencySelector>,
) -> Result<(Vec<Option<Document>>, Option<Vec<u8>>), Error> {
    // Each document is asked (and billed) once; a name asked twice is answered twice.
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    let request = BatchGetDocumentsRequest {
        database: db.database_name().to_owned(),
        documents: unique,
        consistency_selector: selector,
        ..Default::default()
    };
    let mut client = db.client().await?;
    let mut stream = db.call(client.batch_get_documents(request)).await?;
    let mut found = std::collections::HashMap::new();
    let mut begun = None;
    while let Some(response) = stream.message().await.map_err(Error::from)? {
        if !response.transaction.is_empty() {
            begun = Some(response.transaction);
        }
        if let Some(batch_get_documents_response::Result::Found(doc)) = response.result {
            found.insert(doc.name.clone(), doc);
        }
    }
    Ok((names.iter().map(|name| found.get(name).cloned()).collect(), begun))
}

/// The last segment of a document name (its id).
pub(crate) fn doc_id(doc: &Document) -> &str {
    doc.name.rsplit('/').next().unwrap_or_default()
}

pub(crate) fn get_string(doc: &Document, name: &str) -> Option<String> {
    match doc.fields.get(name)?.value_type.as_ref()? {
        ValueType::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn get_i64(doc: &Document, name: &str) -> Option<i64> {
    match doc.fields.get(name)?.value_type.as_ref()? {
        ValueType::IntegerValue(i) => Some(*i),
        #[allow(clippy::cast_possible_truncation)]
        ValueType::DoubleValue(d) if d.is_finite() => Some(*d as i64),
        _ => None,
    }
}

pub(crate) fn get_bool(doc: &Document, name: &str) -> Option<bool> {
    match doc.fields.get(name)?.value_type.as_ref()? {
        ValueType::BooleanValue(b) => Some(*b),
        _ => None,
    }
}

pub(crate) fn get_time(doc: &Document, name: &str) -> Option<DateTime<Utc>> {
    match doc.fields.get(name)?.value_type.as_ref()? {
        ValueType::TimestampValue(ts) => {
            DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
        }
        _ => None,
    }
}
