//! Identical `searchProducts` queries within the TTL are answered from memory, per instance.
//!
//! Invalidation is by what a change touches: a product change drops every cached query whose
//! filters admit the product's old or new facts (category, vendor, price, stock). That covers
//! every query the product was a match of (a match passed the filters with its old facts) and
//! every query it may now match, whatever the text (the text is not re-evaluated: a query is
//! dropped if its filters alone admit the product, which errs towards dropping). A snapshot
//! reload drops everything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::search::{Facts, ProductQuery};
use parking_lot::Mutex;

use crate::engine::{Found, IndexedProduct};

/// Entries kept at most (beyond it, expired entries go first, then everything).
const MAX_ENTRIES: usize = 10_000;

/// The filter-relevant facts of an indexed product, kept to invalidate by its old version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFacts {
    pub category: String,
    pub vendor_id: String,
    pub price_minor: i64,
    pub in_stock: bool,
}

impl OwnedFacts {
    pub fn of(product: &IndexedProduct) -> Self {
        Self {
            category: product.category.clone(),
            vendor_id: product.vendor_id.clone(),
            price_minor: product.price_minor,
            in_stock: product.in_stock,
        }
    }

    fn facts(&self) -> Facts<'_> {
        Facts {
            category: &self.category,
            vendor_id: &self.vendor_id,
            price_minor: self.price_minor,
            in_stock: self.in_stock,
        }
    }
}

/// Cached answers by query, with when they were computed.
type Entries = HashMap<ProductQuery, (Instant, Arc<Found>)>;

/// The cache; cheap to clone.
#[derive(Debug, Clone)]
pub struct QueryCache {
    ttl: Duration,
    entries: Arc<Mutex<Entries>>,
}

impl QueryCache {
    /// A cache keeping answers for `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Arc::default() }
    }

    /// The cached answer to `query`, if fresh.
    pub fn get(&self, query: &ProductQuery, now: Instant) -> Option<Arc<Found>> {
        let entries = self.entries.lock();
        let (at, found) = entries.get(query)?;
        (now.duration_since(*at) < self.ttl).then(|| found.clone())
    }

    /// Keeps `found` as the answer to `query` from `now`.
    pub fn put(&self, query: ProductQuery, found: Arc<Found>, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(query, (now, found));
    }

    /// Drops the answers a product change touches (its facts before and after; `None` when it
    /// was or is not searchable).
    pub fn invalidate(&self, old: Option<&OwnedFacts>, new: Option<&OwnedFacts>) {
        if old.is_none() && new.is_none() {
            return;
        }
        self.entries.lock().retain(|query, _| {
            let touches =
                |f: Option<&OwnedFacts>| f.is_some_and(|f| query.filters.admits(&f.facts()));
            !touches(old) && !touches(new)
        });
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.entries.lock().clear();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Facets;
    use domain::search::SearchInput;

    fn query(category: Option<&str>) -> ProductQuery {
        SearchInput { category: category.map(Into::into), ..Default::default() }.validate().unwrap()
    }

    fn found() -> Arc<Found> {
        Arc::new(Found { hits: vec![], total: 0, facets: Facets::default(), next_cursor: None })
    }

    fn facts(category: &str) -> OwnedFacts {
        OwnedFacts {
            category: category.into(),
            vendor_id: "v".into(),
            price_minor: 1,
            in_stock: true,
        }
    }

    #[test]
    fn answers_within_the_ttl_only() {
        let cache = QueryCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        cache.put(query(None), found(), t0);
        assert!(cache.get(&query(None), t0 + Duration::from_secs(9)).is_some());
        assert!(cache.get(&query(None), t0 + Duration::from_secs(10)).is_none());
        assert!(cache.get(&query(Some("hats")), t0).is_none(), "another query");
    }

    #[test]
    fn a_change_drops_only_the_queries_it_touches() {
        let cache = QueryCache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for c in [None, Some("hats"), Some("shoes"), Some("bags")] {
            cache.put(query(c), found(), t0);
        }
        // A product moves from hats to shoes: the unfiltered query, hats and shoes go.
        cache.invalidate(Some(&facts("hats")), Some(&facts("shoes")));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&query(Some("bags")), t0).is_some());
    }
}
