//! `getFeed` and `getStories`: fan-in on read where fan-out does not reach.

use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::feed::{
    FeedCursor, FeedItem, FeedSource, backfill, clamp_limit, feed_item, is_high_follower,
    merge_page,
};
use gcp::callable::Code;
use runtime::Error;
use runtime::trigger::{Callable, CallableResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::feed::{PostView, StoryView};
use ts_rs::TS;

use super::{State as FeedState, store_error};
use crate::payments::limits;
use crate::{AppState, SignedIn};

/// Followed vendors considered for the read-time merge (Firestore's `in` takes 30 values).
const MAX_MERGED_VENDORS: usize = 30;
/// Followed vendors read per request.
const MAX_FOLLOWED: u32 = 500;
/// Trending posts kept in the per-instance cache.
const TRENDING_POOL: u32 = 50;

/// `getFeed` data (optional: no data reads the first page).
#[derive(Debug, Default, Deserialize, TS)]
#[serde(default, deny_unknown_fields)]
#[ts(rename = "GetFeedRequest")]
pub(crate) struct GetFeed {
    /// `nextCursor` of the previous page.
    #[ts(optional)]
    cursor: Option<String>,
    /// Page size, default 20, at most 50.
    #[ts(optional)]
    limit: Option<u64>,
}

/// One post of a `getFeed` answer: the post's client fields, where the entry came from and
/// its rank. Answers are built from these types only, never from stored documents: the fields
/// are copied from `store::feed::PostView` one by one, so what clients get is this type.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeedPost {
    /// The post id.
    id: String,
    vendor_id: String,
    is_active: bool,
    /// RFC 3339.
    #[ts(type = "string")]
    created_at: DateTime<Utc>,
    /// RFC 3339; only when the vendor set an end.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "string")]
    expires_at: Option<DateTime<Utc>>,
    is_premium: bool,
    caption: String,
    media_urls: Vec<String>,
    product_ids: Vec<String>,
    /// Aggregated likes, views and shares (0 until the aggregation reached the post).
    likes: u64,
    views: u64,
    shares: u64,
    /// Where the entry came from.
    source: FeedSource,
    /// Its rank (higher first).
    score: i64,
}

impl FeedPost {
    fn new(post: PostView, source: FeedSource, score: i64) -> Self {
        let PostView {
            id,
            vendor_id,
            is_active,
            created_at,
            expires_at,
            is_premium,
            caption,
            media_urls,
            product_ids,
            likes,
            views,
            shares,
        } = post;
        Self {
            id,
            vendor_id,
            is_active,
            created_at,
            expires_at,
            is_premium,
            caption,
            media_urls,
            product_ids,
            likes,
            views,
            shares,
            source,
            score,
        }
    }
}

/// The `getFeed` answer.
#[derive(Debug, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "GetFeedResult")]
pub(crate) struct FeedAnswer {
    posts: Vec<FeedPost>,
    /// Pass it back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
    has_more: bool,
}

/// The `getStories` answer (cached per user as it is).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename = "GetStoriesResult")]
pub(crate) struct StoriesAnswer {
    story_groups: Vec<StoryGroup>,
}

/// The unexpired stories of one followed vendor.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoryGroup {
    vendor_id: String,
    stories: Vec<Story>,
}

/// A story as clients get it (copied field by field from `store::feed::StoryView`).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Story {
    /// The story id.
    id: String,
    vendor_id: String,
    /// RFC 3339.
    #[ts(type = "string")]
    created_at: DateTime<Utc>,
    /// RFC 3339: the end of its 24 hours.
    #[ts(type = "string")]
    expires_at: DateTime<Utc>,
    media_url: String,
    /// Aggregated unique viewers.
    view_count: u64,
}

impl From<StoryView> for Story {
    fn from(story: StoryView) -> Self {
        let StoryView { id, vendor_id, created_at, expires_at, media_url, view_count } = story;
        Self { id, vendor_id, created_at, expires_at, media_url, view_count }
    }
}

/// `getFeed({cursor?, limit?})` -> `{posts, nextCursor, hasMore}`.
pub(crate) async fn get_feed(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<Option<GetFeed>>,
) -> Result<CallableResult<FeedAnswer>, Error> {
    limits::check(&state, &who.uid, "getFeed").await?;
    let request = request.unwrap_or_default();
    let limit = clamp_limit(request.limit);
    let cursor = match request.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(FeedCursor::decode(text).ok_or_else(|| {
            Error::reject(Code::InvalidArgument, "cursor is not one this service handed out")
        })?),
    };
    let feed = &state.feed;
    let db = &state.db;
    let now = Utc::now();
    // Twice the page is read, so entries of posts deleted or deactivated since (their removal
    // may still be running) can be dropped without leaving the page short.
    let window = limit.saturating_mul(2);
    let asked = u32::try_from(window).unwrap_or(100);

    let feeds = store::feed::Feeds::new(db);
    let (precomputed, merged) = tokio::try_join!(
        feeds.feed_page(&who.uid, cursor.as_ref(), asked),
        high_follower_posts(&state, &who.uid, asked),
    )
    .map_err(store_error)?;
    let exhausted = precomputed.len() < window && merged.len() < window;
    let candidates = merge_page(vec![precomputed, merged], cursor.as_ref(), now, window, exhausted);
    let mut posts = hydrated(db, &candidates.items).await?;
    let more = posts.len() > limit || candidates.next_cursor.is_some();
    posts.truncate(limit);
    let next_cursor = if more {
        match posts.last() {
            Some((item, _)) => {
                Some(FeedCursor { score: item.score, post_id: item.post_id.clone() })
            }
            None => candidates.next_cursor.clone(),
        }
    } else {
        None
    };

    // A feed with too few posts (a single short page) is topped up with trending posts; they
    // are never part of the cursor, and later pages are not topped up, so none repeats.
    if cursor.is_none() && next_cursor.is_none() && posts.len() < limit {
        let trending = trending(feed, &state).await?;
        let page = domain::feed::FeedPage {
            items: posts.iter().map(|(item, _)| item.clone()).collect(),
            next_cursor: None,
        };
        let fill = backfill(&page, &trending, limit);
        posts.extend(hydrated(db, &fill).await?);
        posts.truncate(limit);
    }

    Ok(CallableResult(FeedAnswer {
        posts: posts.into_iter().map(|(_, post)| post).collect(),
        next_cursor: next_cursor.as_ref().map(FeedCursor::encode),
        has_more: next_cursor.is_some(),
    }))
}

/// `items` with their posts read in batched gets, in order, without the posts that no longer
/// exist or are inactive.
async fn hydrated(db: &store::Db, items: &[FeedItem]) -> Result<Vec<(FeedItem, FeedPost)>, Error> {
    let ids: Vec<String> = items.iter().map(|i| i.post_id.clone()).collect();
    let found = store::feed::Feeds::new(db).hydrate(&ids).await.map_err(store_error)?;
    Ok(items
        .iter()
        .filter_map(|item| {
            let (view, facts) = found.iter().find(|(v, _)| v.id == item.post_id)?;
            facts.as_ref().filter(|f| f.active)?;
            let post = FeedPost::new(view.clone(), item.source, item.score);
            Some((item.clone(), post))
        })
        .collect())
}

/// Recent posts of the followed vendors that are not fanned out (at least the high-follower
/// threshold of aggregated followers).
async fn high_follower_posts(
    state: &AppState,
    uid: &str,
    limit: u32,
) -> Result<Vec<FeedItem>, store::Error> {
    let policy = &state.feed.config.policy;
    let key = uid.to_owned();
    let high = match state.feed.high_follows.get(&key) {
        Some(high) => high,
        None => {
            let followed =
                store::feed::Feeds::new(&state.db).followed_vendors(uid, MAX_FOLLOWED).await?;
            let counts = store::feed::Feeds::new(&state.db).follower_counts(&followed).await?;
            let high: Vec<String> = followed
                .into_iter()
                .zip(counts)
                .filter(|(_, n)| is_high_follower(*n, policy))
                .map(|(v, _)| v)
                .take(MAX_MERGED_VENDORS)
                .collect();
            state.feed.high_follows.insert(key, high.clone());
            high
        }
    };
    if high.is_empty() {
        return Ok(Vec::new());
    }
    let posts =
        store::feed::Feeds::new(&state.db).recent_posts(&high, limit.saturating_mul(2)).await?;
    Ok(posts.iter().map(|(id, post)| feed_item(id, post, policy, FeedSource::Following)).collect())
}

/// Trending posts, from the instance cache when fresh.
async fn trending(feed: &FeedState, state: &AppState) -> Result<Vec<FeedItem>, Error> {
    if let Some(cached) = feed.trending.get(&()) {
        return Ok(cached);
    }
    let posts = store::feed::Feeds::new(&state.db)
        .trending_posts(TRENDING_POOL)
        .await
        .map_err(store_error)?;
    let items: Vec<FeedItem> = posts
        .iter()
        .map(|(id, post)| feed_item(id, post, &feed.config.policy, FeedSource::Trending))
        .collect();
    feed.trending.insert((), items.clone());
    Ok(items)
}

/// `getStories()` -> `{storyGroups: [{vendorId, stories}]}`: unexpired stories of followed
/// vendors, read at request time and cached per user for a short time.
pub(crate) async fn get_stories(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(_): Callable<Option<Value>>,
) -> Result<CallableResult<StoriesAnswer>, Error> {
    limits::check(&state, &who.uid, "getStories").await?;
    if let Some(cached) = state.feed.stories.get(&who.uid) {
        return Ok(CallableResult(cached));
    }
    let db = &state.db;
    let followed = store::feed::Feeds::new(db)
        .followed_vendors(&who.uid, MAX_FOLLOWED)
        .await
        .map_err(store_error)?;
    let mut groups: Vec<StoryGroup> = Vec::new();
    for chunk in followed.chunks(MAX_MERGED_VENDORS) {
        let stories =
            store::feed::Feeds::new(db).stories(chunk, Utc::now()).await.map_err(store_error)?;
        for story in stories {
            let story = Story::from(story);
            match groups.iter_mut().find(|g| g.vendor_id == story.vendor_id) {
                Some(group) => group.stories.push(story),
                None => groups
                    .push(StoryGroup { vendor_id: story.vendor_id.clone(), stories: vec![story] }),
            }
        }
    }
    let result = StoriesAnswer { story_groups: groups };
    state.feed.stories.insert(who.uid.clone(), result.clone());
    Ok(CallableResult(result))
}
