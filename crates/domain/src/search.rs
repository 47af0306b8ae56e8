//! Product search as pure rules: what a query may ask (validation with clear errors), how many
//! typos each word may carry, which products a filter admits, the order of results and the paging
//! cursor, and the replica's version rule (which change may replace what is held).
//!
//! Typo tolerance: a query word of fewer than [`MIN_LEN_ONE_TYPO`] characters must match
//! exactly, a word of up to [`MIN_LEN_TWO_TYPOS`]` - 1` characters may be one edit away
//! (insertion, deletion, substitution or transposition), a longer word two ("shooes" finds
//! "shoes"; "sneekers" finds "sneakers"). The last word of the query also matches as a prefix,
//! so results follow the user's typing.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Words shorter than this match exactly.
pub const MIN_LEN_ONE_TYPO: usize = 4;
/// Words at least this long may carry two typos.
pub const MIN_LEN_TWO_TYPOS: usize = 8;
/// Longest query text, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Most words a query is split into.
pub const MAX_WORDS: usize = 8;
/// Results per page at most (and the default).
pub const MAX_PAGE: u32 = 50;
/// Results per page unless asked.
pub const DEFAULT_PAGE: u32 = 20;
/// Longest id or category a filter may name.
pub const MAX_ID_CHARS: usize = 128;
/// Longest autocomplete prefix.
pub const MAX_PREFIX_CHARS: usize = 64;
/// Autocomplete suggestions at most.
pub const MAX_SUGGESTIONS: u32 = 10;

/// How many edits a query word may be away from an indexed word.
pub fn typo_budget(word: &str) -> u8 {
    match word.chars().count() {
        n if n < MIN_LEN_ONE_TYPO => 0,
        n if n < MIN_LEN_TWO_TYPOS => 1,
        _ => 2,
    }
}

/// The words of `text`: lower case, split on anything that is not a letter or a digit.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The order of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best match first (price ascending when there is no text).
    #[default]
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
}

/// The facts of a product that filters, facets and sorting use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// Category id.
    pub category: &'a str,
    /// Vendor id.
    pub vendor_id: &'a str,
    /// Base price, minor units.
    pub price_minor: i64,
    /// Availability summary.
    pub in_stock: bool,
}

/// What a query filters on; every given filter must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Filters {
    /// Exactly this category.
    pub category: Option<String>,
    /// Exactly this vendor.
    pub vendor_id: Option<String>,
    /// At least this price (minor units).
    pub min_price: Option<i64>,
    /// At most this price (minor units).
    pub max_price: Option<i64>,
    /// Only products in stock.
    pub in_stock_only: bool,
}

impl Filters {
    /// Whether a product with `facts` passes every filter.
    pub fn admits(&self, facts: &Facts<'_>) -> bool {
        self.category.as_deref().is_none_or(|c| c == facts.category)
            && self.vendor_id.as_deref().is_none_or(|v| v == facts.vendor_id)
            && self.min_price.is_none_or(|p| facts.price_minor >= p)
            && self.max_price.is_none_or(|p| facts.price_minor <= p)
            && (!self.in_stock_only || facts.in_stock)
    }
}

/// A validated product query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductQuery {
    /// The query words (empty: every product the filters admit).
    pub words: Vec<String>,
    /// The filters.
    pub filters: Filters,
    /// The order.
    pub sort: Sort,
    /// Page size.
    pub limit: u32,
    /// Where the page starts (after this position).
    pub after: Option<Cursor>,
}

/// `searchProducts` data as sent (camelCase).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchInput {
    /// Query text.
    #[serde(default)]
    pub query: String,
    /// Category filter.
    pub category: Option<String>,
    /// Vendor filter.
    pub vendor_id: Option<String>,
    /// Lowest price, minor units.
    pub min_price: Option<i64>,
    /// Highest price, minor units.
    pub max_price: Option<i64>,
    /// Only products in stock.
    #[serde(default)]
    pub in_stock: bool,
    /// `relevance` (default), `price_asc` or `price_desc`.
    #[serde(default)]
    pub sort: Sort,
    /// 1 to 50, default 20.
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Why a query is refused; the message is what the caller reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuery {
    /// Text over the limit.
    #[error("query must be at most {MAX_TEXT_CHARS} characters")]
    TextTooLong,
    /// Too many words.
    #[error("query must have at most {MAX_WORDS} words")]
    TooManyWords,
    /// A filter id out of shape.
    #[error("{0} must be 1 to {MAX_ID_CHARS} characters without '/'")]
    BadId(&'static str),
    /// A negative price bound.
    #[error("{0} must be zero or more")]
    NegativePrice(&'static str),
    /// `minPrice > maxPrice`.
    #[error("minPrice must not be above maxPrice")]
    EmptyPriceRange,
    /// Page size out of range.
    #[error("limit must be 1 to {MAX_PAGE}")]
    BadLimit,
    /// A cursor that this sort did not produce.
    #[error("cursor is not one this query produced")]
    BadCursor,
    /// Autocomplete prefix out of shape.
    #[error("prefix must be 1 to {MAX_PREFIX_CHARS} characters with a letter or digit")]
    BadPrefix,
    /// Autocomplete limit out of range.
    #[error("limit must be 1 to {MAX_SUGGESTIONS}")]
    BadSuggestLimit,
}

fn check_id(what: &'static str, value: Option<String>) -> Result<Option<String>, InvalidQuery> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > MAX_ID_CHARS || v.contains('/') => {
            Err(InvalidQuery::BadId(what))
        }
        other => Ok(other),
    }
}

impl SearchInput {
    /// The validated query.
    pub fn validate(self) -> Result<ProductQuery, InvalidQuery> {
        if self.query.chars().count() > MAX_TEXT_CHARS {
            return Err(InvalidQuery::TextTooLong);
        }
        let words = words(&self.query);
        if words.len() > MAX_WORDS {
            return Err(InvalidQuery::TooManyWords);
        }
        let category = check_id("category", self.category)?;
        let vendor_id = check_id("vendorId", self.vendor_id)?;
        for (name, bound) in [("minPrice", self.min_price), ("maxPrice", self.max_price)] {
            if bound.is_some_and(|p| p < 0) {
                return Err(InvalidQuery::NegativePrice(name));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_price, self.max_price)
            && lo > hi
        {
            return Err(InvalidQuery::EmptyPriceRange);
        }
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(InvalidQuery::BadLimit);
        }
        let after = self.cursor.map(|c| Cursor::parse(&c, self.sort)).transpose()?;
        Ok(ProductQuery {
            words,
            filters: Filters {
                category,
                vendor_id,
                min_price: self.min_price,
                max_price: self.max_price,
                in_stock_only: self.in_stock,
            },
            sort: self.sort,
            limit,
            after,
        })
    }
}

/// `suggest` data as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuggestInput {
    /// What the user has typed.
    pub prefix: String,
    /// 1 to 10, default 5.
    pub limit: Option<u32>,
}

/// A validated autocomplete request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SuggestQuery {
    /// The prefix, lower case, inner whitespace collapsed.
    pub prefix: String,
    /// Suggestions at most.
    pub limit: u32,
}

impl SuggestInput {
    /// The validated request.
    pub fn validate(self) -> Result<SuggestQuery, InvalidQuery> {
        if self.prefix.chars().count() > MAX_PREFIX_CHARS {
            return Err(InvalidQuery::BadPrefix);
        }
        let prefix = normalize(&self.prefix);
        if prefix.is_empty() {
            return Err(InvalidQuery::BadPrefix);
        }
        let limit = self.limit.unwrap_or(5);
        if !(1..=MAX_SUGGESTIONS).contains(&limit) {
            return Err(InvalidQuery::BadSuggestLimit);
        }
        Ok(SuggestQuery { prefix, limit })
    }
}

/// Text as autocomplete compares it: the words, lower case, joined by one space.
pub fn normalize(text: &str) -> String {
    words(text).join(" ")
}

/// The position of a result in its order; results sort by ([`Cursor::key`], id) ascending.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The sort key: price (ascending), negated price (descending), or the negated score's
    /// order-preserving bits (relevance).
    pub key: i64,
    /// The product id, breaking ties.
    pub id: String,
}

impl Cursor {
    /// The position of a product in `sort`, given its price and (for relevance) its score.
    pub fn of(sort: Sort, price_minor: i64, score: f32, has_text: bool, id: &str) -> Self {
        let key = match sort {
            Sort::Relevance if has_text => -i64::from(ordered_bits(score)),
            Sort::Relevance | Sort::PriceAsc => price_minor,
            Sort::PriceDesc => -price_minor,
        };
        Self { key, id: id.to_owned() }
    }

    /// The order of two positions.
    pub fn cmp_position(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key).then_with(|| self.id.cmp(&other.id))
    }

    /// The opaque text sent to clients, naming the sort it belongs to.
    pub fn encode(&self, sort: Sort) -> String {
        format!("{}.{}.{}", sort_tag(sort), self.key, self.id)
    }

    /// Parses a cursor of `sort`.
    pub fn parse(text: &str, sort: Sort) -> Result<Self, InvalidQuery> {
        let mut parts = text.splitn(3, '.');
        let (Some(tag), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidQuery::BadCursor);
        };
        let key: i64 = key.parse().map_err(|_| InvalidQuery::BadCursor)?;
        if tag != sort_tag(sort) || id.is_empty() || id.len() > MAX_ID_CHARS || id.contains('/') {
            return Err(InvalidQuery::BadCursor);
        }
        Ok(Self { key, id: id.to_owned() })
    }
}

fn sort_tag(sort: Sort) -> &'static str {
    match sort {
        Sort::Relevance => "r",
        Sort::PriceAsc => "pa",
        Sort::PriceDesc => "pd",
    }
}

/// The bits of a non-negative `f32` as an integer of the same order.
fn ordered_bits(score: f32) -> u32 {
    if score.is_nan() || score <= 0.0 { 0 } else { score.to_bits() }
}

/// What the replica holds for one document id: the update time of the version it indexed, or
/// the time a delete was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// A version updated at this time.
    Version(DateTime<Utc>),
    /// Deleted, observed at this time.
    Deleted(DateTime<Utc>),
}

/// Whether a version updated at `update_time` may replace what is held: only if it is newer
/// than the held version and than a delete observed since. An older event arriving late (a
/// redelivery, a replay after a reconnect) never rolls a document back or brings a deleted one
/// back.
pub fn may_upsert(held: Option<Held>, update_time: DateTime<Utc>) -> bool {
    match held {
        None => true,
        Some(Held::Version(t)) => update_time > t,
        Some(Held::Deleted(t)) => update_time > t,
    }
}

/// Whether a delete observed at `at` removes what is held: a version updated after the
/// observation was written after the delete and stays.
pub fn may_delete(held: Option<Held>, at: DateTime<Utc>) -> bool {
    match held {
        None => true,
        Some(Held::Version(t)) => at >= t,
        Some(Held::Deleted(t)) => at > t,
    }
}

/// The versions a replica holds for one collection, applying [`may_upsert`] and [`may_delete`],
/// and resolving a resend: after [`Versions::reset`], every id not upserted again before
/// [`Versions::current`] is gone.
///
/// Delete markers are kept until a consistent point passes them ([`Versions::forget_before`]):
/// after that the stream resumes from a later point, so no event older than the marker can come.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    held: std::collections::HashMap<String, Held>,
    resent: Option<std::collections::HashSet<String>>,
}

impl Versions {
    /// Whether the version of `id` updated at `update_time` is applied (and is now held).
    pub fn upsert(&mut self, id: &str, update_time: DateTime<Utc>) -> bool {
        if let Some(resent) = &mut self.resent {
            resent.insert(id.to_owned());
        }
        let apply = may_upsert(self.held.get(id).copied(), update_time);
        if apply {
            self.held.insert(id.to_owned(), Held::Version(update_time));
        }
        apply
    }

    /// Whether a delete of `id` observed at `at` is applied.
    pub fn delete(&mut self, id: &str, at: DateTime<Utc>) -> bool {
        let apply = may_delete(self.held.get(id).copied(), at);
        if apply {
            self.held.insert(id.to_owned(), Held::Deleted(at));
        }
        apply
    }

    /// The collection is being resent whole.
    pub fn reset(&mut self) {
        self.resent = Some(std::collections::HashSet::new());
    }

    /// The collection is current as of `read_time`: after a reset, the ids held but not resent
    /// are deleted (as of `read_time`) and returned.
    pub fn current(&mut self, read_time: DateTime<Utc>) -> Vec<String> {
        let Some(resent) = self.resent.take() else { return Vec::new() };
        let gone: Vec<String> = self
            .held
            .iter()
            .filter(|(id, held)| {
                matches!(held, Held::Version(t) if *t <= read_time) && !resent.contains(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.held.insert(id.clone(), Held::Deleted(read_time));
        }
        gone
    }

    /// Drops delete markers older than `point`.
    pub fn forget_before(&mut self, point: DateTime<Utc>) {
        self.held.retain(|_, held| !matches!(held, Held::Deleted(t) if *t < point));
    }

    /// Ids held as live versions.
    pub fn live(&self) -> usize {
        self.held.values().filter(|h| matches!(h, Held::Version(_))).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    #[test]
    fn typo_budget_grows_with_word_length() {
        assert_eq!(typo_budget("red"), 0);
        assert_eq!(typo_budget("shoe"), 1);
        assert_eq!(typo_budget("shooes"), 1);
        assert_eq!(typo_budget("sneekers"), 2);
        assert_eq!(typo_budget("ééé"), 0, "counted in characters, not bytes");
    }

    #[test]
    fn words_are_lower_case_and_split_on_punctuation() {
        assert_eq!(words("  Red-SHOES, size 42!"), ["red", "shoes", "size", "42"]);
        assert!(words(" .,; ").is_empty());
        assert_eq!(normalize("  Vera's   Shop "), "vera s shop");
    }

    #[test]
    fn validation_names_the_problem() {
        let bad = |input: SearchInput| input.validate().unwrap_err().to_string();
        assert_eq!(
            bad(SearchInput { query: "x".repeat(201), ..Default::default() }),
            "query must be at most 200 characters"
        );
        assert_eq!(
            bad(SearchInput { query: "a b c d e f g h i".into(), ..Default::default() }),
            "query must have at most 8 words"
        );
        assert_eq!(
            bad(SearchInput { min_price: Some(10), max_price: Some(5), ..Default::default() }),
            "minPrice must not be above maxPrice"
        );
        assert_eq!(
            bad(SearchInput { min_price: Some(-1), ..Default::default() }),
            "minPrice must be zero or more"
        );
        assert_eq!(
            bad(SearchInput { limit: Some(51), ..Default::default() }),
            "limit must be 1 to 50"
        );
        assert_eq!(
            bad(SearchInput { limit: Some(0), ..Default::default() }),
            "limit must be 1 to 50"
        );
        assert_eq!(
            bad(SearchInput { category: Some("a/b".into()), ..Default::default() }),
            "category must be 1 to 128 characters without '/'"
        );
        assert_eq!(
            bad(SearchInput { cursor: Some("pa.5.p1".into()), ..Default::default() }),
            "cursor is not one this query produced",
            "a price cursor under relevance"
        );
        let ok =
            SearchInput { query: "Red Shoes".into(), ..Default::default() }.validate().unwrap();
        assert_eq!(ok.words, ["red", "shoes"]);
        assert_eq!(ok.limit, DEFAULT_PAGE);
    }

    #[test]
    fn suggest_validation() {
        assert!(SuggestInput { prefix: "  ".into(), limit: None }.validate().is_err());
        assert!(SuggestInput { prefix: "x".repeat(65), limit: None }.validate().is_err());
        assert!(SuggestInput { prefix: "sh".into(), limit: Some(11) }.validate().is_err());
        let q = SuggestInput { prefix: " Red  Sh".into(), limit: None }.validate().unwrap();
        assert_eq!(q, SuggestQuery { prefix: "red sh".into(), limit: 5 });
    }

    #[test]
    fn filters_admit_exactly() {
        let facts = Facts { category: "shoes", vendor_id: "v1", price_minor: 500, in_stock: false };
        assert!(Filters::default().admits(&facts));
        assert!(
            Filters { min_price: Some(500), max_price: Some(500), ..Default::default() }
                .admits(&facts)
        );
        assert!(!Filters { min_price: Some(501), ..Default::default() }.admits(&facts));
        assert!(!Filters { in_stock_only: true, ..Default::default() }.admits(&facts));
        assert!(!Filters { category: Some("hats".into()), ..Default::default() }.admits(&facts));
        assert!(!Filters { vendor_id: Some("v2".into()), ..Default::default() }.admits(&facts));
    }

    #[test]
    fn out_of_order_versions_never_win() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let t1 = t0 + TimeDelta::milliseconds(1);
        assert!(may_upsert(None, t0));
        assert!(may_upsert(Some(Held::Version(t0)), t1));
        assert!(!may_upsert(Some(Held::Version(t1)), t0), "no rollback");
        assert!(!may_upsert(Some(Held::Version(t1)), t1), "a replay is a no-op");
        assert!(!may_upsert(Some(Held::Deleted(t1)), t0), "no resurrection");
        assert!(may_upsert(Some(Held::Deleted(t0)), t1), "re-created after the delete");
        assert!(may_delete(Some(Held::Version(t0)), t1));
        assert!(!may_delete(Some(Held::Version(t1)), t0), "a late delete of an older version");
    }

    #[test]
    fn a_resend_deletes_what_it_does_not_resend() {
        let t = |ms: i64| DateTime::from_timestamp_millis(1_000_000 + ms).unwrap();
        let mut v = Versions::default();
        assert!(v.upsert("a", t(1)));
        assert!(v.upsert("b", t(1)));
        v.reset();
        assert!(!v.upsert("a", t(1)), "the same version again is a no-op");
        assert!(v.upsert("c", t(3)));
        assert_eq!(v.current(t(4)), ["b"]);
        assert!(!v.upsert("b", t(2)), "a late event of the vanished document");
        assert_eq!(v.current(t(5)), Vec::<String>::new(), "only after a reset");
        v.forget_before(t(5));
        assert!(v.upsert("b", t(2)), "markers older than a consistent point are forgotten");
        assert_eq!(v.live(), 3);
    }

    proptest! {
        #[test]
        fn cursors_round_trip(key in any::<i64>(), id in "[a-zA-Z0-9_.-]{1,40}", sort in prop_oneof![Just(Sort::Relevance), Just(Sort::PriceAsc), Just(Sort::PriceDesc)]) {
            let c = Cursor { key, id };
            prop_assert_eq!(Cursor::parse(&c.encode(sort), sort).unwrap(), c);
        }

        #[test]
        fn higher_scores_come_first(a in 0.0f32..1e6, b in 0.0f32..1e6) {
            let ca = Cursor::of(Sort::Relevance, 0, a, true, "x");
            let cb = Cursor::of(Sort::Relevance, 0, b, true, "x");
            prop_assert_eq!(ca.cmp_position(&cb), b.partial_cmp(&a).unwrap());
        }
    }
}
