//! The one interface both search tiers implement ([`Engine`]): the embedded tantivy replica
//! (`embedded.rs`, the default and the behavioural reference) and Typesense (`typesense.rs`).
//!
//! The sync loop (`sync.rs`) decides what is searchable and in which order changes win; an
//! engine only indexes what it is given and answers queries.

use std::fmt;

use domain::search::{ProductQuery, SuggestQuery};
use futures::future::BoxFuture;
use serde::Serialize;

/// A searchable (active) product as the engines index it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedProduct {
    pub id: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub category: String,
    pub vendor_id: String,
    pub vendor_name: String,
    pub price_minor: i64,
    pub currency: String,
    pub in_stock: bool,
    /// The cover image.
    pub image: Option<String>,
    /// The document's update time, microseconds since the epoch (the version).
    pub version: i64,
}

impl IndexedProduct {
    /// The facts filters and facets look at.
    pub fn facts(&self) -> domain::search::Facts<'_> {
        domain::search::Facts {
            category: &self.category,
            vendor_id: &self.vendor_id,
            price_minor: self.price_minor,
            in_stock: self.in_stock,
        }
    }
}

/// A vendor as autocomplete knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedVendor {
    pub id: String,
    pub name: String,
    pub handle: String,
    /// Popularity: the vendor's follower count.
    pub follower_count: i64,
    /// The document's update time, microseconds since the epoch.
    pub version: i64,
}

/// One change to apply, already ordered by the sync loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Product(IndexedProduct),
    /// No longer searchable (deleted, archived, back to draft, unreadable) as of `version`.
    RemoveProduct {
        id: String,
        version: i64,
    },
    Vendor(IndexedVendor),
    RemoveVendor {
        id: String,
        version: i64,
    },
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub vendor_id: String,
    pub vendor_name: String,
    pub category: String,
    pub price_minor: i64,
    pub currency: String,
    pub in_stock: bool,
    pub image: Option<String>,
}

impl From<&IndexedProduct> for Hit {
    fn from(p: &IndexedProduct) -> Self {
        Self {
            id: p.id.clone(),
            title: p.title.clone(),
            vendor_id: p.vendor_id.clone(),
            vendor_name: p.vendor_name.clone(),
            category: p.category.clone(),
            price_minor: p.price_minor,
            currency: p.currency.clone(),
            in_stock: p.in_stock,
            image: p.image.clone(),
        }
    }
}

/// How many matching products have one value of a facet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Exact counts over every match (all pages), by category and by vendor id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    pub category: Vec<FacetCount>,
    pub vendor: Vec<FacetCount>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    pub hits: Vec<Hit>,
    /// Matches in all pages.
    pub total: u64,
    pub facets: Facets,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What a suggestion completes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    Product,
    Vendor,
}

/// One autocomplete suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    /// The title or vendor name, as written.
    pub text: String,
    pub kind: SuggestionKind,
    pub id: String,
    /// The vendor's follower count (a product's is its vendor's).
    pub popularity: i64,
}

/// A search tier.
pub trait Engine: Send + Sync + fmt::Debug + 'static {
    /// Replaces everything with a fresh snapshot.
    fn replace_all(
        &self,
        products: Vec<IndexedProduct>,
        vendors: Vec<IndexedVendor>,
    ) -> BoxFuture<'_, anyhow::Result<()>>;

    /// Applies ordered changes; searchable when this returns.
    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, anyhow::Result<()>>;

    /// One page of `query`.
    fn search<'a>(&'a self, query: &'a ProductQuery) -> BoxFuture<'a, anyhow::Result<Found>>;

    /// Completions of `query`, most popular first.
    fn suggest<'a>(
        &'a self,
        query: &'a SuggestQuery,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Suggestion>>>;
}

/// Sorted facet counts: most frequent first, then by value.
pub(crate) fn facet_counts(counts: std::collections::HashMap<&str, u64>) -> Vec<FacetCount> {
    let mut out: Vec<FacetCount> = counts
        .into_iter()
        .map(|(value, count)| FacetCount { value: value.to_owned(), count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out
}
