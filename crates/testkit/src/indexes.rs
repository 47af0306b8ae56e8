//! Does production Firestore have an index for a query? The emulator answers every query
//! without indexes, so this checks the query shapes `store` recorded during the test suite
//! (`store::query_log`) against `firestore.indexes.json`, applying Firestore's rules:
//!
//! 1. **Automatic single-field indexes** (Firestore docs, "Index types in Cloud Firestore",
//!    <https://firebase.google.com/docs/firestore/query-data/index-overview#single-field_indexes>):
//!    for every field, Firestore keeps an ascending, a descending and an array-contains index
//!    at *collection* scope. Collection-group scope single-field indexes are not kept
//!    automatically: a collection-group query needs a field override that adds one ("Automatic
//!    indexing" on the same page).
//! 2. **Single-field index exemptions / overrides** (same page, "Single-field index
//!    exemptions"): a `fieldOverrides` entry replaces the automatic indexes of that field in
//!    that collection group with exactly the ones it lists; an empty list removes them all (a
//!    TTL field is usually exempted this way).
//! 3. **Queries served without a composite index** ("Queries supported by single-field
//!    indexes", and "Index merging" on the same page): only equality (and `in`,
//!    `array-contains`, `array-contains-any`) filters, merged from their single-field indexes;
//!    or a range filter and/or ordering on one single field only; or nothing but the document
//!    name. Ordering by `__name__` ascending (the implicit last ordering) and `__name__` filters
//!    are always free.
//! 4. **Composite indexes** ("Composite indexes", same page): everything else needs an index
//!    of the query's scope whose fields are the equality fields (any order, array-contains
//!    fields as `CONTAINS`) followed by the orderings in order (a range field not ordered
//!    explicitly is ordered ascending first, as Firestore does). Firestore can read an index
//!    backwards, so orderings that are all reversed match too.
//!
//! [`check`] answers, for each shape, the index that serves it or the index to add.

use std::collections::BTreeSet;

use serde::Deserialize;
use store::query_log::QueryShape;

/// `firestore.indexes.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexFile {
    /// Composite indexes.
    #[serde(default)]
    pub indexes: Vec<CompositeIndex>,
    /// Single-field overrides and exemptions.
    #[serde(default)]
    pub field_overrides: Vec<FieldOverride>,
}

/// One composite index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeIndex {
    /// The collection id.
    pub collection_group: String,
    /// `COLLECTION` or `COLLECTION_GROUP`.
    pub query_scope: String,
    /// Its fields, in order.
    pub fields: Vec<IndexField>,
}

/// A field of a composite index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexField {
    /// The field path.
    pub field_path: String,
    /// `ASCENDING` / `DESCENDING`.
    #[serde(default)]
    pub order: Option<String>,
    /// `CONTAINS`.
    #[serde(default)]
    pub array_config: Option<String>,
}

/// A single-field override.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldOverride {
    /// The collection id.
    pub collection_group: String,
    /// The field path.
    pub field_path: String,
    /// The single-field indexes the field keeps (empty: none).
    #[serde(default)]
    pub indexes: Vec<SingleIndex>,
    /// A TTL policy on the field.
    #[serde(default)]
    pub ttl: bool,
}

/// One single-field index of an override.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleIndex {
    /// `COLLECTION` or `COLLECTION_GROUP`.
    pub query_scope: String,
    /// `ASCENDING` / `DESCENDING`.
    #[serde(default)]
    pub order: Option<String>,
    /// `CONTAINS`.
    #[serde(default)]
    pub array_config: Option<String>,
}

/// What serves a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// No index at all (a scan in name order).
    ByName,
    /// Single-field indexes (merged when several).
    SingleField,
    /// The composite index at this position of `indexes`.
    Composite(usize),
}

/// Why a query has no serving index, and what to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is wrong.
    pub why: String,
    /// The JSON to add to `firestore.indexes.json`.
    pub add: String,
}

const NAME: &str = "__name__";

fn scope(shape: &QueryShape) -> &'static str {
    if shape.collection_group { "COLLECTION_GROUP" } else { "COLLECTION" }
}

/// How one field is used: `CONTAINS` for array membership, else an order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    field: String,
    mode: String,
}

fn is_equality(op: &str) -> bool {
    matches!(op, "EQUAL" | "IN" | "IS_NULL" | "IS_NAN")
}

fn is_array(op: &str) -> bool {
    matches!(op, "ARRAY_CONTAINS" | "ARRAY_CONTAINS_ANY")
}

/// The equality-like uses, the orderings (explicit ones first, then range fields Firestore
/// orders by implicitly), without `__name__`.
fn uses(shape: &QueryShape) -> (BTreeSet<Use>, Vec<Use>) {
    let mut equal = BTreeSet::new();
    let mut ranges = Vec::new();
    for f in shape.filters.iter().filter(|f| f.field != NAME) {
        if is_equality(&f.op) {
            equal.insert(Use { field: f.field.clone(), mode: "ASCENDING".into() });
        } else if is_array(&f.op) {
            equal.insert(Use { field: f.field.clone(), mode: "CONTAINS".into() });
        } else if !ranges.contains(&f.field) {
            ranges.push(f.field.clone());
        }
    }
    let mut orders: Vec<Use> = shape
        .orders
        .iter()
        .map(|o| Use { field: o.field.clone(), mode: o.direction.clone() })
        .collect();
    // The implicit last ordering by name is free when it follows the others' direction.
    while orders.last().is_some_and(|o| o.field == NAME) {
        orders.pop();
    }
    for field in ranges {
        if !orders.iter().any(|o| o.field == field) {
            orders.push(Use { field, mode: "ASCENDING".into() });
        }
    }
    (equal, orders)
}

fn flip(mode: &str) -> &str {
    match mode {
        "ASCENDING" => "DESCENDING",
        "DESCENDING" => "ASCENDING",
        other => other,
    }
}

impl IndexFile {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether `field` of `collection` has a single-field index of `mode` at `scope`.
    pub fn has_single(&self, collection: &str, field: &str, mode: &str, scope: &str) -> bool {
        let over = self
            .field_overrides
            .iter()
            .find(|o| o.collection_group == collection && o.field_path == field);
        match over {
            Some(o) => o.indexes.iter().any(|i| {
                i.query_scope == scope
                    && (i.order.as_deref() == Some(mode) || i.array_config.as_deref() == Some(mode))
            }),
            None => scope == "COLLECTION",
        }
    }

    /// What serves `shape`, or what is missing.
    pub fn serving(&self, shape: &QueryShape) -> Result<Served, Missing> {
        let scope = scope(shape);
        let (equal, orders) = uses(shape);
        let single = |u: &Use| self.has_single(&shape.collection, &u.field, &u.mode, scope);
        // Rule 3: no index, merged single-field indexes, or one field only.
        if equal.is_empty() && orders.is_empty() {
            return Ok(Served::ByName);
        }
        let one_field = equal.is_empty() && orders.len() == 1;
        if (orders.is_empty() || one_field) && equal.iter().chain(&orders).all(single) {
            return Ok(Served::SingleField);
        }
        let single_shape = orders.is_empty() || one_field;
        // Rule 4: a composite index of the query's scope.
        let width = equal.len() + orders.len();
        for (i, index) in self.indexes.iter().enumerate() {
            if index.collection_group != shape.collection
                || index.query_scope != scope
                || index.fields.len() != width
            {
                continue;
            }
            let mode = |f: &IndexField| {
                f.array_config.clone().or_else(|| f.order.clone()).unwrap_or_default()
            };
            let head: BTreeSet<Use> = index.fields[..equal.len()]
                .iter()
                .map(|f| {
                    let m = mode(f);
                    // Equality fields match an index field of either direction.
                    let m = if m == "DESCENDING" { "ASCENDING".to_owned() } else { m };
                    Use { field: f.field_path.clone(), mode: m }
                })
                .collect();
            if head != equal {
                continue;
            }
            let tail = &index.fields[equal.len()..];
            let forward =
                tail.iter().zip(&orders).all(|(f, o)| f.field_path == o.field && mode(f) == o.mode);
            let backward = tail
                .iter()
                .zip(&orders)
                .all(|(f, o)| f.field_path == o.field && mode(f) == flip(&o.mode));
            if forward || backward {
                return Ok(Served::Composite(i));
            }
        }
        if single_shape {
            let wanted: Vec<String> = equal
                .iter()
                .chain(&orders)
                .filter(|u| !single(u))
                .map(|u| {
                    let config = if u.mode == "CONTAINS" {
                        r#""arrayConfig": "CONTAINS""#.to_owned()
                    } else {
                        format!(r#""order": "{}""#, u.mode)
                    };
                    format!(
                        r#"{{ "collectionGroup": "{}", "fieldPath": "{}", "indexes": [{{ "queryScope": "{scope}", {config} }}] }}"#,
                        shape.collection, u.field
                    )
                })
                .collect();
            return Err(Missing {
                why: format!(
                    "no single-field index at {scope} scope for {} (an override removes it, or a collection-group query needs one added)",
                    equal
                        .iter()
                        .chain(&orders)
                        .filter(|u| !single(u))
                        .map(|u| u.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                add: format!(
                    "fieldOverrides (merge with an existing entry of that field): {}",
                    wanted.join(", ")
                ),
            });
        }
        let fields: Vec<String> = equal
            .iter()
            .chain(&orders)
            .map(|u| {
                if u.mode == "CONTAINS" {
                    format!(r#"{{ "fieldPath": "{}", "arrayConfig": "CONTAINS" }}"#, u.field)
                } else {
                    format!(r#"{{ "fieldPath": "{}", "order": "{}" }}"#, u.field, u.mode)
                }
            })
            .collect();
        Err(Missing {
            why: "needs a composite index (equality filters with an ordering or range, or orderings on several fields)".to_owned(),
            add: format!(
                r#"indexes: {{ "collectionGroup": "{}", "queryScope": "{scope}", "fields": [{}] }}"#,
                shape.collection,
                fields.join(", ")
            ),
        })
    }
}

/// The result of checking shapes against a file.
#[derive(Debug, Default)]
pub struct Report {
    /// Shapes with a serving index.
    pub served: Vec<(QueryShape, Served)>,
    /// Shapes without one.
    pub missing: Vec<(QueryShape, Missing)>,
    /// Composite indexes no recorded shape uses.
    pub unused: Vec<CompositeIndex>,
}

/// Checks every shape.
pub fn check(file: &IndexFile, shapes: &BTreeSet<QueryShape>) -> Report {
    let mut report = Report::default();
    let mut used = BTreeSet::new();
    for shape in shapes {
        match file.serving(shape) {
            Ok(served) => {
                if let Served::Composite(i) = served {
                    used.insert(i);
                }
                report.served.push((shape.clone(), served));
            }
            Err(missing) => report.missing.push((shape.clone(), missing)),
        }
    }
    report.unused = file
        .indexes
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, index)| index.clone())
        .collect();
    report
}

/// A short text of a shape: `posts (group) where isActive EQUAL, order createdAt DESCENDING`.
pub fn describe(shape: &QueryShape) -> String {
    let mut text = shape.collection.clone();
    if shape.collection_group {
        text.push_str(" (group)");
    }
    if !shape.filters.is_empty() {
        let filters: Vec<String> =
            shape.filters.iter().map(|f| format!("{} {}", f.field, f.op)).collect();
        text.push_str(&format!(" where {}", filters.join(", ")));
    }
    if !shape.orders.is_empty() {
        let orders: Vec<String> =
            shape.orders.iter().map(|o| format!("{} {}", o.field, o.direction)).collect();
        text.push_str(&format!(" order {}", orders.join(", ")));
    }
    if shape.cursor {
        text.push_str(" (cursor)");
    }
    text
}

/// Reads every `*.jsonl` file of `dir` (the recorded shapes of each test process).
pub fn read_shapes(dir: &std::path::Path) -> std::io::Result<BTreeSet<QueryShape>> {
    let mut shapes = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path)?.lines().filter(|l| !l.trim().is_empty()) {
                let shape: QueryShape = serde_json::from_str(line).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                shapes.insert(shape);
            }
        }
    }
    Ok(shapes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::query_log::{FilterShape, OrderShape};

    fn shape(
        collection: &str,
        group: bool,
        filters: &[(&str, &str)],
        orders: &[(&str, &str)],
    ) -> QueryShape {
        QueryShape {
            collection: collection.to_owned(),
            collection_group: group,
            filters: filters
                .iter()
                .map(|(f, op)| FilterShape { field: (*f).to_owned(), op: (*op).to_owned() })
                .collect(),
            orders: orders
                .iter()
                .map(|(f, d)| OrderShape { field: (*f).to_owned(), direction: (*d).to_owned() })
                .collect(),
            cursor: false,
        }
    }

    const FILE: &str = r#"{
      "indexes": [
        { "collectionGroup": "reservations", "queryScope": "COLLECTION",
          "fields": [ { "fieldPath": "status", "order": "ASCENDING" },
                      { "fieldPath": "expires_at", "order": "ASCENDING" } ] },
        { "collectionGroup": "posts", "queryScope": "COLLECTION",
          "fields": [ { "fieldPath": "vendorId", "order": "ASCENDING" },
                      { "fieldPath": "isActive", "order": "ASCENDING" },
                      { "fieldPath": "createdAt", "order": "DESCENDING" } ] },
        { "collectionGroup": "orders", "queryScope": "COLLECTION",
          "fields": [ { "fieldPath": "uid", "order": "ASCENDING" },
                      { "fieldPath": "created_at", "order": "DESCENDING" } ] }
      ],
      "fieldOverrides": [
        { "collectionGroup": "idempotency", "fieldPath": "expires_at", "ttl": true, "indexes": [] },
        { "collectionGroup": "shards", "fieldPath": "dirty",
          "indexes": [ { "queryScope": "COLLECTION", "order": "ASCENDING" },
                       { "queryScope": "COLLECTION_GROUP", "order": "ASCENDING" } ] }
      ]
    }"#;

    fn file() -> IndexFile {
        IndexFile::parse(FILE).unwrap()
    }

    /// (query, expected): `Ok` with what serves it, or `Err` with a word of the reason.
    #[test]
    fn the_rules_table() {
        let f = file();
        let cases: Vec<(QueryShape, Result<Served, &str>)> = vec![
            // Rule 3: single-field indexes, automatic at collection scope.
            (
                shape(
                    "payments",
                    false,
                    &[("reconcile_due_at", "LESS_THAN_OR_EQUAL")],
                    &[("reconcile_due_at", "ASCENDING")],
                ),
                Ok(Served::SingleField),
            ),
            (
                shape("orders", false, &[("uid", "EQUAL"), ("status", "EQUAL")], &[]),
                Ok(Served::SingleField),
            ),
            (
                shape("orders", false, &[("created_at", "GREATER_THAN")], &[]),
                Ok(Served::SingleField),
            ),
            (shape("posts", false, &[("tags", "ARRAY_CONTAINS")], &[]), Ok(Served::SingleField)),
            (shape("orders", false, &[], &[("created_at", "DESCENDING")]), Ok(Served::SingleField)),
            (shape("followers", false, &[], &[("__name__", "ASCENDING")]), Ok(Served::ByName)),
            (shape("followers", false, &[("__name__", "GREATER_THAN")], &[]), Ok(Served::ByName)),
            // Equality + name order: merged single-field indexes (name is the implicit order).
            (
                shape("shards", true, &[("dirty", "EQUAL")], &[("__name__", "ASCENDING")]),
                Ok(Served::SingleField),
            ),
            // Rule 4: composite needed and present (equality fields in any order; reversed).
            (
                shape(
                    "reservations",
                    false,
                    &[("status", "EQUAL"), ("expires_at", "LESS_THAN_OR_EQUAL")],
                    &[("expires_at", "ASCENDING")],
                ),
                Ok(Served::Composite(0)),
            ),
            (
                shape(
                    "reservations",
                    false,
                    &[("status", "EQUAL"), ("expires_at", "LESS_THAN")],
                    &[],
                ),
                Ok(Served::Composite(0)),
            ),
            (
                shape(
                    "posts",
                    false,
                    &[("isActive", "EQUAL"), ("vendorId", "EQUAL")],
                    &[("createdAt", "DESCENDING")],
                ),
                Ok(Served::Composite(1)),
            ),
            (
                shape("orders", false, &[("uid", "EQUAL")], &[("created_at", "ASCENDING")]),
                Ok(Served::Composite(2)),
            ),
            // Rule 4: composite needed and absent.
            (
                shape("orders", false, &[("uid", "EQUAL")], &[("amount_minor", "DESCENDING")]),
                Err("composite"),
            ),
            (
                shape("orders", false, &[], &[("uid", "ASCENDING"), ("created_at", "DESCENDING")]),
                Ok(Served::Composite(2)),
            ),
            (
                shape("orders", false, &[], &[("uid", "DESCENDING"), ("created_at", "ASCENDING")]),
                Ok(Served::Composite(2)),
            ),
            (
                shape("orders", false, &[], &[("uid", "ASCENDING"), ("created_at", "ASCENDING")]),
                Err("composite"),
            ),
            (
                shape(
                    "reservations",
                    true,
                    &[("status", "EQUAL"), ("expires_at", "LESS_THAN")],
                    &[],
                ),
                Err("composite"),
            ),
            // Rule 1: collection-group queries get no automatic single-field index.
            (shape("shards", true, &[("dirty", "EQUAL")], &[]), Ok(Served::SingleField)),
            (shape("likes", true, &[("uid", "EQUAL")], &[]), Err("single-field")),
            // Rule 2: an exemption removes the automatic index (the prune-idempotency bug).
            (
                shape(
                    "idempotency",
                    true,
                    &[("expires_at", "LESS_THAN")],
                    &[("expires_at", "ASCENDING"), ("__name__", "ASCENDING")],
                ),
                Err("single-field"),
            ),
            (shape("idempotency", false, &[("expires_at", "LESS_THAN")], &[]), Err("single-field")),
            // An override replaces the automatic set: DESCENDING was not kept for `dirty`.
            (shape("shards", false, &[], &[("dirty", "DESCENDING")]), Err("single-field")),
        ];
        for (query, expected) in cases {
            let got = f.serving(&query);
            match (&got, &expected) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{query:?}"),
                (Err(missing), Err(word)) => {
                    assert!(missing.why.contains(word), "{query:?}: {missing:?}");
                    assert!(missing.add.contains(&query.collection), "{missing:?}");
                }
                _ => panic!("{query:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_index_to_add_is_named_and_unused_indexes_are_reported() {
        let f = file();
        let missing = f
            .serving(&shape(
                "orders",
                false,
                &[("uid", "EQUAL")],
                &[("amount_minor", "DESCENDING")],
            ))
            .unwrap_err();
        assert!(
            missing.add.contains(r#""fieldPath": "uid", "order": "ASCENDING""#),
            "{}",
            missing.add
        );
        assert!(
            missing.add.contains(r#""fieldPath": "amount_minor", "order": "DESCENDING""#),
            "{}",
            missing.add
        );
        let shapes: BTreeSet<QueryShape> =
            [shape("orders", false, &[("uid", "EQUAL")], &[("created_at", "DESCENDING")])].into();
        let report = check(&f, &shapes);
        assert_eq!(report.served.len(), 1);
        assert!(report.missing.is_empty());
        let unused: Vec<&str> = report.unused.iter().map(|i| i.collection_group.as_str()).collect();
        assert_eq!(unused, ["reservations", "posts"]);
    }
}
