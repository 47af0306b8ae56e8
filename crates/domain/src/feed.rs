//! The feed rules, as pure code: which post changes fan out or are
//! removed, what a feed item holds (`postId`, `vendorId`, `createdAt`, `expiresAt`, `score`,
//! `source`), the hybrid threshold above which a vendor is merged at read time instead of
//! fanned out, how a fan-out is paced through pages and continuation tasks, and how a feed page
//! is merged with a stable cursor.
//!
//! Determinism is what makes every step safe to repeat: the feed item of a post is a function
//! of the post alone (the score uses the creation time and the premium flag, never the clock
//! or the engagement at delivery time), and its document id is the post id, so a redelivered
//! event or a re-run continuation task rewrites identical documents.

use std::cmp::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::messages::FanoutAction;

/// Where a feed entry came from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedSource {
    /// Fanned out (or backfilled) from a followed vendor.
    Following,
    /// Matched the user's interests.
    Interests,
    /// Trending posts used to fill a short feed.
    Trending,
}

/// What the feed rules need to know about a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostFacts {
    /// The vendor that wrote it.
    pub vendor_id: String,
    /// Whether it is visible (`isActive`).
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops being shown, if the post says so.
    pub expires_at: Option<DateTime<Utc>>,
    /// Premium posts rank higher.
    pub premium: bool,
}

/// One entry of a precomputed feed: `feeds/{buyerId}/posts/{postId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The post (also the document id, which makes writes idempotent).
    pub post_id: String,
    /// Its vendor.
    pub vendor_id: String,
    /// The post's creation time.
    pub created_at: DateTime<Utc>,
    /// When the entry stops being shown (and the TTL policy removes it).
    pub expires_at: DateTime<Utc>,
    /// Rank: higher first.
    pub score: i64,
    /// Where it came from.
    pub source: FeedSource,
}

/// The tunable numbers of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedPolicy {
    /// Followers read per page (and the seed's batch size).
    pub page_size: u32,
    /// Pages the event handler writes itself before handing the rest to a continuation task.
    pub inline_pages: u32,
    /// Time an invocation may spend on pages before it hands the rest on.
    pub time_budget: Duration,
    /// Vendors with at least this many followers are not fanned out (merged at read time).
    pub high_follower_threshold: u64,
    /// Lifetime of a feed entry whose post gives no `expiresAt`.
    pub default_ttl: Duration,
}

impl Default for FeedPolicy {
    /// 500 followers per page; 4 pages (2,000 followers) inline; 30 s per invocation (half of
    /// the 60 s request timeout); vendors from 100,000 followers on are merged at read time;
    /// entries live 7 days.
    fn default() -> Self {
        Self {
            page_size: 500,
            inline_pages: 4,
            time_budget: Duration::from_secs(30),
            high_follower_threshold: 100_000,
            default_ttl: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// What a post change means for the feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Write the post into its vendor's followers' feeds.
    Add,
    /// Remove the post from every feed that holds it.
    Remove,
    /// The post stays active but its `expiresAt` changed: rewrite the expiry (`expiresAt`,
    /// `ttlAt`) of every feed entry of it.
    Retime,
    /// Nothing to do (an edit of an active post, an inactive post created, ...).
    Nothing,
}

/// Classifies a post change from its state before (`old`) and after (`new`); `None` is "does
/// not exist". A post that becomes active fans out; one that is deleted or becomes inactive is
/// removed; an edit that keeps it active does nothing (counter aggregations update posts
/// often, and a re-fan-out would rewrite every feed each time), unless it changes the post's
/// `expiresAt`, which its feed entries copy (`Retime`).
pub fn classify(old: Option<&PostFacts>, new: Option<&PostFacts>) -> Change {
    let was_active = old.is_some_and(|p| p.active);
    match new {
        Some(post) if post.active && !was_active => Change::Add,
        Some(post) if post.active && old.is_some_and(|o| o.expires_at != post.expires_at) => {
            Change::Retime
        }
        Some(post) if post.active => Change::Nothing,
        Some(_) if was_active => Change::Remove,
        Some(_) => Change::Nothing,
        // Deleted: remove wherever it is (harmless when it never fanned out).
        None if old.is_some() => Change::Remove,
        None => Change::Nothing,
    }
}

impl Change {
    /// The change's name (`add`, `remove`, `retime`, `nothing`), as the event's idempotency
    /// fingerprint spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Add => "add",
            Change::Remove => "remove",
            Change::Retime => "retime",
            Change::Nothing => "nothing",
        }
    }
}

/// What to do about a post now. Events and tasks only trigger: Eventarc does not order
/// deliveries and tasks run late, so the post as it is now decides (a late "created" after a
/// "deleted" does nothing, and the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostAction {
    /// Write the post into its vendor's followers' feeds (unless the vendor is high-follower).
    Add,
    /// Delete the post's entries from every feed.
    Remove,
    /// Rewrite the expiry of every feed entry of the post to the post's current one.
    Retime,
    /// Nothing to do, and why.
    Skip(Skip),
}

/// Why a post event or task does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// An addition or retiming of a post that is gone or inactive now (its removal handles the
    /// feeds).
    NoLongerActive,
    /// A removal of a post that is active again.
    ActiveAgain,
    /// The change means nothing for the feeds.
    NoChange,
}

impl Skip {
    /// The reason logged with the outcome; `None` for [`Skip::NoChange`].
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Skip::NoLongerActive => Some("the post is no longer active"),
            Skip::ActiveAgain => Some("the post is active again"),
            Skip::NoChange => None,
        }
    }
}

/// The action table of a post event: its `change` (from [`classify`], or [`Change::Add`] when
/// the event carried no data), whether the post is active now, and whether the event carried
/// the post's data. Without data the current post decides alone: active means add, gone or
/// inactive means remove.
pub fn event_action(change: Change, active_now: bool, event_had_data: bool) -> PostAction {
    match (change, active_now) {
        (Change::Add, true) => PostAction::Add,
        (Change::Add, false) if event_had_data => PostAction::Skip(Skip::NoLongerActive),
        (Change::Add | Change::Remove, false) => PostAction::Remove,
        (Change::Remove, true) => PostAction::Skip(Skip::ActiveAgain),
        // Every vendor's posts, high-follower ones included: follows backfill their entries.
        (Change::Retime, true) => PostAction::Retime,
        (Change::Retime, false) => PostAction::Skip(Skip::NoLongerActive),
        (Change::Nothing, _) => PostAction::Skip(Skip::NoChange),
    }
}

/// The action table of a continuation task (`fanout-tasks`): its action goes on only while the
/// post is in the state the action needs (active for add and retime, gone or inactive for
/// remove), exactly as a post event with data would decide.
pub fn task_action(action: FanoutAction, active_now: bool) -> PostAction {
    let change = match action {
        FanoutAction::Add => Change::Add,
        FanoutAction::Remove => Change::Remove,
        FanoutAction::Retime => Change::Retime,
    };
    event_action(change, active_now, true)
}

/// Rank of a post: its creation time in milliseconds, plus a day for premium posts. Only facts
/// fixed at creation count, so a redelivery computes the same score and a cursor on scores
/// stays stable.
pub fn score(post: &PostFacts) -> i64 {
    const PREMIUM_BOOST_MS: i64 = 24 * 60 * 60 * 1000;
    let base = post.created_at.timestamp_millis();
    if post.premium { base.saturating_add(PREMIUM_BOOST_MS) } else { base }
}

/// The feed entry of `post_id` for any follower.
pub fn feed_item(
    post_id: &str,
    post: &PostFacts,
    policy: &FeedPolicy,
    source: FeedSource,
) -> FeedItem {
    let ttl = TimeDelta::from_std(policy.default_ttl).unwrap_or(TimeDelta::MAX);
    FeedItem {
        post_id: post_id.to_owned(),
        vendor_id: post.vendor_id.clone(),
        created_at: post.created_at,
        expires_at: post.expires_at.unwrap_or_else(|| {
            post.created_at.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC)
        }),
        score: score(post),
        source,
    }
}

/// Whether a vendor with `followers` followers is served by read-time merge (no fan-out).
pub fn is_high_follower(followers: u64, policy: &FeedPolicy) -> bool {
    followers >= policy.high_follower_threshold
}

/// What to do after a page of followers was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read and write the next page.
    NextPage,
    /// Every follower in range has the post.
    Done,
    /// Stop here and publish a continuation task for the rest of the range.
    HandOff,
}

/// Where a fan-out run stands after a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Followers in the page just written.
    pub page_len: u32,
    /// Whether the page reached the end of the task's range (its `end_at`).
    pub reached_end: bool,
    /// Pages written by this invocation so far (this one included).
    pub pages_done: u32,
    /// Time spent by this invocation so far.
    pub elapsed: Duration,
}

/// Decides the next step: done when the range is exhausted (a short page or the range end),
/// hand off when this invocation used its page allowance (`max_pages`, `None` = no limit) or
/// its time budget, otherwise the next page.
pub fn next_step(progress: Progress, policy: &FeedPolicy, max_pages: Option<u32>) -> Step {
    if progress.reached_end || progress.page_len < policy.page_size {
        return Step::Done;
    }
    let out_of_pages = max_pages.is_some_and(|max| progress.pages_done >= max);
    if out_of_pages || progress.elapsed >= policy.time_budget {
        Step::HandOff
    } else {
        Step::NextPage
    }
}

/// A feed position: entries are ordered by score, then post id, both descending. A cursor names
/// the last entry returned; the next page starts strictly after it. New posts have higher
/// scores, so they appear before any cursor already handed out and never shift a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCursor {
    /// Score of the last entry returned.
    pub score: i64,
    /// Post id of the last entry returned.
    pub post_id: String,
}

impl FeedCursor {
    /// The cursor as an opaque string for clients (`{score}:{postId}`).
    pub fn encode(&self) -> String {
        format!("{}:{}", self.score, self.post_id)
    }

    /// Parses [`encode`](Self::encode)'s output; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (score, post_id) = text.split_once(':')?;
        if post_id.is_empty() {
            return None;
        }
        Some(Self { score: score.parse().ok()?, post_id: post_id.to_owned() })
    }

    /// Whether `item` comes strictly after this cursor in feed order.
    pub fn is_before(&self, item: &FeedItem) -> bool {
        feed_order(&self.score, &self.post_id, &item.score, &item.post_id) == Ordering::Less
    }
}

fn feed_order(a_score: &i64, a_id: &str, b_score: &i64, b_id: &str) -> Ordering {
    b_score.cmp(a_score).then_with(|| b_id.cmp(a_id))
}

/// One page of a merged feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// Entries in feed order, at most the limit, no post twice.
    pub items: Vec<FeedItem>,
    /// Where the next page starts, when there may be more.
    pub next_cursor: Option<FeedCursor>,
}

/// Merges the precomputed entries with the read-time entries of high-follower vendors:
/// drops expired entries and those not after `cursor`, keeps each post once, orders by score
/// then post id (descending) and takes `limit`. `exhausted` says whether every source returned
/// fewer entries than asked; when one did not, the page names a next cursor even if expired
/// entries made it short.
pub fn merge_page(
    sources: Vec<Vec<FeedItem>>,
    cursor: Option<&FeedCursor>,
    now: DateTime<Utc>,
    limit: usize,
    exhausted: bool,
) -> FeedPage {
    let mut all: Vec<FeedItem> = sources
        .into_iter()
        .flatten()
        .filter(|item| item.expires_at > now)
        .filter(|item| cursor.is_none_or(|c| c.is_before(item)))
        .collect();
    all.sort_by(|a, b| feed_order(&a.score, &a.post_id, &b.score, &b.post_id));
    all.dedup_by(|a, b| a.post_id == b.post_id);
    let full = all.len() > limit;
    all.truncate(limit);
    let next_cursor = if full || !exhausted {
        all.last().map(|last| FeedCursor { score: last.score, post_id: last.post_id.clone() })
    } else {
        None
    };
    FeedPage { items: all, next_cursor }
}

/// Trending entries that fill a page short of `limit`, skipping posts already on it.
pub fn backfill(page: &FeedPage, trending: &[FeedItem], limit: usize) -> Vec<FeedItem> {
    let missing = limit.saturating_sub(page.items.len());
    trending
        .iter()
        .filter(|t| !page.items.iter().any(|i| i.post_id == t.post_id))
        .take(missing)
        .map(|t| FeedItem { source: FeedSource::Trending, ..t.clone() })
        .collect()
}

/// Largest page a client may ask for.
pub const MAX_FEED_LIMIT: usize = 50;
/// Page size when the client names none.
pub const DEFAULT_FEED_LIMIT: usize = 20;

/// The page size to serve for a client's `limit`.
pub fn clamp_limit(limit: Option<u64>) -> usize {
    match limit {
        None | Some(0) => DEFAULT_FEED_LIMIT,
        Some(n) => usize::try_from(n).unwrap_or(MAX_FEED_LIMIT).min(MAX_FEED_LIMIT),
    }
}

/// How long stories live.
pub const STORY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    fn post(active: bool) -> PostFacts {
        PostFacts {
            vendor_id: "v1".to_owned(),
            active,
            created_at: at(1_700_000_000),
            expires_at: None,
            premium: false,
        }
    }

    fn item(id: &str, score: i64, expires: i64) -> FeedItem {
        FeedItem {
            post_id: id.to_owned(),
            vendor_id: "v".to_owned(),
            created_at: at(0),
            expires_at: at(expires),
            score,
            source: FeedSource::Following,
        }
    }

    #[test]
    fn changes_are_classified() {
        let (on, off) = (post(true), post(false));
        assert_eq!(classify(None, Some(&on)), Change::Add);
        assert_eq!(classify(None, Some(&off)), Change::Nothing);
        assert_eq!(classify(Some(&off), Some(&on)), Change::Add);
        assert_eq!(classify(Some(&on), Some(&on)), Change::Nothing);
        assert_eq!(classify(Some(&on), Some(&off)), Change::Remove);
        assert_eq!(classify(Some(&off), Some(&off)), Change::Nothing);
        assert_eq!(classify(Some(&on), None), Change::Remove);
        assert_eq!(classify(Some(&off), None), Change::Remove);
        assert_eq!(classify(None, None), Change::Nothing);
        let mut later = on.clone();
        later.expires_at = Some(on.created_at + TimeDelta::days(2));
        assert_eq!(classify(Some(&on), Some(&later)), Change::Retime);
        assert_eq!(classify(Some(&later), Some(&on)), Change::Retime);
        assert_eq!(classify(Some(&later), Some(&later)), Change::Nothing);
        let mut later_off = later.clone();
        later_off.active = false;
        assert_eq!(classify(Some(&on), Some(&later_off)), Change::Remove);
        assert_eq!(classify(Some(&off), Some(&later)), Change::Add);
    }

    #[test]
    fn items_are_deterministic() {
        let policy = FeedPolicy::default();
        let a = feed_item("p1", &post(true), &policy, FeedSource::Following);
        assert_eq!(a, feed_item("p1", &post(true), &policy, FeedSource::Following));
        assert_eq!(a.score, 1_700_000_000_000);
        assert_eq!(a.expires_at, at(1_700_000_000 + 7 * 86_400));
        let premium =
            PostFacts { premium: true, expires_at: Some(at(1_700_000_100)), ..post(true) };
        let b = feed_item("p1", &premium, &policy, FeedSource::Following);
        assert!(b.score > a.score);
        assert_eq!(b.expires_at, at(1_700_000_100));
    }

    #[test]
    fn hybrid_threshold() {
        let policy = FeedPolicy { high_follower_threshold: 10, ..FeedPolicy::default() };
        assert!(!is_high_follower(9, &policy));
        assert!(is_high_follower(10, &policy));
    }

    #[test]
    fn pacing_hands_off_past_the_threshold_or_budget() {
        let policy = FeedPolicy {
            page_size: 500,
            time_budget: Duration::from_secs(10),
            ..FeedPolicy::default()
        };
        let p = |page_len, reached_end, pages_done, secs| Progress {
            page_len,
            reached_end,
            pages_done,
            elapsed: Duration::from_secs(secs),
        };
        assert_eq!(next_step(p(500, false, 1, 0), &policy, Some(4)), Step::NextPage);
        assert_eq!(next_step(p(499, false, 1, 0), &policy, Some(4)), Step::Done);
        assert_eq!(next_step(p(500, true, 1, 0), &policy, Some(4)), Step::Done);
        assert_eq!(next_step(p(500, false, 4, 0), &policy, Some(4)), Step::HandOff);
        assert_eq!(next_step(p(500, false, 4, 0), &policy, None), Step::NextPage);
        assert_eq!(next_step(p(500, false, 1, 10), &policy, None), Step::HandOff);
        assert_eq!(next_step(p(500, true, 9, 99), &policy, Some(1)), Step::Done);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = FeedCursor { score: 42, post_id: "p:9".to_owned() };
        assert_eq!(FeedCursor::decode(&c.encode()), Some(c));
        for bad in ["", "x", "1:", "a:b", ":p"] {
            assert_eq!(FeedCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn pages_merge_dedupe_and_never_skip_or_repeat() {
        let now = at(100);
        let pre = vec![item("a", 50, 200), item("b", 40, 200), item("old", 45, 50)];
        let hot = vec![item("c", 45, 200), item("a", 50, 200)];
        let page = merge_page(vec![pre.clone(), hot.clone()], None, now, 2, false);
        let ids: Vec<_> = page.items.iter().map(|i| i.post_id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        let cursor = page.next_cursor.clone().unwrap();
        // A new post arrives between pages: it ranks above the cursor, the next page is unchanged.
        let mut pre2 = pre;
        pre2.insert(0, item("new", 60, 200));
        let next = merge_page(vec![pre2, hot], Some(&cursor), now, 2, true);
        let ids: Vec<_> = next.items.iter().map(|i| i.post_id.as_str()).collect();
        assert_eq!(ids, ["b"]);
        assert_eq!(next.next_cursor, None);
        // Ties on score are broken by post id.
        let tie = merge_page(vec![vec![item("x", 1, 200), item("y", 1, 200)]], None, now, 1, false);
        assert_eq!(tie.items[0].post_id, "y");
        let after = merge_page(
            vec![vec![item("x", 1, 200), item("y", 1, 200)]],
            tie.next_cursor.as_ref(),
            now,
            1,
            false,
        );
        assert_eq!(after.items[0].post_id, "x");
    }

    #[test]
    fn backfill_fills_only_the_gap() {
        let page = FeedPage { items: vec![item("a", 1, 9)], next_cursor: None };
        let trending = vec![item("a", 5, 9), item("t1", 4, 9), item("t2", 3, 9)];
        let fill = backfill(&page, &trending, 2);
        assert_eq!(fill.len(), 1);
        assert_eq!(fill[0].post_id, "t1");
        assert_eq!(fill[0].source, FeedSource::Trending);
    }

    #[test]
    fn limits_are_clamped() {
        assert_eq!(clamp_limit(None), DEFAULT_FEED_LIMIT);
        assert_eq!(clamp_limit(Some(0)), DEFAULT_FEED_LIMIT);
        assert_eq!(clamp_limit(Some(5)), 5);
        assert_eq!(clamp_limit(Some(10_000)), MAX_FEED_LIMIT);
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            Just(Change::Add),
            Just(Change::Remove),
            Just(Change::Retime),
            Just(Change::Nothing)
        ]
    }

    fn fanout_action() -> impl Strategy<Value = FanoutAction> {
        prop_oneof![Just(FanoutAction::Add), Just(FanoutAction::Remove), Just(FanoutAction::Retime)]
    }

    #[test]
    fn the_event_table() {
        use PostAction as A;
        let table = [
            (Change::Add, true, true, A::Add),
            (Change::Add, false, true, A::Skip(Skip::NoLongerActive)),
            (Change::Add, false, false, A::Remove),
            (Change::Add, true, false, A::Add),
            (Change::Remove, false, true, A::Remove),
            (Change::Remove, true, true, A::Skip(Skip::ActiveAgain)),
            (Change::Retime, true, true, A::Retime),
            (Change::Retime, false, true, A::Skip(Skip::NoLongerActive)),
            (Change::Nothing, true, true, A::Skip(Skip::NoChange)),
            (Change::Nothing, false, true, A::Skip(Skip::NoChange)),
        ];
        for (change, active, data, expected) in table {
            assert_eq!(event_action(change, active, data), expected, "{change:?} {active} {data}");
        }
        assert_eq!(Change::Retime.as_str(), "retime");
    }

    proptest! {
        /// Work is only ever done on a post in the state the work needs: fan-out and retiming
        /// of an active post, removal of a gone or inactive one.
        #[test]
        fn actions_follow_the_current_post(change in change(), active: bool, data: bool) {
            match event_action(change, active, data) {
                PostAction::Add | PostAction::Retime => prop_assert!(active),
                PostAction::Remove => prop_assert!(!active),
                PostAction::Skip(_) => {}
            }
        }

        /// A change that means nothing never does anything, active or not.
        #[test]
        fn nothing_does_nothing(active: bool, data: bool) {
            let action = event_action(Change::Nothing, active, data);
            prop_assert_eq!(action, PostAction::Skip(Skip::NoChange));
        }

        /// A task decides as the event with data that started it, and only continues its own
        /// action.
        #[test]
        fn tasks_continue_their_own_action(action in fanout_action(), active: bool) {
            let decided = task_action(action, active);
            let same = match decided {
                PostAction::Add => action == FanoutAction::Add,
                PostAction::Remove => action == FanoutAction::Remove,
                PostAction::Retime => action == FanoutAction::Retime,
                PostAction::Skip(skip) => skip != Skip::NoChange,
            };
            prop_assert!(same);
        }

        /// A classified change acted on the post it produced: an event with data never adds or
        /// retimes a post that its new state shows inactive.
        #[test]
        fn classify_then_act(
            old_active in proptest::option::of(any::<bool>()),
            new_active in proptest::option::of(any::<bool>()),
        ) {
            let old = old_active.map(post);
            let new = new_active.map(post);
            let change = classify(old.as_ref(), new.as_ref());
            let action = event_action(change, new_active == Some(true), true);
            if new_active != Some(true) {
                prop_assert!(!matches!(action, PostAction::Add | PostAction::Retime));
            }
            if new_active == Some(true) {
                prop_assert!(action != PostAction::Remove);
            }
        }
    }
}
