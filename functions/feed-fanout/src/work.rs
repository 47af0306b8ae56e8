//! The steps shared by the event and task handlers: run a range of the fan-out (or a round of
//! removal) and hand the rest on as a `fanout-tasks` message, plus the ledger and error
//! plumbing.

use anyhow::anyhow;
use bus::Attributes;
use domain::feed::{FeedItem, FeedSource, PostFacts, feed_item};
use domain::messages::{FanoutAction, FanoutTask, FanoutTasks, FollowerCursor, Version};
use runtime::Error;
use serde::Serialize;
use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;
use store::feed::RunEnd;
use store::ledger::Outcome;

use crate::AppState;

/// What one invocation did, saved in the ledger and logged.
pub(crate) fn summary(action: &str, stats: &store::feed::RunStats, handed_off: bool) -> Value {
    json!({
        "action": action,
        "entries": stats.written,
        "pages": stats.pages,
        "handed_off": handed_off,
    })
}

/// The feed entry of a post as it is now.
pub(crate) fn item(state: &AppState, post_id: &str, post: &PostFacts) -> FeedItem {
    feed_item(post_id, post, &state.policy, FeedSource::Following)
}

/// Writes `item` for the followers in (`start_after`, `end_at`], handing the rest on; then
/// reads the post again and, when it is gone or inactive, removes it from every feed instead of
/// handing on ("write, then re-check").
///
/// Why the re-check closes the race with a deletion (or deactivation) D of the post:
/// - the removal that D triggers (its Eventarc event, then `fanout-tasks` continuations) runs
///   its collection-group query (`postId == X` over `posts`) after D committed;
/// - every feed write of this range was committed (or failed) before `fanout.add` returned,
///   so before our re-check read of the post (Firestore reads are strongly consistent);
/// - if the re-check sees the post active, it was read before D committed, so all our writes
///   were committed before D and the removal's query, which comes after D, sees them all;
/// - if the re-check sees the post gone or inactive, our own removal queries after the
///   re-check, so after every one of our writes, and sees them all.
///
/// Either way no entry written here outlives the removal. Nothing is handed on in the second
/// case, and a continuation task already published checks the post before writing and
/// re-checks after, so it is covered by the same argument. The re-check also runs when the
/// range failed part-way: writes that landed before the failure are covered too (the
/// redelivery would see the post gone and do nothing).
pub(crate) async fn add(
    state: &AppState,
    item: &FeedItem,
    start_after: Option<&FollowerCursor>,
    end_at: Option<&FollowerCursor>,
    max_pages: Option<u32>,
    attempt: u32,
) -> Result<Value, Error> {
    let written = state.fanout.add(item, start_after, end_at, max_pages).await;
    // Write, then re-check: the post as it is now, after every write of the range.
    let now = store::feed::Feeds::new(&state.db)
        .post(&item.post_id)
        .await
        .map_err(|e| store_failure(e, None))?
        .filter(|post| post.active);
    let Some(now) = now else {
        let entries = written.as_ref().map_or(0, |(_, stats)| stats.written);
        tracing::info!(post_id = %item.post_id, entries, "post gone during its fan-out: removing it");
        let removed = remove(state, &item.post_id, &item.vendor_id, max_pages, attempt).await?;
        return Ok(json!({
            "action": "add",
            "entries": entries,
            "handed_off": false,
            "post_gone_after_write": true,
            "removal": removed,
        }));
    };
    // The same re-check covers a change of the post's `expiresAt` during the range: its retime
    // may have queried the entries before some of ours landed with the old expiry. Seen here
    // (after all our writes), we retime every entry ourselves; not seen, the change committed
    // after our writes, so its own retime (which queries after it) finds them.
    let current = self::item(state, &item.post_id, &now);
    if current.expires_at != item.expires_at {
        tracing::info!(post_id = %item.post_id, "expiry changed during the fan-out: retiming");
        retime(state, &current, max_pages, attempt).await?;
    }
    let (end, stats) = written.map_err(|e| store_failure(e, None))?;
    let handed_off = match end {
        RunEnd::Done => false,
        RunEnd::HandOff(next) => {
            let task = FanoutTask {
                v: Version,
                action: FanoutAction::Add,
                post_id: item.post_id.clone(),
                vendor_id: item.vendor_id.clone(),
                start_after: next,
                end_at: end_at.cloned(),
                page_size: state.policy.page_size,
                attempt: attempt.saturating_add(1),
            };
            publish(state, &task).await?;
            true
        }
    };
    tracing::info!(post_id = %item.post_id, entries = stats.written, pages = stats.pages, handed_off, elapsed = ?stats.elapsed, "fan-out range written");
    Ok(summary("add", &stats, handed_off))
}

/// Rewrites the expiry of every feed entry of the post to `item.expires_at` for at most
/// `max_pages` pages, handing the rest on; then reads the post again and, when its expiry has
/// changed once more meanwhile, goes again with the new one ("write, then re-check").
///
/// Why every entry ends with the post's last expiry: let C be the last change of `expiresAt`
/// (committed at time t). Its event's handler reads the post after t, so it rewrites with the
/// final value, with queries that run after t. A writer of a stale value (an older retime, a
/// fan-out that computed its entries before C) re-reads the post after its writes: if that read
/// is after t, it sees the final value and retimes again itself; if before t, its writes were
/// committed before t, so before C's handler queries, which find and fix them. Updates require
/// the entry to exist, so an entry removed meanwhile (unfollow, deletion) is not recreated.
pub(crate) async fn retime(
    state: &AppState,
    item: &FeedItem,
    max_pages: Option<u32>,
    attempt: u32,
) -> Result<Value, Error> {
    let mut item = item.clone();
    let mut total = store::feed::RunStats::default();
    // Each round is triggered by another change of the post seen by the re-check; a post
    // re-timed this often within one delivery is left to the events of its later changes.
    for _ in 0..3 {
        let (end, stats) =
            state.fanout.retime(&item, max_pages).await.map_err(|e| store_failure(e, None))?;
        total.written += stats.written;
        total.pages += stats.pages;
        if end != RunEnd::Done {
            let task = FanoutTask {
                v: Version,
                action: FanoutAction::Retime,
                post_id: item.post_id.clone(),
                vendor_id: item.vendor_id.clone(),
                start_after: None,
                end_at: None,
                page_size: state.policy.page_size,
                attempt: attempt.saturating_add(1),
            };
            publish(state, &task).await?;
            return Ok(summary("retime", &total, true));
        }
        let now = store::feed::Feeds::new(&state.db)
            .post(&item.post_id)
            .await
            .map_err(|e| store_failure(e, None))?
            .filter(|post| post.active);
        // Gone or inactive: its removal deletes the entries; nothing to retime.
        let Some(now) = now else { break };
        let current = self::item(state, &item.post_id, &now);
        if current.expires_at == item.expires_at {
            break;
        }
        item = current;
    }
    tracing::info!(post_id = %item.post_id, entries = total.written, "feed entries retimed");
    Ok(summary("retime", &total, false))
}

/// Removes `post_id` from feeds for at most `max_pages` pages, handing the rest on.
pub(crate) async fn remove(
    state: &AppState,
    post_id: &str,
    vendor_id: &str,
    max_pages: Option<u32>,
    attempt: u32,
) -> Result<Value, Error> {
    let (end, stats) =
        state.fanout.remove(post_id, max_pages).await.map_err(|e| store_failure(e, None))?;
    let handed_off = end != RunEnd::Done;
    if handed_off {
        let task = FanoutTask {
            v: Version,
            action: FanoutAction::Remove,
            post_id: post_id.to_owned(),
            vendor_id: vendor_id.to_owned(),
            start_after: None,
            end_at: None,
            page_size: state.policy.page_size,
            attempt: attempt.saturating_add(1),
        };
        publish(state, &task).await?;
    }
    tracing::info!(%post_id, entries = stats.written, handed_off, "feed entries removed");
    Ok(summary("remove", &stats, handed_off))
}

async fn publish(state: &AppState, task: &FanoutTask) -> Result<(), Error> {
    match state.bus.publish::<FanoutTasks>(task, Attributes::new()).await {
        Ok(_) => Ok(()),
        // Whatever the cause, this delivery is redone (idempotently) from its start.
        Err(error) => Err(Error::retry(
            anyhow::Error::new(error).context("publishing a fan-out continuation"),
        )),
    }
}

/// Runs `work` once in effect per `key` in `scope` (payload `payload`, whose serde form is
/// fingerprinted): `Ok(Some(summary))` when it ran now, `Ok(None)` when it ran before. Every
/// step is idempotent, so an outcome that cannot be saved only means a later redelivery redoes
/// the work.
pub(crate) async fn once<P, F, Fut>(
    state: &AppState,
    scope: &str,
    key: &str,
    payload: &P,
    work: F,
) -> Result<Option<Value>, Error>
where
    P: Serialize + ?Sized,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let outcome = state
        .ledger
        .run_once(scope, key, payload, state.lease, work)
        .await
        .map_err(|e| e.or_ledger(|e| store_failure(e, Some(key))))?;
    match outcome {
        Outcome::Ran(summary) => Ok(Some(summary)),
        Outcome::Replayed(_) => Ok(None),
        Outcome::Busy { retry_after } => Err(busy(key, retry_after)),
        Outcome::Conflict => Err(conflict(scope, key)),
    }
}

fn busy(key: &str, retry_after: Duration) -> Error {
    Error::busy(anyhow!("{key} is being processed by another delivery"), retry_after)
}

fn conflict(scope: &str, key: &str) -> Error {
    Error::permanent(
        "an event id was reused with a different payload",
        anyhow!("{scope} {key}: fingerprint differs from the first delivery"),
        Some(key.to_owned()),
    )
}

/// Retryable store failures ask for redelivery; the others can never succeed.
pub(crate) fn store_failure(error: store::Error, event_id: Option<&str>) -> Error {
    Error::for_event(error, "feed fan-out", event_id)
}
