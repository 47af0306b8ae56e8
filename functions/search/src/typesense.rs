//! The Typesense tier: the same [`Engine`] over Typesense's HTTP API (collections, documents,
//! search), for catalogues past what one instance holds in memory.
//!
//! Collections `products` and `vendors` (created on first sync; an existing one is used as
//! is). Every write is guarded by the document's version (its Firestore update time in
//! microseconds), because every instance of the function syncs and they may write at once:
//! `PATCH /documents?filter_by=id:=[`id`] && version:<v` (update only an older version), and if
//! nothing was updated, `POST /documents?action=create` (a 409 means a version is there: kept
//! if it is not older, otherwise the update is tried again). A removal writes a tombstone
//! (`deleted: true` with its version) the same way, so a late older upsert cannot bring the
//! product back; searches filter `deleted:=false`.
//!
//! Search: `query_by` title, tags, vendor name, description (weights 3, 2, 2, 1), typo
//! allowance as `domain::search` (`num_typos=2`, `min_len_1typo=4`, `min_len_2typo=8`), the
//! last word as a prefix, the filters as `filter_by`, facets on category and vendor id. Paging
//! is by page number (Typesense's model): the cursor carries the next page, stable while the
//! collection does not change (the embedded tier's keyset cursor is stable across changes).
//! Suggestions: vendors by name or handle prefix ranked by follower count, then product
//! titles by text match (popularity 0: products carry no follower count here).

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use domain::search::{Cursor, ProductQuery, Sort, SuggestQuery};
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::engine::{
    Change, Engine, FacetCount, Facets, Found, Hit, IndexedProduct, IndexedVendor, Suggestion,
    SuggestionKind,
};

const PRODUCTS: &str = "products";
const VENDORS: &str = "vendors";
/// The cursor id that marks a page-number cursor.
const PAGE: &str = "page";

/// A Typesense cluster.
#[derive(Clone)]
pub struct Typesense {
    base: String,
    api_key: SecretString,
    http: reqwest::Client,
}

impl std::fmt::Debug for Typesense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typesense").field("base", &self.base).finish_non_exhaustive()
    }
}

fn product_schema() -> Value {
    json!({
        "name": PRODUCTS,
        "fields": [
            {"name": "title", "type": "string"},
            {"name": "description", "type": "string"},
            {"name": "tags", "type": "string[]"},
            {"name": "category", "type": "string", "facet": true},
            {"name": "vendor_id", "type": "string", "facet": true},
            {"name": "vendor_name", "type": "string"},
            {"name": "price_minor", "type": "int64"},
            {"name": "currency", "type": "string"},
            {"name": "in_stock", "type": "bool"},
            {"name": "image", "type": "string", "optional": true},
            {"name": "version", "type": "int64"},
            {"name": "deleted", "type": "bool"}
        ]
    })
}

fn vendor_schema() -> Value {
    json!({
        "name": VENDORS,
        "fields": [
            {"name": "name", "type": "string"},
            {"name": "handle", "type": "string"},
            {"name": "follower_count", "type": "int64"},
            {"name": "version", "type": "int64"},
            {"name": "deleted", "type": "bool"}
        ]
    })
}

fn product_doc(p: &IndexedProduct) -> Value {
    json!({
        "id": p.id, "title": p.title, "description": p.description, "tags": p.tags,
        "category": p.category, "vendor_id": p.vendor_id, "vendor_name": p.vendor_name,
        "price_minor": p.price_minor, "currency": p.currency, "in_stock": p.in_stock,
        "image": p.image, "version": p.version, "deleted": false,
    })
}

fn vendor_doc(v: &IndexedVendor) -> Value {
    json!({
        "id": v.id, "name": v.name, "handle": v.handle, "follower_count": v.follower_count,
        "version": v.version, "deleted": false,
    })
}

fn product_tombstone(id: &str, version: i64) -> Value {
    json!({
        "id": id, "title": "", "description": "", "tags": [], "category": "", "vendor_id": "",
        "vendor_name": "", "price_minor": 0, "currency": "", "in_stock": false,
        "version": version, "deleted": true,
    })
}

fn vendor_tombstone(id: &str, version: i64) -> Value {
    json!({"id": id, "name": "", "handle": "", "follower_count": 0, "version": version, "deleted": true})
}

/// A string value in a `filter_by`, backquoted.
fn quoted(value: &str) -> String {
    format!("`{}`", value.replace('`', ""))
}

/// The `filter_by` of a query.
pub fn filter_by(query: &ProductQuery) -> String {
    let f = &query.filters;
    let mut clauses = vec!["deleted:=false".to_owned()];
    if let Some(c) = &f.category {
        clauses.push(format!("category:=[{}]", quoted(c)));
    }
    if let Some(v) = &f.vendor_id {
        clauses.push(format!("vendor_id:=[{}]", quoted(v)));
    }
    if let Some(p) = f.min_price {
        clauses.push(format!("price_minor:>={p}"));
    }
    if let Some(p) = f.max_price {
        clauses.push(format!("price_minor:<={p}"));
    }
    if f.in_stock_only {
        clauses.push("in_stock:=true".to_owned());
    }
    clauses.join(" && ")
}

fn sort_by(query: &ProductQuery) -> &'static str {
    match query.sort {
        Sort::Relevance if !query.words.is_empty() => "_text_match:desc,price_minor:asc",
        Sort::Relevance | Sort::PriceAsc => "price_minor:asc",
        Sort::PriceDesc => "price_minor:desc",
    }
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_default().to_owned()
}

impl Typesense {
    /// A client of the cluster at `base` (e.g. `https://search.example.com`).
    pub fn new(base: &str, api_key: SecretString) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), api_key, http })
    }

    /// One request; the JSON answer, or `Err((status, Typesense's message))`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Result<Value, (StatusCode, String)>> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-TYPESENSE-API-KEY", self.api_key.expose_secret())
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.context("Typesense unreachable")?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(Ok(answer))
        } else {
            Ok(Err((status, text(&answer, "message"))))
        }
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.call(method, path, query, body)
            .await?
            .map_err(|(status, message)| anyhow!("Typesense answered {status}: {message}"))
    }

    /// Creates both collections unless they exist.
    pub async fn ensure_collections(&self) -> anyhow::Result<()> {
        for schema in [product_schema(), vendor_schema()] {
            match self.call(Method::POST, "/collections", &[], Some(&schema)).await? {
                Ok(_) => {}
                Err((StatusCode::CONFLICT, _)) => {}
                Err((status, message)) => bail!("Typesense answered {status}: {message}"),
            }
        }
        Ok(())
    }

    /// Writes `doc` unless the collection holds a version at least as new; whether it wrote.
    pub async fn guarded_write(&self, collection: &str, doc: &Value) -> anyhow::Result<bool> {
        let id = doc["id"].as_str().context("a document without id")?;
        let version = doc["version"].as_i64().context("a document without version")?;
        let path = format!("/collections/{collection}/documents");
        for _ in 0..3 {
            let filter = format!("id:=[{}] && version:<{version}", quoted(id));
            let updated =
                self.expect(Method::PATCH, &path, &[("filter_by", filter)], Some(doc)).await?;
            if updated["num_updated"].as_u64().unwrap_or(0) > 0 {
                return Ok(true);
            }
            match self
                .call(Method::POST, &path, &[("action", "create".to_owned())], Some(doc))
                .await?
            {
                Ok(_) => return Ok(true),
                Err((StatusCode::CONFLICT, _)) => {
                    let held = self.expect(Method::GET, &format!("{path}/{id}"), &[], None).await?;
                    if held["version"].as_i64().unwrap_or(i64::MAX) >= version {
                        return Ok(false);
                    }
                }
                Err((status, message)) => bail!("Typesense answered {status}: {message}"),
            }
        }
        bail!("Typesense: {collection}/{id} kept changing under the write")
    }

    async fn write(&self, change: &Change) -> anyhow::Result<bool> {
        match change {
            Change::Product(p) => self.guarded_write(PRODUCTS, &product_doc(p)).await,
            Change::RemoveProduct { id, version } => {
                self.guarded_write(PRODUCTS, &product_tombstone(id, *version)).await
            }
            Change::Vendor(v) => self.guarded_write(VENDORS, &vendor_doc(v)).await,
            Change::RemoveVendor { id, version } => {
                self.guarded_write(VENDORS, &vendor_tombstone(id, *version)).await
            }
        }
    }

    async fn search_products(&self, query: &ProductQuery) -> anyhow::Result<Found> {
        let page = match &query.after {
            Some(c) if c.id == PAGE => c.key.max(1),
            Some(_) => bail!("a cursor of the embedded tier"),
            None => 1,
        };
        let q = if query.words.is_empty() { "*".to_owned() } else { query.words.join(" ") };
        let params = [
            ("q", q),
            ("query_by", "title,tags,vendor_name,description".to_owned()),
            ("query_by_weights", "3,2,2,1".to_owned()),
            ("num_typos", "2".to_owned()),
            ("min_len_1typo", domain::search::MIN_LEN_ONE_TYPO.to_string()),
            ("min_len_2typo", domain::search::MIN_LEN_TWO_TYPOS.to_string()),
            ("prefix", "true".to_owned()),
            ("filter_by", filter_by(query)),
            ("sort_by", sort_by(query).to_owned()),
            ("facet_by", "category,vendor_id".to_owned()),
            ("max_facet_values", "100".to_owned()),
            ("per_page", query.limit.to_string()),
            ("page", page.to_string()),
        ];
        let answer = self
            .expect(
                Method::GET,
                &format!("/collections/{PRODUCTS}/documents/search"),
                &params,
                None,
            )
            .await?;
        let total = answer["found"].as_u64().unwrap_or(0);
        let hits: Vec<Hit> = answer["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                let d = &h["document"];
                Hit {
                    id: text(d, "id"),
                    title: text(d, "title"),
                    vendor_id: text(d, "vendor_id"),
                    vendor_name: text(d, "vendor_name"),
                    category: text(d, "category"),
                    price_minor: d["price_minor"].as_i64().unwrap_or(0),
                    currency: text(d, "currency"),
                    in_stock: d["in_stock"].as_bool().unwrap_or(false),
                    image: d["image"].as_str().map(str::to_owned),
                }
            })
            .collect();
        let mut facets = Facets::default();
        for facet in answer["facet_counts"].as_array().into_iter().flatten() {
            let counts = facet["counts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| FacetCount {
                    value: text(c, "value"),
                    count: c["count"].as_u64().unwrap_or(0),
                })
                .collect();
            match facet["field_name"].as_str() {
                Some("category") => facets.category = counts,
                Some("vendor_id") => facets.vendor = counts,
                _ => {}
            }
        }
        let seen = (page as u64 - 1) * u64::from(query.limit) + hits.len() as u64;
        let next_cursor = (seen < total)
            .then(|| Cursor { key: page + 1, id: PAGE.to_owned() }.encode(query.sort));
        Ok(Found { hits, total, facets, next_cursor })
    }

    async fn suggestions(&self, query: &SuggestQuery) -> anyhow::Result<Vec<Suggestion>> {
        let common = |query_by: &str, sort: Option<&str>| {
            let mut p = vec![
                ("q", query.prefix.clone()),
                ("query_by", query_by.to_owned()),
                ("prefix", "true".to_owned()),
                ("num_typos", "0".to_owned()),
                ("filter_by", "deleted:=false".to_owned()),
                ("per_page", query.limit.to_string()),
            ];
            if let Some(sort) = sort {
                p.push(("sort_by", sort.to_owned()));
            }
            p
        };
        let vendors = self
            .expect(
                Method::GET,
                &format!("/collections/{VENDORS}/documents/search"),
                &common("name,handle", Some("follower_count:desc")),
                None,
            )
            .await?;
        let products = self
            .expect(
                Method::GET,
                &format!("/collections/{PRODUCTS}/documents/search"),
                &common("title", None),
                None,
            )
            .await?;
        let mut out: Vec<Suggestion> = Vec::new();
        for h in vendors["hits"].as_array().into_iter().flatten() {
            let d = &h["document"];
            out.push(Suggestion {
                text: text(d, "name"),
                kind: SuggestionKind::Vendor,
                id: text(d, "id"),
                popularity: d["follower_count"].as_i64().unwrap_or(0),
            });
        }
        for h in products["hits"].as_array().into_iter().flatten() {
            let d = &h["document"];
            out.push(Suggestion {
                text: text(d, "title"),
                kind: SuggestionKind::Product,
                id: text(d, "id"),
                popularity: 0,
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.popularity));
        out.truncate(query.limit as usize);
        Ok(out)
    }
}

impl Engine for Typesense {
    fn replace_all(
        &self,
        products: Vec<IndexedProduct>,
        vendors: Vec<IndexedVendor>,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            self.ensure_collections().await?;
            let changes: Vec<Change> = vendors
                .into_iter()
                .map(Change::Vendor)
                .chain(products.into_iter().map(Change::Product))
                .collect();
            let results: Vec<anyhow::Result<bool>> = futures::stream::iter(changes)
                .map(|change| {
                    let this = self.clone();
                    async move { this.write(&change).await }
                })
                .buffer_unordered(16)
                .collect()
                .await;
            results.into_iter().collect::<anyhow::Result<Vec<_>>>().map(drop)
        }
        .boxed()
    }

    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            // In order: a later change of the same document must land last.
            for change in &changes {
                self.write(change).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn search<'a>(&'a self, query: &'a ProductQuery) -> BoxFuture<'a, anyhow::Result<Found>> {
        self.search_products(query).boxed()
    }

    fn suggest<'a>(
        &'a self,
        query: &'a SuggestQuery,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Suggestion>>> {
        self.suggestions(query).boxed()
    }
}
