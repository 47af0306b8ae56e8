//! The read side of the feed: a post's facts, posts and stories as clients see them, a page of
//! a precomputed feed, the recent and trending posts and the follower counts the read-time merge
//! uses.

use chrono::{DateTime, Utc};
use domain::counters::CounterField;
use domain::feed::{FeedCursor, FeedItem, FeedSource, PostFacts};
use firestore::gcloud_sdk::google::firestore::v1::Document;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use serde::Serialize;

use super::Feeds;
use super::records::PostRecord;
use crate::error::Error;
use crate::paths;
use crate::rpc::{self, NAME};

/// Reads the facts the feed rules need from a stored post.
pub fn post_facts(doc: &Document) -> Option<PostFacts> {
    Some(PostFacts {
        vendor_id: rpc::get_string(doc, "vendorId")?,
        active: rpc::get_bool(doc, "isActive").unwrap_or(false),
        created_at: rpc::get_time(doc, "createdAt")?,
        expires_at: rpc::get_time(doc, "expiresAt"),
        premium: rpc::get_bool(doc, "isPremium").unwrap_or(false),
    })
}

/// A post as a client may see it: exactly these fields, each read from the stored post by
/// name. Never the stored document as it is: a decoded document also carries the firestore
/// crate's bookkeeping (`_firestore_id`, `_firestore_created`, `_firestore_updated`,
/// `_firestore_full_id`, the last one the full path with the project id) and whatever else
/// was written onto the post.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostView {
    /// The post id.
    pub id: String,
    /// Its vendor.
    pub vendor_id: String,
    /// Visible or not.
    pub is_active: bool,
    /// Creation time (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// End of its life, when the vendor set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Premium posts rank higher.
    pub is_premium: bool,
    /// The text.
    pub caption: String,
    /// Its pictures and videos.
    pub media_urls: Vec<String>,
    /// Products it shows.
    pub product_ids: Vec<String>,
    /// Aggregated likes, views and shares (0 until the aggregation reached the post).
    pub likes: u64,
    /// See `likes`.
    pub views: u64,
    /// See `likes`.
    pub shares: u64,
}

/// A story as a client may see it (same reasoning as [`PostView`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoryView {
    /// The story id.
    pub id: String,
    /// Its vendor.
    pub vendor_id: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// End of its 24 hours.
    pub expires_at: DateTime<Utc>,
    /// What it shows.
    pub media_url: String,
    /// Aggregated unique viewers.
    pub view_count: u64,
}

fn strings_of(doc: &Document, name: &str) -> Vec<String> {
    use firestore::gcloud_sdk::google::firestore::v1::value::ValueType;
    match doc.fields.get(name).and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::ArrayValue(array)) => array
            .values
            .iter()
            .filter_map(|v| match &v.value_type {
                Some(ValueType::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn count_of(doc: &Document, name: &str) -> u64 {
    rpc::get_i64(doc, name).and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn view(doc: &Document) -> Option<PostView> {
    Some(PostView {
        id: rpc::doc_id(doc).to_owned(),
        vendor_id: rpc::get_string(doc, "vendorId")?,
        is_active: rpc::get_bool(doc, "isActive").unwrap_or(false),
        created_at: rpc::get_time(doc, "createdAt")?,
        expires_at: rpc::get_time(doc, "expiresAt"),
        is_premium: rpc::get_bool(doc, "isPremium").unwrap_or(false),
        caption: rpc::get_string(doc, "caption").unwrap_or_default(),
        media_urls: strings_of(doc, "mediaUrls"),
        product_ids: strings_of(doc, "productIds"),
        likes: count_of(doc, CounterField::Likes.parent_field()),
        views: count_of(doc, CounterField::Views.parent_field()),
        shares: count_of(doc, CounterField::Shares.parent_field()),
    })
}

fn story_view(doc: &Document) -> Option<StoryView> {
    Some(StoryView {
        id: rpc::doc_id(doc).to_owned(),
        vendor_id: rpc::get_string(doc, "vendorId")?,
        created_at: rpc::get_time(doc, "createdAt")?,
        expires_at: rpc::get_time(doc, "expiresAt")?,
        media_url: rpc::get_string(doc, "mediaUrl").unwrap_or_default(),
        view_count: count_of(doc, CounterField::StoryViews.parent_field()),
    })
}

impl Feeds {
    /// Writes `posts/{post_id}`.
    pub async fn write_post(&self, post_id: &str, post: &PostRecord) -> Result<(), Error> {
        let db = &self.db;
        db.set(&paths::post(post_id)?, post).await
    }

    /// `posts/{post_id}`'s facts, `None` when it does not exist or lacks them.
    pub async fn post(&self, post_id: &str) -> Result<Option<PostFacts>, Error> {
        let db = &self.db;
        let name = paths::post(post_id)?.full_name(db.documents_root());
        let docs = rpc::batch_get(db, vec![name]).await?;
        Ok(docs.into_iter().flatten().next().as_ref().and_then(post_facts))
    }

    /// Reads `post_ids` with batched gets (at most 100 per call, in parallel), keeping the order
    /// asked; missing posts (and documents that are not feed posts: no `vendorId` or
    /// `createdAt`) are left out.
    pub async fn hydrate(
        &self,
        post_ids: &[String],
    ) -> Result<Vec<(PostView, Option<PostFacts>)>, Error> {
        let db = &self.db;
        let names: Vec<String> = post_ids
            .iter()
            .map(|id| Ok(paths::post(id)?.full_name(db.documents_root())))
            .collect::<Result<_, Error>>()?;
        let batches = names.chunks(100).map(|chunk| rpc::batch_get(db, chunk.to_vec()));
        let results = futures::future::try_join_all(batches).await?;
        Ok(results
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|doc| Some((view(&doc)?, post_facts(&doc))))
            .collect())
    }

    /// A page of `buyer_id`'s precomputed feed after `cursor` (score, then post id, descending),
    /// at most `limit` entries (expired entries included: the caller filters them).
    pub async fn feed_page(
        &self,
        buyer_id: &str,
        cursor: Option<&FeedCursor>,
        limit: u32,
    ) -> Result<Vec<FeedItem>, Error> {
        let db = &self.db;
        let feed = paths::feed(buyer_id)?;
        let mut query = rpc::from(feed.id(), false);
        query.order_by = vec![rpc::desc("score"), rpc::desc(NAME)];
        if let Some(c) = cursor {
            let at = feed.doc(&c.post_id)?.full_name(db.documents_root());
            query.start_at =
                Some(rpc::cursor(vec![rpc::integer(c.score), rpc::reference(at)], false));
        }
        query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let docs = rpc::run(db, feed.parent_name(db.documents_root()), query).await?;
        Ok(docs.iter().filter_map(feed_item).collect())
    }

    /// The active posts of `vendor_ids` (at most 30, Firestore's `in` limit; more are ignored),
    /// newest first, at most `limit`.
    pub async fn recent_posts(
        &self,
        vendor_ids: &[String],
        limit: u32,
    ) -> Result<Vec<(String, PostFacts)>, Error> {
        let db = &self.db;
        if vendor_ids.is_empty() {
            return Ok(Vec::new());
        }
        let vendors: Vec<String> = vendor_ids.iter().take(30).cloned().collect();
        let mut query = rpc::from(paths::names::POSTS, false);
        query.r#where = rpc::and(vec![
            rpc::filter("vendorId", Operator::In, rpc::strings(&vendors)),
            rpc::eq("isActive", rpc::boolean(true)),
        ]);
        query.order_by = vec![rpc::desc("createdAt")];
        query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        Ok(docs.iter().filter_map(|d| Some((rpc::doc_id(d).to_owned(), post_facts(d)?))).collect())
    }

    /// The most liked active posts (by the aggregated `likes` field, so posts the aggregation has
    /// not reached yet are not trending), at most `limit`.
    pub async fn trending_posts(&self, limit: u32) -> Result<Vec<(String, PostFacts)>, Error> {
        let db = &self.db;
        let mut query = rpc::from(paths::names::POSTS, false);
        query.r#where = rpc::and(vec![rpc::eq("isActive", rpc::boolean(true))]);
        query.order_by = vec![rpc::desc("likes"), rpc::desc(NAME)];
        query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        Ok(docs.iter().filter_map(|d| Some((rpc::doc_id(d).to_owned(), post_facts(d)?))).collect())
    }

    /// The vendors `buyer_id` follows (at most `limit`).
    pub async fn followed_vendors(&self, buyer_id: &str, limit: u32) -> Result<Vec<String>, Error> {
        let db = &self.db;
        let mut query = rpc::from(paths::names::FOLLOWERS, false);
        query.select = rpc::select(&["vendorId"]);
        query.r#where = rpc::and(vec![rpc::eq("buyerId", rpc::string(buyer_id))]);
        query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        Ok(docs.iter().filter_map(|d| rpc::get_string(d, "vendorId")).collect())
    }

    /// The aggregated `followerCount` of each vendor (0 when missing), in the order asked.
    pub async fn follower_counts(&self, vendor_ids: &[String]) -> Result<Vec<u64>, Error> {
        let db = &self.db;
        let names = vendor_ids
            .iter()
            .map(|v| Ok(paths::vendor(v)?.full_name(db.documents_root())))
            .collect::<Result<Vec<_>, Error>>()?;
        let docs = rpc::batch_get(db, names).await?;
        Ok(docs
            .iter()
            .map(|d| {
                d.as_ref()
                    .and_then(|d| rpc::get_i64(d, CounterField::Followers.parent_field()))
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0)
            })
            .collect())
    }

    /// Unexpired stories of `vendor_ids` (at most 30), soonest to expire first.
    pub async fn stories(
        &self,
        vendor_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<StoryView>, Error> {
        let db = &self.db;
        if vendor_ids.is_empty() {
            return Ok(Vec::new());
        }
        let vendors: Vec<String> = vendor_ids.iter().take(30).cloned().collect();
        let mut query = rpc::from(paths::names::STORIES, false);
        query.r#where = rpc::and(vec![
            rpc::filter("vendorId", Operator::In, rpc::strings(&vendors)),
            rpc::filter("expiresAt", Operator::GreaterThan, rpc::timestamp(now)),
        ]);
        query.order_by = vec![rpc::asc("expiresAt"), rpc::desc("createdAt")];
        let docs = rpc::run(db, db.documents_root().to_owned(), query).await?;
        Ok(docs.iter().filter_map(story_view).collect())
    }
}

fn feed_item(doc: &Document) -> Option<FeedItem> {
    let source = match rpc::get_string(doc, "source").as_deref() {
        Some("interests") => FeedSource::Interests,
        Some("trending") => FeedSource::Trending,
        _ => FeedSource::Following,
    };
    Some(FeedItem {
        post_id: rpc::doc_id(doc).to_owned(),
        vendor_id: rpc::get_string(doc, "vendorId")?,
        created_at: rpc::get_time(doc, "createdAt")?,
        expires_at: rpc::get_time(doc, "expiresAt")?,
        score: rpc::get_i64(doc, "score")?,
        source,
    })
}
