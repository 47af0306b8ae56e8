//! The shape of every structured query `store` sends, recorded (when asked) so a check can
//! prove each one is served by an index that production Firestore has.
//!
//! The emulator serves any query without indexes; production refuses a query with no serving
//! index (`FAILED_PRECONDITION`). So while the test suite runs, `testkit` turns recording on
//! ([`record_into`]) and every distinct shape (collection or collection group, filters with
//! their operators, orderings, whether a cursor is used) is appended once per process as a JSON
//! line to `{dir}/{pid}.jsonl`; `testkit`'s `check-indexes` then checks them all against
//! `firestore.indexes.json`. Values are never recorded, only fields and operators.
//!
//! Recording is off unless a directory was given, which only tests do.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use firestore::gcloud_sdk::google::firestore::v1::StructuredQuery;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::filter::FilterType;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::{
    Direction, Filter, field_filter, unary_filter,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A filter of a query: the field and the operator (`EQUAL`, `LESS_THAN`, `ARRAY_CONTAINS`,
/// `IN`, `IS_NULL`, ... as the Firestore API names them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FilterShape {
    /// The field path (`__name__` for the document name).
    pub field: String,
    /// The operator.
    pub op: String,
}

/// An ordering of a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderShape {
    /// The field path.
    pub field: String,
    /// `ASCENDING` or `DESCENDING`.
    pub direction: String,
}

/// What decides which index serves a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueryShape {
    /// The collection id (the last segment of the collection path).
    pub collection: String,
    /// A collection-group query (all collections with that id).
    pub collection_group: bool,
    /// The filters, combined with AND.
    pub filters: Vec<FilterShape>,
    /// The orderings, in order.
    pub orders: Vec<OrderShape>,
    /// Whether a start or end cursor is given.
    pub cursor: bool,
}

impl QueryShape {
    /// The shape of `query`.
    pub fn of(query: &StructuredQuery) -> Self {
        let (collection, collection_group) = query
            .from
            .first()
            .map(|c| (c.collection_id.clone(), c.all_descendants))
            .unwrap_or_default();
        let mut filters = Vec::new();
        if let Some(filter) = &query.r#where {
            flatten(filter, &mut filters);
        }
        let orders = query
            .order_by
            .iter()
            .map(|o| OrderShape {
                field: o.field.as_ref().map(|f| f.field_path.clone()).unwrap_or_default(),
                direction: Direction::try_from(o.direction)
                    .unwrap_or(Direction::Ascending)
                    .as_str_name()
                    .to_owned(),
            })
            .collect();
        Self {
            collection,
            collection_group,
            filters,
            orders,
            cursor: query.start_at.is_some() || query.end_at.is_some(),
        }
    }
}

fn flatten(filter: &Filter, out: &mut Vec<FilterShape>) {
    match &filter.filter_type {
        Some(FilterType::CompositeFilter(composite)) => {
            for inner in &composite.filters {
                flatten(inner, out);
            }
        }
        Some(FilterType::FieldFilter(f)) => out.push(FilterShape {
            field: f.field.as_ref().map(|r| r.field_path.clone()).unwrap_or_default(),
            op: field_filter::Operator::try_from(f.op)
                .map(|op| op.as_str_name().to_owned())
                .unwrap_or_else(|_| format!("OPERATOR_{}", f.op)),
        }),
        Some(FilterType::UnaryFilter(f)) => out.push(FilterShape {
            field: match &f.operand_type {
                Some(unary_filter::OperandType::Field(r)) => r.field_path.clone(),
                None => String::new(),
            },
            op: unary_filter::Operator::try_from(f.op)
                .map(|op| op.as_str_name().to_owned())
                .unwrap_or_else(|_| format!("UNARY_{}", f.op)),
        }),
        None => {}
    }
}

struct Recorder {
    file: PathBuf,
    seen: Mutex<HashSet<QueryShape>>,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Records every distinct query shape of this process into `{dir}/{pid}.jsonl` from now on.
/// The first call wins; later calls change nothing.
pub fn record_into(dir: impl Into<PathBuf>) {
    let dir = dir.into();
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{}.jsonl", std::process::id()));
    let _ = RECORDER.set(Recorder { file, seen: Mutex::default() });
}

/// Notes `query` (called by every query `store` sends).
pub(crate) fn note(query: &StructuredQuery) {
    let Some(recorder) = RECORDER.get() else { return };
    let shape = QueryShape::of(query);
    let mut seen = recorder.seen.lock();
    if !seen.insert(shape.clone()) {
        return;
    }
    let line = serde_json::to_string(&shape).unwrap_or_default();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&recorder.file)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(error) = written {
        tracing::warn!(%error, file = %recorder.file.display(), "could not record a query shape");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc;
    use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;

    #[test]
    fn shapes_keep_fields_and_operators_never_values() {
        let mut query = rpc::from("reservations", false);
        query.r#where = rpc::and(vec![
            rpc::eq("status", rpc::string("held")),
            rpc::filter("expires_at", Operator::LessThanOrEqual, rpc::integer(5)),
        ]);
        query.order_by = vec![rpc::asc("expires_at")];
        let shape = QueryShape::of(&query);
        assert_eq!(shape.collection, "reservations");
        assert!(!shape.collection_group);
        assert_eq!(
            shape.filters,
            vec![
                FilterShape { field: "status".into(), op: "EQUAL".into() },
                FilterShape { field: "expires_at".into(), op: "LESS_THAN_OR_EQUAL".into() },
            ]
        );
        assert_eq!(
            shape.orders,
            vec![OrderShape { field: "expires_at".into(), direction: "ASCENDING".into() }]
        );
        assert!(!shape.cursor);
        let text = serde_json::to_string(&shape).unwrap();
        assert!(!text.contains("held"), "{text}");
    }
}
