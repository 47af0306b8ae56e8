//! A local stand-in for a Typesense server, speaking the part of its documented HTTP API (v27+)
//! that the search function's Typesense tier uses, with Typesense's error shapes
//! (`{"message": ...}` with 400, 401, 404, 409 or 422):
//!
//! - `X-TYPESENSE-API-KEY` on every request (401 `Forbidden - a valid `x-typesense-api-key`
//!   header must be sent.` otherwise);
//! - `POST /collections` (schema: `name`, `fields` of `name`, `type` in `string`, `string[]`,
//!   `int64`, `bool`, with `facet` and `optional`; 409 when it exists), `GET /collections/{c}`;
//! - `POST /collections/{c}/documents?action=create|upsert` (the document checked against the
//!   schema: 400 for a missing required field or a value of the wrong type; `create` of an
//!   existing id: 409), `GET` and `DELETE /collections/{c}/documents/{id}` (404 when absent);
//! - `PATCH /collections/{c}/documents?filter_by=` (update by filter, answering
//!   `{"num_updated": n}`), with filters `field:=value`, `field:=[a,b]`, `field:<n`, `field:>n`,
//!   `field:<=n`, `field:>=n` joined by `&&`;
//! - `GET /collections/{c}/documents/search` with `q` (`*` for all), `query_by` (required
//!   unless `q` is `*`), `num_typos`, `min_len_1typo`, `min_len_2typo`, `prefix`, `filter_by`,
//!   `sort_by` (`field:asc|desc` up to three, `_text_match:desc`), `facet_by`, `page`,
//!   `per_page` (at most 250, else 422): `found`, `hits[].document`, `hits[].text_match`,
//!   `facet_counts[].counts[]`.
//!
//! Matching is by words (lower case, split on anything not alphanumeric): every query word
//! must be, in some `query_by` field, a word within its typo allowance (edit distance with
//! transpositions), or with `prefix=true` the start of one; `text_match` counts exact words.
//! Every request is recorded ([`FakeTypesense::requests`]) for contract checks.

#![allow(
    clippy::result_large_err,
    reason = "handlers and their helpers answer the error as the axum Response itself"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path and query string, as sent.
    pub uri: String,
    pub body: String,
}

#[derive(Debug, Default)]
struct Collection {
    /// (name, type, optional)
    fields: Vec<(String, String, bool)>,
    docs: BTreeMap<String, Value>,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    collections: Mutex<HashMap<String, Collection>>,
    requests: Mutex<Vec<Recorded>>,
}

/// The fake server, served on a loopback port for the rest of the test.
#[derive(Debug, Clone)]
pub struct FakeTypesense {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    inner: Arc<Inner>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

type Answer = Result<Response, Response>;

impl FakeTypesense {
    /// Serves a fake accepting `api_key`.
    pub async fn start(api_key: &str) -> Self {
        let inner = Arc::new(Inner {
            api_key: api_key.to_owned(),
            collections: Mutex::default(),
            requests: Mutex::default(),
        });
        let app = Router::new()
            .route("/collections", post(create_collection))
            .route("/collections/{c}", get(get_collection))
            .route("/collections/{c}/documents", post(write_doc).patch(update_by_filter))
            .route("/collections/{c}/documents/search", get(search))
            .route("/collections/{c}/documents/{id}", get(get_doc).delete(delete_doc))
            .with_state(inner.clone());
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake typesense");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base_url: format!("http://{addr}"), inner }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().clone()
    }

    /// The stored document `id` of `collection`.
    pub fn document(&self, collection: &str, id: &str) -> Option<Value> {
        self.inner.collections.lock().get(collection)?.docs.get(id).cloned()
    }
}

fn check(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &str,
) -> Result<(), Response> {
    inner.requests.lock().push(Recorded {
        method: method.to_string(),
        uri: uri.to_string(),
        body: body.to_owned(),
    });
    let key = headers.get("x-typesense-api-key").and_then(|v| v.to_str().ok());
    if key != Some(inner.api_key.as_str()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Forbidden - a valid `x-typesense-api-key` header must be sent.",
        ));
    }
    Ok(())
}

fn parse_json(body: &str) -> Result<Value, Response> {
    serde_json::from_str(body).map_err(|_| error(StatusCode::BAD_REQUEST, "Bad JSON."))
}

async fn create_collection(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Answer {
    check(&inner, &method, &uri, &headers, &body)?;
    let schema = parse_json(&body)?;
    let name = schema["name"]
        .as_str()
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "Parameter `name` is required."))?;
    let mut fields = Vec::new();
    for f in schema["fields"].as_array().into_iter().flatten() {
        let (Some(n), Some(t)) = (f["name"].as_str(), f["type"].as_str()) else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Wrong format for `fields`. It should be an array of objects containing `name`, `type`, `optional` and `facet` properties.",
            ));
        };
        if !["string", "string[]", "int64", "bool"].contains(&t) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Field `{n}` has an invalid data type `{t}`, see docs for supported data types."
                ),
            ));
        }
        fields.push((n.to_owned(), t.to_owned(), f["optional"].as_bool().unwrap_or(false)));
    }
    let mut collections = inner.collections.lock();
    if collections.contains_key(name) {
        return Err(error(
            StatusCode::CONFLICT,
            format!("A collection with name `{name}` already exists."),
        ));
    }
    collections.insert(name.to_owned(), Collection { fields, docs: BTreeMap::new() });
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "num_documents": 0, "fields": schema["fields"]})),
    )
        .into_response())
}

async fn get_collection(
    State(inner): State<Arc<Inner>>,
    Path(c): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    check(&inner, &method, &uri, &headers, "")?;
    let collections = inner.collections.lock();
    let col = collections.get(&c).ok_or_else(|| error(StatusCode::NOT_FOUND, "Not Found"))?;
    Ok(Json(json!({"name": c, "num_documents": col.docs.len()})).into_response())
}

fn validate(col: &Collection, doc: &Value) -> Result<(), Response> {
    if !doc["id"].is_string() {
        return Err(error(StatusCode::BAD_REQUEST, "Document's `id` field should be a string."));
    }
    for (name, ty, optional) in &col.fields {
        let value = &doc[name.as_str()];
        if value.is_null() {
            if *optional {
                continue;
            }
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Field `{name}` has been declared in the schema, but is not found in the document."
                ),
            ));
        }
        let ok = match ty.as_str() {
            "string" => value.is_string(),
            "string[]" => value.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            "int64" => value.is_i64(),
            "bool" => value.is_boolean(),
            _ => false,
        };
        if !ok {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Field `{name}` must be {}.",
                    match ty.as_str() {
                        "string" => "a string",
                        "string[]" => "an array of string",
                        "int64" => "an int64",
                        _ => "a bool",
                    }
                ),
            ));
        }
    }
    Ok(())
}

async fn write_doc(
    State(inner): State<Arc<Inner>>,
    Path(c): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Answer {
    check(&inner, &method, &uri, &headers, &body)?;
    let doc = parse_json(&body)?;
    let mut collections = inner.collections.lock();
    let col = collections.get_mut(&c).ok_or_else(|| error(StatusCode::NOT_FOUND, "Not found."))?;
    validate(col, &doc)?;
    let id = doc["id"].as_str().unwrap_or_default().to_owned();
    match params.get("action").map_or("create", String::as_str) {
        "create" if col.docs.contains_key(&id) => {
            return Err(error(
                StatusCode::CONFLICT,
                format!("A document with id {id} already exists."),
            ));
        }
        "create" | "upsert" => {}
        other => return Err(error(StatusCode::BAD_REQUEST, format!("Invalid action `{other}`."))),
    }
    col.docs.insert(id, doc.clone());
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

async fn get_doc(
    State(inner): State<Arc<Inner>>,
    Path((c, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    check(&inner, &method, &uri, &headers, "")?;
    let collections = inner.collections.lock();
    let col = collections.get(&c).ok_or_else(|| error(StatusCode::NOT_FOUND, "Not found."))?;
    let doc = col.docs.get(&id).ok_or_else(|| {
        error(StatusCode::NOT_FOUND, format!("Could not find a document with id: {id}"))
    })?;
    Ok(Json(doc.clone()).into_response())
}

async fn delete_doc(
    State(inner): State<Arc<Inner>>,
    Path((c, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    check(&inner, &method, &uri, &headers, "")?;
    let mut collections = inner.collections.lock();
    let col = collections.get_mut(&c).ok_or_else(|| error(StatusCode::NOT_FOUND, "Not found."))?;
    let doc = col.docs.remove(&id).ok_or_else(|| {
        error(StatusCode::NOT_FOUND, format!("Could not find a document with id: {id}"))
    })?;
    Ok(Json(doc).into_response())
}

/// One clause of a `filter_by`.
fn clause_matches(doc: &Value, clause: &str) -> Result<bool, Response> {
    let bad =
        || error(StatusCode::BAD_REQUEST, format!("Could not parse the filter query: `{clause}`."));
    let (field, rest) = clause.split_once(':').ok_or_else(bad)?;
    let value = &doc[field.trim()];
    let rest = rest.trim();
    for op in ["<=", ">=", "<", ">"] {
        if let Some(n) = rest.strip_prefix(op) {
            let n: i64 = n.trim().parse().map_err(|_| bad())?;
            let v = value.as_i64().ok_or_else(bad)?;
            return Ok(match op {
                "<=" => v <= n,
                ">=" => v >= n,
                "<" => v < n,
                _ => v > n,
            });
        }
    }
    let wanted = rest.strip_prefix('=').ok_or_else(bad)?.trim();
    let options: Vec<&str> = match wanted.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
        Some(list) => list.split(',').map(str::trim).collect(),
        None => vec![wanted],
    };
    let options: Vec<String> = options.iter().map(|o| o.trim_matches('`').to_owned()).collect();
    Ok(match value {
        Value::String(s) => options.iter().any(|o| o == s),
        Value::Bool(b) => options.iter().any(|o| o == &b.to_string()),
        Value::Number(n) => options.iter().any(|o| o == &n.to_string()),
        _ => false,
    })
}

fn filter_matches(doc: &Value, filter: Option<&String>) -> Result<bool, Response> {
    let Some(filter) = filter.filter(|f| !f.trim().is_empty()) else { return Ok(true) };
    for clause in filter.split("&&") {
        if !clause_matches(doc, clause)? {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn update_by_filter(
    State(inner): State<Arc<Inner>>,
    Path(c): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Answer {
    check(&inner, &method, &uri, &headers, &body)?;
    let patch = parse_json(&body)?;
    let filter = params
        .get("filter_by")
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "Parameter `filter_by` must be provided."))?;
    let mut collections = inner.collections.lock();
    let col = collections.get_mut(&c).ok_or_else(|| error(StatusCode::NOT_FOUND, "Not found."))?;
    let mut matched = Vec::new();
    for (id, doc) in &col.docs {
        if filter_matches(doc, Some(filter))? {
            matched.push(id.clone());
        }
    }
    for id in &matched {
        let mut merged = col.docs[id].clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            merged[k] = v.clone();
        }
        validate(col, &merged)?;
        col.docs.insert(id.clone(), merged);
    }
    Ok(Json(json!({"num_updated": matched.len()})).into_response())
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Edit distance with adjacent transpositions (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn field_words(doc: &Value, field: &str) -> Vec<String> {
    match &doc[field] {
        Value::String(s) => words(s),
        Value::Array(items) => items.iter().filter_map(Value::as_str).flat_map(words).collect(),
        _ => Vec::new(),
    }
}

async fn search(
    State(inner): State<Arc<Inner>>,
    Path(c): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Answer {
    check(&inner, &method, &uri, &headers, "")?;
    let q = params
        .get("q")
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "Parameter `q` is required."))?;
    let query_by: Vec<&str> =
        params.get("query_by").map(|s| s.split(',').map(str::trim).collect()).unwrap_or_default();
    if q != "*" && query_by.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "Parameter `query_by` is required."));
    }
    let num = |name: &str, default: usize| {
        params.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let per_page = num("per_page", 10);
    if per_page > 250 {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Only upto 250 hits can be fetched per page.",
        ));
    }
    let page = num("page", 1).max(1);
    let num_typos = num("num_typos", 2);
    let (one, two) = (num("min_len_1typo", 4), num("min_len_2typo", 7));
    let prefix = params.get("prefix").is_none_or(|p| p == "true");
    let collections = inner.collections.lock();
    let col = collections.get(&c).ok_or_else(|| error(StatusCode::NOT_FOUND, "Not found."))?;
    let query_words = if q == "*" { Vec::new() } else { words(q) };
    let mut hits: Vec<(i64, &Value)> = Vec::new();
    for doc in col.docs.values() {
        if !filter_matches(doc, params.get("filter_by"))? {
            continue;
        }
        let mut score = 0;
        let mut all = true;
        for (i, qw) in query_words.iter().enumerate() {
            let len = qw.chars().count();
            let allowed = num_typos.min(if len >= two {
                2
            } else if len >= one {
                1
            } else {
                0
            });
            let last = i + 1 == query_words.len();
            let mut best = None;
            for field in &query_by {
                for w in field_words(doc, field) {
                    if &w == qw {
                        best = Some(2);
                    } else if best.is_none()
                        && (distance(qw, &w) <= allowed
                            || (last && prefix && w.starts_with(qw.as_str())))
                    {
                        best = Some(1);
                    }
                }
            }
            match best {
                Some(s) => score += s,
                None => all = false,
            }
        }
        if all {
            hits.push((score, doc));
        }
    }
    let sort_by: Vec<(String, bool)> = params
        .get("sort_by")
        .map(|s| {
            s.split(',')
                .filter_map(|p| p.trim().split_once(':').map(|(f, d)| (f.to_owned(), d == "desc")))
                .collect()
        })
        .unwrap_or_else(|| vec![("_text_match".to_owned(), true)]);
    hits.sort_by(|a, b| {
        for (field, desc) in &sort_by {
            let (x, y) = if field == "_text_match" {
                (a.0, b.0)
            } else {
                (
                    a.1[field.as_str()].as_i64().unwrap_or(0),
                    b.1[field.as_str()].as_i64().unwrap_or(0),
                )
            };
            let o = if *desc { y.cmp(&x) } else { x.cmp(&y) };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let facet_counts: Vec<Value> = params
        .get("facet_by")
        .map(|f| f.split(',').map(str::trim).filter(|f| !f.is_empty()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|field| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for (_, doc) in &hits {
                if let Some(v) = doc[field].as_str() {
                    *counts.entry(v.to_owned()).or_default() += 1;
                }
            }
            let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            json!({"field_name": field, "counts": counts.iter().map(|(v, c)| json!({"value": v, "count": c})).collect::<Vec<_>>()})
        })
        .collect();
    let found = hits.len();
    let page_hits: Vec<Value> = hits
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(score, doc)| json!({"document": doc, "text_match": score}))
        .collect();
    Ok(Json(json!({
        "found": found,
        "out_of": col.docs.len(),
        "page": page,
        "hits": page_hits,
        "facet_counts": facet_counts,
        "search_time_ms": 0,
    }))
    .into_response())
}
