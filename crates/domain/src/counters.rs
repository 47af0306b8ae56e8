//! Sharded counters as pure rules: how many shards each counted
//! field has, which shard an increment touches (from a random draw the caller passes in), how
//! shards sum, and the idempotent membership counters (likes, followers, unique views) whose
//! increments are decided from a per-(item, user) marker document read in the same
//! transaction: a retried or duplicated "like" finds its marker and counts nothing, an "unlike"
//! without a marker decrements nothing, so these counters never go negative.
//!
//! Why not the Firebase Distributed Counter extension: its increments are blind
//! `FieldValue.increment` writes, so a client or function retry counts twice.

use serde::{Deserialize, Serialize};

/// A counted field, with its shard count (Firestore sustains about one write per second per
/// document, so each shard takes about one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterField {
    /// `posts.likes`: 20 shards.
    Likes,
    /// `posts.views`: 50 shards.
    Views,
    /// `posts.shares`: 10 shards.
    Shares,
    /// `stories.viewCount`: 50 shards.
    StoryViews,
    /// `vendors.followerCount`: 20 shards.
    Followers,
    /// `users.unreadNotifications`: 5 shards (one user's inbox; a burst of notifications
    /// and the reads that mark them spread over them).
    UnreadNotifications,
}

impl CounterField {
    /// Every counted field.
    pub const ALL: [CounterField; 6] = [
        Self::Likes,
        Self::Views,
        Self::Shares,
        Self::StoryViews,
        Self::Followers,
        Self::UnreadNotifications,
    ];

    /// How many shards the field is spread over.
    pub const fn shards(self) -> u32 {
        match self {
            Self::Likes | Self::Followers => 20,
            Self::Views | Self::StoryViews => 50,
            Self::Shares => 10,
            Self::UnreadNotifications => 5,
        }
    }

    /// The parent document's field that the aggregation writes the total to.
    pub const fn parent_field(self) -> &'static str {
        match self {
            Self::Likes => "likes",
            Self::Views => "views",
            Self::Shares => "shares",
            Self::StoryViews => "viewCount",
            Self::Followers => "followerCount",
            Self::UnreadNotifications => "unreadNotifications",
        }
    }

    /// The name used in shard document ids and marker collections.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Likes => "likes",
            Self::Views => "views",
            Self::Shares => "shares",
            Self::StoryViews => "story_views",
            Self::Followers => "followers",
            Self::UnreadNotifications => "unread",
        }
    }

    /// The shard document id of shard `n` (`{key}_{n}`, e.g. `likes_3`).
    pub fn shard_id(self, n: u32) -> String {
        format!("{}_{n}", self.key())
    }

    /// The field and shard number a shard document id names, if it names one of this field's
    /// shards (`likes_3` -> (Likes, 3); `likes_20` and `stock_1` -> `None`).
    pub fn parse_shard_id(id: &str) -> Option<(CounterField, u32)> {
        let (key, n) = id.rsplit_once('_')?;
        let field = Self::ALL.into_iter().find(|f| f.key() == key)?;
        let n: u32 = n.parse().ok()?;
        (n < field.shards() && field.shard_id(n) == id).then_some((field, n))
    }

    /// Whether the counter counts distinct (item, user) markers, and so must never go below 0.
    pub const fn is_membership(self) -> bool {
        matches!(self, Self::Likes | Self::Followers | Self::Views | Self::StoryViews)
    }
}

/// The shard an increment touches, from a uniform draw in `[0, 1)`.
pub fn pick_shard(field: CounterField, draw: f64) -> u32 {
    let n = field.shards();
    let draw = if draw.is_finite() { draw.clamp(0.0, 1.0) } else { 0.0 };
    // Truncation is the intent: [0, 1) maps onto 0..n.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let shard = (draw * f64::from(n)) as u32;
    shard.min(n - 1)
}

/// The total of a counter's shards; a total below 0 (only possible from data written outside
/// these rules) reads as 0.
pub fn total(shards: impl IntoIterator<Item = i64>) -> u64 {
    let sum = shards.into_iter().fold(0i64, i64::saturating_add);
    u64::try_from(sum).unwrap_or(0)
}

/// Whether a user wants the marker set (like, follow, view) or cleared (unlike, unfollow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Like / follow / view.
    Set,
    /// Unlike / unfollow.
    Clear,
}

/// What a membership request does, given whether the marker exists now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipOutcome {
    /// Write the marker (`Some(true)`), delete it (`Some(false)`) or leave it (`None`).
    pub marker: Option<bool>,
    /// Amount added to the counter: +1, -1 or 0.
    pub delta: i64,
}

/// Decides a membership request: only a real change of the marker moves the counter, so
/// repeating any request changes nothing and the count never drops below zero.
pub fn membership(request: Membership, marker_exists: bool) -> MembershipOutcome {
    match (request, marker_exists) {
        (Membership::Set, false) => MembershipOutcome { marker: Some(true), delta: 1 },
        (Membership::Clear, true) => MembershipOutcome { marker: Some(false), delta: -1 },
        (Membership::Set, true) | (Membership::Clear, false) => {
            MembershipOutcome { marker: None, delta: 0 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shard_ids_round_trip_and_strangers_are_refused() {
        for field in CounterField::ALL {
            for n in [0, field.shards() - 1] {
                assert_eq!(CounterField::parse_shard_id(&field.shard_id(n)), Some((field, n)));
            }
            assert_eq!(CounterField::parse_shard_id(&field.shard_id(field.shards())), None);
        }
        assert_eq!(
            CounterField::parse_shard_id("story_views_49"),
            Some((CounterField::StoryViews, 49))
        );
        for stranger in ["3", "stock_1", "likes", "likes_", "likes_03", "likes_-1", "_likes_1"] {
            assert_eq!(CounterField::parse_shard_id(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn shard_counts_follow_the_seed() {
        assert_eq!(CounterField::Likes.shards(), 20);
        assert_eq!(CounterField::Views.shards(), 50);
        assert_eq!(CounterField::Shares.shards(), 10);
        assert_eq!(CounterField::StoryViews.shards(), 50);
        assert_eq!(CounterField::Followers.shards(), 20);
    }

    #[test]
    fn membership_is_idempotent() {
        assert_eq!(
            membership(Membership::Set, false),
            MembershipOutcome { marker: Some(true), delta: 1 }
        );
        assert_eq!(membership(Membership::Set, true).delta, 0);
        assert_eq!(
            membership(Membership::Clear, true),
            MembershipOutcome { marker: Some(false), delta: -1 }
        );
        assert_eq!(membership(Membership::Clear, false).delta, 0);
    }

    #[test]
    fn totals_never_read_negative() {
        assert_eq!(total([1, 2, -1]), 2);
        assert_eq!(total([-3, 1]), 0);
        assert_eq!(total([]), 0);
    }

    proptest! {
        #[test]
        fn draws_land_on_a_valid_shard(draw in proptest::num::f64::ANY) {
            for field in CounterField::ALL {
                prop_assert!(pick_shard(field, draw) < field.shards());
            }
        }

        #[test]
        fn any_request_sequence_counts_the_final_membership(requests in proptest::collection::vec(any::<bool>(), 0..50)) {
            let (mut exists, mut count) = (false, 0i64);
            for set in requests {
                let outcome = membership(if set { Membership::Set } else { Membership::Clear }, exists);
                if let Some(now) = outcome.marker { exists = now; }
                count += outcome.delta;
                prop_assert!(count >= 0);
                prop_assert_eq!(count, i64::from(exists));
            }
        }
    }
}
