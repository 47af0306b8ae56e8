//! The feed in Firestore (rules in `domain::feed`).
//!
//! ```text
//! followers/{vendorId}:{buyerId}   {vendorId, buyerId, followedAt}   (marker of the followers counter)
//! feeds/{buyerId}/posts/{postId}   {postId, vendorId, createdAt, expiresAt, ttlAt, score, source}
//! posts/{postId}                   {vendorId, isActive, createdAt, expiresAt?, isPremium?, ...}
//! stories/{storyId}                {vendorId, createdAt, expiresAt, ...}
//! ```
//!
//! Fan-out ([`Fanout::add`]) reads a vendor's followers page by page (`vendorId ==`, ordered by
//! `followedAt` then document name, with a cursor naming both, so a page boundary is exact even
//! when many follows share a timestamp; one streamed query covers up to [`PAGES_PER_QUERY`] pages)
//! and writes one feed entry per follower through the ramped [`BulkWriter`](crate::BulkWriter)
//! (parallel BatchWrite requests), reading the next pages while the current one is written. Feed
//! entries are keyed by post id and computed from the post alone, so any re-run rewrites identical
//! documents: no duplicates, nothing missing after a redo. Removal ([`Fanout::remove`]) finds every
//! feed entry of a post with a collection-group query on `postId` (so it also reaches entries
//! backfilled by later follows) and deletes them. After each flush the fan-out reads the follow
//! edges of the followers just written and deletes the entries of those who unfollowed meanwhile
//! (the race argument is on `Fanout::unfollowed`); [`Fanout::retime`] carries a post's new expiry
//! to its entries.
//!
//! The module is split by consumer: `records` (the stored documents), `fanout` (the
//! feed-fanout function's writes), `read` (the client API's reads) and `follow` (follows and
//! the feed changes they trigger). [`Feeds`] is the repository of the reads and follows;
//! [`Fanout`] the one of the fan-out writes.

mod fanout;
mod follow;
mod read;
mod records;

pub use fanout::{FANOUT_BATCH_SIZE, Fanout, PAGES_PER_QUERY, RunEnd, RunStats};
pub use read::{PostView, StoryView, post_facts};
pub use records::{Follower, FollowerRecord, PostRecord, StoryRecord};

use crate::db::Db;

/// The feed's documents outside a fan-out: posts, follows, feeds and stories, read and
/// followed. Cheap to clone (the [`Db`] handle is shared).
#[derive(Debug, Clone)]
pub struct Feeds {
    db: Db,
}

impl Feeds {
    /// The feed documents of `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }
}
