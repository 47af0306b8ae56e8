//! The feed's stored documents: follows, posts and stories as written (clients write posts and
//! stories; tests, the benchmark and the local demo write them through these types), a feed
//! entry as stored, and a follower as the fan-out query reads it.

use chrono::{DateTime, Utc};
use domain::feed::{FeedItem, FeedSource};
use domain::messages::FollowerCursor;
use firestore::FirestoreInstant;
use serde::{Deserialize, Serialize};

/// `followers/{vendorId}:{buyerId}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowerRecord {
    /// The vendor followed.
    pub vendor_id: String,
    /// The follower.
    pub buyer_id: String,
    /// When the follow happened (the fan-out order).
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub followed_at: FirestoreInstant,
}

impl FollowerRecord {
    /// A follow of `vendor_id` by `buyer_id` at `at`.
    pub fn new(vendor_id: &str, buyer_id: &str, at: DateTime<Utc>) -> Self {
        Self {
            vendor_id: vendor_id.to_owned(),
            buyer_id: buyer_id.to_owned(),
            followed_at: instant(at),
        }
    }
}

/// `posts/{postId}` as the feed reads it (vendors' clients write these; tests, the benchmark
/// and the local demo write them through [`Feeds::write_post`](super::Feeds::write_post)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostRecord {
    /// The vendor.
    pub vendor_id: String,
    /// Visible or not.
    pub is_active: bool,
    /// Creation time.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub created_at: FirestoreInstant,
    /// Premium posts rank higher.
    #[serde(default)]
    pub is_premium: bool,
    /// The text.
    #[serde(default)]
    pub caption: String,
}

impl PostRecord {
    /// An ordinary post of `vendor_id` created at `at`.
    pub fn new(vendor_id: &str, is_active: bool, at: DateTime<Utc>, caption: &str) -> Self {
        Self {
            vendor_id: vendor_id.to_owned(),
            is_active,
            created_at: instant(at),
            is_premium: false,
            caption: caption.to_owned(),
        }
    }
}

/// `stories/{storyId}`: a 24-hour story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoryRecord {
    /// The vendor.
    pub vendor_id: String,
    /// Creation time.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub created_at: FirestoreInstant,
    /// End of its 24 hours.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub expires_at: FirestoreInstant,
    /// What it shows.
    #[serde(default)]
    pub media_url: String,
}

impl StoryRecord {
    /// A story of `vendor_id` created at `at`, expiring [`domain::feed::STORY_LIFETIME`] later.
    pub fn new(vendor_id: &str, at: DateTime<Utc>, media_url: &str) -> Self {
        let lifetime =
            chrono::TimeDelta::from_std(domain::feed::STORY_LIFETIME).unwrap_or_default();
        Self {
            vendor_id: vendor_id.to_owned(),
            created_at: instant(at),
            expires_at: instant(at + lifetime),
            media_url: media_url.to_owned(),
        }
    }
}

/// `feeds/{buyerId}/posts/{postId}`, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FeedDoc {
    post_id: String,
    vendor_id: String,
    #[serde(with = "firestore::serialize_as_timestamp")]
    created_at: FirestoreInstant,
    #[serde(with = "firestore::serialize_as_timestamp")]
    expires_at: FirestoreInstant,
    /// The same instant as `expires_at`, under the field the TTL policy watches (see
    /// `infra/locals.tf`): vendor posts share the collection group `posts` and never carry it.
    #[serde(with = "firestore::serialize_as_timestamp")]
    ttl_at: FirestoreInstant,
    score: i64,
    source: FeedSource,
}

impl From<&FeedItem> for FeedDoc {
    fn from(item: &FeedItem) -> Self {
        Self {
            post_id: item.post_id.clone(),
            vendor_id: item.vendor_id.clone(),
            created_at: instant(item.created_at),
            expires_at: instant(item.expires_at),
            ttl_at: instant(item.expires_at),
            score: item.score,
            source: item.source,
        }
    }
}

/// One follower read from the `followers` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    /// The follower document's id (cursor tie-breaker).
    pub doc_id: String,
    /// The follower's uid (whose feed receives the post).
    pub buyer_id: String,
    /// `followedAt` (the cursor's ordering value).
    pub followed_at: DateTime<Utc>,
}

impl Follower {
    /// The cursor naming this follower.
    pub fn cursor(&self) -> FollowerCursor {
        FollowerCursor { followed_at: self.followed_at, doc_id: self.doc_id.clone() }
    }
}

pub(super) fn instant(time: DateTime<Utc>) -> FirestoreInstant {
    FirestoreInstant::from_microsecond(time.timestamp_micros()).unwrap_or(FirestoreInstant::MAX)
}
