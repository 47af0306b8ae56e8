//! The embedded tier: a `tantivy` index in memory for the text match, beside a map of the indexed
//! products for exact filters, facets, sorting and paging, and a sorted set of title and vendor
//! name prefixes for autocomplete.
//!
//! Text: every query word must match some field (title, tags, vendor name, description, in
//! decreasing weight), exactly (BM25) or within its typo budget (`domain::search::typo_budget`,
//! transpositions counting as one edit); the last word also matches as a prefix. The match set
//! is then filtered, counted for the facets and ordered in Rust over the map, so facet counts
//! are exact over every match.
//!
//! Writes hold the map's write lock across the tantivy commit and reader reload, so a search
//! never sees the map and the index disagree.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use anyhow::Context as _;
use domain::search::{Cursor, ProductQuery, SuggestQuery, typo_budget};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TEXT};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::engine::{
    Change, Engine, Facets, Found, Hit, IndexedProduct, IndexedVendor, Suggestion, SuggestionKind,
    facet_counts,
};

/// Indexing memory of the writer (tantivy's minimum is 15 MB).
const WRITER_BYTES: usize = 32_000_000;

/// Field weights.
const WEIGHTS: [(&str, f32); 4] =
    [("title", 3.0), ("tags", 2.0), ("vendor", 1.5), ("description", 1.0)];

#[derive(Debug, Clone, Copy)]
struct Fields {
    key: Field,
    id: Field,
    text: [Field; 4],
}

struct Stored {
    key: u64,
    product: IndexedProduct,
}

#[derive(Default)]
struct Data {
    products: HashMap<String, Stored>,
    by_key: HashMap<u64, String>,
    next_key: u64,
    vendors: HashMap<String, IndexedVendor>,
    /// (normalised text, kind, id): title and vendor-name completions, one per word start.
    suggest: BTreeSet<(String, u8, String)>,
}

struct Replica {
    fields: Fields,
    index: Index,
    /// Made on the first change: the writer starts tantivy's indexing and merge threads, which
    /// an instance with nothing to index (yet) need not carry.
    writer: Mutex<Option<IndexWriter>>,
    reader: IndexReader,
    data: RwLock<Data>,
}

/// The embedded tier.
#[derive(Clone)]
pub struct Embedded {
    /// Made on first use (the snapshot's `replace_all`, or a query before it): an instance that
    /// has not loaded the catalogue yet carries no index.
    current: Arc<RwLock<Option<Arc<Replica>>>>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let replica = self.current.read().clone();
        let (products, vendors) = replica.map_or((0, 0), |replica| {
            let data = replica.data.read();
            (data.products.len(), data.vendors.len())
        });
        f.debug_struct("Embedded").field("products", &products).field("vendors", &vendors).finish()
    }
}

const PRODUCT: u8 = 0;
const VENDOR: u8 = 1;

impl Replica {
    fn new() -> anyhow::Result<Self> {
        let mut schema = Schema::builder();
        let key = schema.add_u64_field("key", FAST | INDEXED);
        let id = schema.add_text_field("id", STRING);
        let text = WEIGHTS.map(|(name, _)| schema.add_text_field(name, TEXT));
        let index = Index::create_in_ram(schema.build());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("reader")?;
        Ok(Self {
            fields: Fields { key, id, text },
            index,
            writer: Mutex::new(None),
            reader,
            data: RwLock::new(Data::default()),
        })
    }

    fn apply(&self, changes: Vec<Change>) -> anyhow::Result<()> {
        let mut data = self.data.write();
        let mut writer = self.writer.lock();
        let writer = match &mut *writer {
            Some(writer) => writer,
            None => writer.insert(
                self.index.writer_with_num_threads(1, WRITER_BYTES).context("index writer")?,
            ),
        };
        for change in changes {
            match change {
                Change::Product(product) => {
                    self.remove_product(&mut data, writer, &product.id);
                    data.next_key += 1;
                    let key = data.next_key;
                    let f = self.fields;
                    let mut doc = TantivyDocument::new();
                    doc.add_u64(f.key, key);
                    doc.add_text(f.id, &product.id);
                    doc.add_text(f.text[0], &product.title);
                    doc.add_text(f.text[1], product.tags.join(" "));
                    doc.add_text(f.text[2], &product.vendor_name);
                    doc.add_text(f.text[3], &product.description);
                    writer.add_document(doc)?;
                    for entry in completions(&product.title) {
                        data.suggest.insert((entry, PRODUCT, product.id.clone()));
                    }
                    data.by_key.insert(key, product.id.clone());
                    data.products.insert(product.id.clone(), Stored { key, product });
                }
                Change::RemoveProduct { id, .. } => self.remove_product(&mut data, writer, &id),
                Change::Vendor(vendor) => {
                    remove_vendor(&mut data, &vendor.id);
                    for entry in
                        completions(&vendor.name).into_iter().chain(completions(&vendor.handle))
                    {
                        data.suggest.insert((entry, VENDOR, vendor.id.clone()));
                    }
                    data.vendors.insert(vendor.id.clone(), vendor);
                }
                Change::RemoveVendor { id, .. } => remove_vendor(&mut data, &id),
            }
        }
        writer.commit().context("commit")?;
        self.reader.reload().context("reload")?;
        Ok(())
    }

    fn remove_product(&self, data: &mut Data, writer: &IndexWriter, id: &str) {
        if let Some(old) = data.products.remove(id) {
            data.by_key.remove(&old.key);
            for entry in completions(&old.product.title) {
                data.suggest.remove(&(entry, PRODUCT, id.to_owned()));
            }
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
    }

    fn text_query(&self, words: &[String]) -> Box<dyn Query> {
        if words.is_empty() {
            return Box::new(AllQuery);
        }
        let last = words.len() - 1;
        let clauses = words
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let budget = typo_budget(word);
                let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                for (field, (_, weight)) in self.fields.text.iter().zip(WEIGHTS) {
                    let term = Term::from_field_text(*field, word);
                    let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                    alternatives.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(exact), weight * 2.0)),
                    ));
                    let fuzzy = if i == last {
                        FuzzyTermQuery::new_prefix(term, budget, true)
                    } else {
                        FuzzyTermQuery::new(term, budget, true)
                    };
                    if budget > 0 || i == last {
                        alternatives.push((
                            Occur::Should,
                            Box::new(BoostQuery::new(Box::new(fuzzy), weight)),
                        ));
                    }
                }
                (Occur::Must, Box::new(BooleanQuery::new(alternatives)) as Box<dyn Query>)
            })
            .collect();
        Box::new(BooleanQuery::new(clauses))
    }

    fn search(&self, query: &ProductQuery) -> anyhow::Result<Found> {
        let data = self.data.read();
        let searcher = self.reader.searcher();
        let all = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX).max(1);
        let scored = searcher
            .search(
                self.text_query(&query.words).as_ref(),
                &TopDocs::with_limit(all).order_by_score(),
            )
            .context("search")?;
        let columns = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.fast_fields().u64("key"))
            .collect::<Result<Vec<_>, _>>()
            .context("key column")?;
        let has_text = !query.words.is_empty();
        let mut categories: HashMap<&str, u64> = HashMap::new();
        let mut vendors: HashMap<&str, u64> = HashMap::new();
        let mut matches: Vec<(Cursor, &IndexedProduct)> = Vec::new();
        for (score, address) in scored {
            let Some(key) = columns
                .get(address.segment_ord as usize)
                .and_then(|column| column.first(address.doc_id))
            else {
                continue;
            };
            let Some(stored) = data.by_key.get(&key).and_then(|id| data.products.get(id)) else {
                continue;
            };
            let product = &stored.product;
            if !query.filters.admits(&product.facts()) {
                continue;
            }
            *categories.entry(&product.category).or_default() += 1;
            *vendors.entry(&product.vendor_id).or_default() += 1;
            let position =
                Cursor::of(query.sort, product.price_minor, score, has_text, &product.id);
            matches.push((position, product));
        }
        matches.sort_by(|a, b| a.0.cmp_position(&b.0));
        let total = matches.len() as u64;
        let start = match &query.after {
            Some(after) => matches.partition_point(|(p, _)| p.cmp_position(after).is_le()),
            None => 0,
        };
        let limit = query.limit as usize;
        let page = &matches[start..matches.len().min(start + limit)];
        let next_cursor = (start + limit < matches.len())
            .then(|| page.last().map(|(p, _)| p.encode(query.sort)))
            .flatten();
        Ok(Found {
            hits: page.iter().map(|(_, p)| Hit::from(*p)).collect(),
            total,
            facets: Facets { category: facet_counts(categories), vendor: facet_counts(vendors) },
            next_cursor,
        })
    }

    fn suggest(&self, query: &SuggestQuery) -> Vec<Suggestion> {
        let data = self.data.read();
        let from = (query.prefix.clone(), 0, String::new());
        // Borrowed candidates first (a short prefix matches thousands of word starts); only
        // the few suggestions answered are copied.
        let mut candidates: Vec<(i64, &str, SuggestionKind, &str)> = Vec::new();
        for (text, kind, id) in data.suggest.range((Bound::Included(from), Bound::Unbounded)) {
            if !text.starts_with(&query.prefix) {
                break;
            }
            if *kind == PRODUCT {
                let Some(stored) = data.products.get(id) else { continue };
                let popularity =
                    data.vendors.get(&stored.product.vendor_id).map_or(0, |v| v.follower_count);
                candidates.push((popularity, &stored.product.title, SuggestionKind::Product, id));
            } else {
                let Some(vendor) = data.vendors.get(id) else { continue };
                candidates.push((vendor.follower_count, &vendor.name, SuggestionKind::Vendor, id));
            }
        }
        candidates.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let mut seen = std::collections::HashSet::new();
        let mut found = Vec::new();
        for (popularity, text, kind, id) in candidates {
            if found.len() == query.limit as usize {
                break;
            }
            if seen.insert((kind, text.to_lowercase())) {
                found.push(Suggestion {
                    text: text.to_owned(),
                    kind,
                    id: id.to_owned(),
                    popularity,
                });
            }
        }
        found
    }
}

fn remove_vendor(data: &mut Data, id: &str) {
    if let Some(old) = data.vendors.remove(id) {
        for entry in completions(&old.name).into_iter().chain(completions(&old.handle)) {
            data.suggest.remove(&(entry, VENDOR, id.to_owned()));
        }
    }
}

/// The normalised text from each word start on ("red running shoes", "running shoes", "shoes").
fn completions(text: &str) -> Vec<String> {
    let words = domain::search::words(text);
    (0..words.len()).map(|i| words[i..].join(" ")).collect()
}

impl Embedded {
    /// An empty replica.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self { current: Arc::new(RwLock::new(None)) })
    }

    fn replica(&self) -> anyhow::Result<Arc<Replica>> {
        if let Some(replica) = self.current.read().as_ref() {
            return Ok(replica.clone());
        }
        let mut current = self.current.write();
        match current.as_ref() {
            Some(replica) => Ok(replica.clone()),
            None => Ok(current.insert(Arc::new(Replica::new()?)).clone()),
        }
    }
}

impl Engine for Embedded {
    fn replace_all(
        &self,
        products: Vec<IndexedProduct>,
        vendors: Vec<IndexedVendor>,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let current = self.current.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let fresh = Replica::new()?;
                let changes = vendors
                    .into_iter()
                    .map(Change::Vendor)
                    .chain(products.into_iter().map(Change::Product))
                    .collect();
                fresh.apply(changes)?;
                *current.write() = Some(Arc::new(fresh));
                Ok(())
            })
            .await?
        }
        .boxed()
    }

    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            let replica = self.replica()?;
            tokio::task::spawn_blocking(move || replica.apply(changes)).await?
        }
        .boxed()
    }

    fn search<'a>(&'a self, query: &'a ProductQuery) -> BoxFuture<'a, anyhow::Result<Found>> {
        let query = query.clone();
        async move {
            let replica = self.replica()?;
            tokio::task::spawn_blocking(move || replica.search(&query)).await?
        }
        .boxed()
    }

    fn suggest<'a>(
        &'a self,
        query: &'a SuggestQuery,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Suggestion>>> {
        let suggestions = self.replica().map(|replica| replica.suggest(query));
        async move { suggestions }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::search::{SearchInput, Sort, SuggestInput};

    pub(crate) fn product(id: &str, title: &str, category: &str, price: i64) -> IndexedProduct {
        IndexedProduct {
            id: id.into(),
            title: title.into(),
            description: String::new(),
            tags: vec![],
            category: category.into(),
            vendor_id: "v1".into(),
            vendor_name: "Vera".into(),
            price_minor: price,
            currency: "usd".into(),
            in_stock: true,
            image: None,
            version: 1,
        }
    }

    async fn engine() -> Embedded {
        let e = Embedded::new().unwrap();
        e.replace_all(
            vec![
                product("p1", "Red running shoes", "footwear", 5_000),
                product("p2", "Blue shoes", "footwear", 3_000),
                product("p3", "Sun hat", "hats", 2_000),
                product("p4", "Leather sneakers", "footwear", 9_000),
            ],
            vec![IndexedVendor {
                id: "v1".into(),
                name: "Vera Shoes".into(),
                handle: "vera".into(),
                follower_count: 7,
                version: 1,
            }],
        )
        .await
        .unwrap();
        e
    }

    fn q(text: &str) -> ProductQuery {
        SearchInput { query: text.into(), ..Default::default() }.validate().unwrap()
    }

    fn ids(found: &Found) -> Vec<&str> {
        found.hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[tokio::test]
    async fn typos_within_the_budget_match_and_beyond_do_not() {
        let e = engine().await;
        let found = e.search(&q("shooes")).await.unwrap();
        assert_eq!(found.total, 2, "{found:?}");
        assert_eq!(e.search(&q("sneekers")).await.unwrap().total, 1, "two typos in a long word");
        assert_eq!(e.search(&q("hta")).await.unwrap().total, 0, "short words match exactly");
        assert_eq!(e.search(&q("shxxes")).await.unwrap().total, 0, "two typos in a short word");
        assert_eq!(ids(&e.search(&q("red sho")).await.unwrap()), ["p1"], "last word as a prefix");
    }

    #[tokio::test]
    async fn exact_matches_rank_above_typos() {
        let e = engine().await;
        e.apply(vec![Change::Product(product("p5", "Shoes", "footwear", 1))]).await.unwrap();
        e.apply(vec![Change::Product(product("p6", "Shoos", "footwear", 1))]).await.unwrap();
        let found = e.search(&q("shoos")).await.unwrap();
        assert_eq!(found.hits[0].id, "p6", "{found:?}");
    }

    #[tokio::test]
    async fn filters_facets_sort_and_paging_are_exact() {
        let e = engine().await;
        let query = SearchInput {
            category: Some("footwear".into()),
            sort: Sort::PriceAsc,
            limit: Some(2),
            ..Default::default()
        }
        .validate()
        .unwrap();
        let first = e.search(&query).await.unwrap();
        assert_eq!(ids(&first), ["p2", "p1"]);
        assert_eq!(first.total, 3);
        assert_eq!(first.facets.category.len(), 1);
        assert_eq!(first.facets.category[0].count, 3);
        let next = ProductQuery {
            after: Some(
                Cursor::parse(first.next_cursor.as_deref().unwrap(), Sort::PriceAsc).unwrap(),
            ),
            ..query
        };
        let second = e.search(&next).await.unwrap();
        assert_eq!(ids(&second), ["p4"]);
        assert_eq!(second.next_cursor, None);
        let all = e.search(&q("")).await.unwrap();
        let hats = all.facets.category.iter().find(|f| f.value == "hats").unwrap();
        assert_eq!((all.total, hats.count), (4, 1));
    }

    #[tokio::test]
    async fn suggestions_complete_titles_and_vendor_names_by_popularity() {
        let e = engine().await;
        let s = |p: &str| SuggestInput { prefix: p.into(), limit: None }.validate().unwrap();
        let found = e.suggest(&s("ver")).await.unwrap();
        assert_eq!(found[0].kind, SuggestionKind::Vendor);
        assert_eq!(found[0].text, "Vera Shoes");
        let found = e.suggest(&s("sho")).await.unwrap();
        let texts: Vec<&str> = found.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            ["Blue shoes", "Red running shoes", "Vera Shoes"],
            "word starts inside titles too; equal popularity by text"
        );
        let popular = IndexedVendor {
            id: "v2".into(),
            name: "Shoe Palace".into(),
            handle: "palace".into(),
            follower_count: 100,
            version: 1,
        };
        e.apply(vec![Change::Vendor(popular)]).await.unwrap();
        assert_eq!(
            e.suggest(&s("sho")).await.unwrap()[0].text,
            "Shoe Palace",
            "most followed first"
        );
        e.apply(vec![Change::RemoveProduct { id: "p2".into(), version: 2 }]).await.unwrap();
        assert_eq!(e.suggest(&s("blue")).await.unwrap(), []);
    }
}
