//! The feed callables: `getFeed`, `followVendor`, `unfollowVendor`,
//! `getStories`, `likePost`, `unlikePost`, `recordView`.
//!
//! Reads merge the precomputed feed (written by the feed-fanout function) with the recent posts
//! of followed high-follower vendors (which are not fanned out), backfill with trending posts
//! cached per instance, and hydrate posts with batched gets. Likes, follows and views go through
//! the idempotent sharded counters of `store::counters`.

mod cache;
pub(crate) mod read;
pub(crate) mod write;

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use domain::feed::{FeedItem, FeedPolicy};
use runtime::{BaseConfig, ConfigError, Env};
use store::Db;
use store::feed::Fanout;

use crate::AppState;
pub(crate) use cache::TtlCache;

/// The callable paths this module serves.
pub const PATHS: [&str; 7] = [
    "/getFeed",
    "/followVendor",
    "/unfollowVendor",
    "/getStories",
    "/likePost",
    "/unlikePost",
    "/recordView",
];

/// This module's own configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The feed numbers, read from the same variables as feed-fanout (`HEARTH_FEED_*`), so both
    /// agree on the high-follower threshold and entry lifetimes.
    pub policy: FeedPolicy,
    /// `HEARTH_FEED_TRENDING_CACHE_SECS` (default 60): how long an instance reuses trending posts.
    pub trending_ttl: Duration,
    /// `HEARTH_FEED_STORIES_CACHE_SECS` (default 60): how long an instance reuses a user's
    /// stories (a minute: short enough that new stories show soon, long enough to absorb
    /// refresh storms).
    pub stories_ttl: Duration,
    /// `HEARTH_FEED_BACKFILL_POSTS` (default 20): recent posts copied into a feed on follow.
    pub backfill_posts: u32,
    /// `HEARTH_FEED_FOLLOWS_CACHE_SECS` (default 30): how long an instance reuses the list of a
    /// user's followed high-follower vendors (forgotten at once when they follow or unfollow
    /// through this instance).
    pub follows_ttl: Duration,
    /// The write ramp of the follow backfill: the profile of `HEARTH_FANOUT_RAMP` (as
    /// feed-fanout reads it; default the 500/50/5 rule), divided among
    /// `HEARTH_WRITE_BUDGET_INSTANCES` instances.
    pub ramp: store::RampPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy: FeedPolicy::default(),
            trending_ttl: Duration::from_secs(60),
            stories_ttl: Duration::from_secs(60),
            backfill_posts: 20,
            follows_ttl: Duration::from_secs(30),
            ramp: store::RampPolicy::default(),
        }
    }
}

impl Config {
    pub fn load(base_config: &BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let base = FeedPolicy::default();
        let policy = FeedPolicy {
            high_follower_threshold: env.parse_or(
                "HEARTH_FEED_HIGH_FOLLOWERS",
                "a whole number",
                base.high_follower_threshold,
            )?,
            default_ttl: env.positive_secs_or("HEARTH_FEED_TTL_SECS", base.default_ttl)?,
            ..base
        };
        let backfill_posts: u32 =
            env.parse_or("HEARTH_FEED_BACKFILL_POSTS", "0 to 100", defaults.backfill_posts)?;
        if backfill_posts > 100 {
            return Err(ConfigError::invalid(
                "HEARTH_FEED_BACKFILL_POSTS",
                "0 to 100",
                &backfill_posts.to_string(),
            ));
        }
        Ok(Self {
            policy,
            trending_ttl: env.secs_or("HEARTH_FEED_TRENDING_CACHE_SECS", defaults.trending_ttl)?,
            stories_ttl: env.secs_or("HEARTH_FEED_STORIES_CACHE_SECS", defaults.stories_ttl)?,
            backfill_posts,
            follows_ttl: env.secs_or("HEARTH_FEED_FOLLOWS_CACHE_SECS", defaults.follows_ttl)?,
            ramp: store::RampPolicy::for_profile(env.parse_or(
                "HEARTH_FANOUT_RAMP",
                "conservative, default or aggressive",
                store::RampProfile::Default,
            )?)
            .shared_by(base_config.write_budget_instances),
        })
    }
}

/// This module's own state: the feed writer and the per-instance caches.
#[derive(Debug, Clone)]
pub struct State {
    config: Config,
    fanout: Fanout,
    trending: TtlCache<(), Vec<FeedItem>>,
    stories: TtlCache<String, read::StoriesAnswer>,
    high_follows: TtlCache<String, Vec<String>>,
}

impl State {
    // Async by the api's module contract (lib.rs awaits every module's build); nothing to
    // await here yet: Firestore connects on first use.
    #[allow(clippy::unused_async)]
    pub async fn build(config: &Config, db: &Db) -> anyhow::Result<Self> {
        Ok(Self {
            config: config.clone(),
            fanout: Fanout::new(db, config.policy, config.ramp),
            trending: TtlCache::new(config.trending_ttl, 1),
            stories: TtlCache::new(config.stories_ttl, 10_000),
            high_follows: TtlCache::new(config.follows_ttl, 10_000),
        })
    }
}

impl State {
    /// Forgets what this instance cached about `uid`'s follows.
    pub(crate) fn follows_changed(&self, uid: &str) {
        let key = uid.to_owned();
        self.stories.remove(&key);
        self.high_follows.remove(&key);
    }
}

/// This module's routes.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/getFeed", post(read::get_feed))
        .route("/getStories", post(read::get_stories))
        .route("/followVendor", post(write::follow_vendor))
        .route("/unfollowVendor", post(write::unfollow_vendor))
        .route("/likePost", post(write::like_post))
        .route("/unlikePost", post(write::unlike_post))
        .route("/recordView", post(write::record_view))
        .with_state(state)
}

/// Store failures as callable errors: transient ones ask the client to retry (UNAVAILABLE),
/// others are internal (details logged, never shown).
pub(crate) fn store_error(error: store::Error) -> runtime::Error {
    runtime::Error::for_event(error, "feed store", None)
}

/// Checks a client-supplied id before it becomes part of a document path.
pub(crate) fn valid_id(what: &str, id: &str) -> Result<(), runtime::Error> {
    if id.len() > 200 || store::paths::validate_id("id", id).is_err() {
        return Err(runtime::Error::reject(
            gcp::callable::Code::InvalidArgument,
            format!("{what} is not a valid id"),
        ));
    }
    Ok(())
}
