//! `followVendor` / `unfollowVendor` (backfill and removal of the vendor's posts in the
//! caller's feed) and `likePost` / `unlikePost` / `recordView` on the idempotent sharded
//! counters: repeating any of them changes nothing.

use axum::extract::State;
use chrono::Utc;
use domain::counters::{CounterField, Membership};
use domain::feed::{FeedSource, feed_item};
use gcp::callable::Code;
use runtime::Error;
use runtime::trigger::{Callable, CallableResult};
use serde::{Deserialize, Serialize};
use store::{counters, paths};
use ts_rs::TS;

use super::{store_error, valid_id};
use crate::payments::limits;
use crate::{AppState, SignedIn};

/// `followVendor` / `unfollowVendor` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct VendorRequest {
    vendor_id: String,
}

/// `likePost` / `unlikePost` / `recordView` data.
#[derive(Debug, Deserialize, TS)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PostRequest {
    post_id: String,
}

/// The marker of a like or a view: who and when.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Marker<'a> {
    uid: &'a str,
    post_id: &'a str,
    at: String,
}

/// `followVendor`.
#[derive(Debug, Serialize, TS)]
#[ts(rename = "FollowVendorResult")]
pub(crate) struct Followed {
    /// Recent posts of the vendor copied into the caller's feed.
    backfilled: usize,
    following: bool,
}

/// `unfollowVendor`.
#[derive(Debug, Serialize, TS)]
#[ts(rename = "UnfollowVendorResult")]
pub(crate) struct Unfollowed {
    following: bool,
    /// The vendor's entries removed from the caller's feed.
    removed: usize,
}

/// `likePost` / `unlikePost`.
#[derive(Debug, Serialize, TS)]
#[ts(rename = "LikeResult")]
pub(crate) struct Liked {
    /// False when the call changed nothing (a repeated like or unlike).
    changed: bool,
    liked: bool,
    /// The post's like count.
    likes: u64,
}

/// `recordView`.
#[derive(Debug, Serialize, TS)]
#[ts(rename = "RecordViewResult")]
pub(crate) struct Viewed {
    /// False when this user's view of the post was already counted.
    counted: bool,
}

/// `followVendor({vendorId})` -> `{following: true, backfilled}`.
pub(crate) async fn follow_vendor(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<VendorRequest>,
) -> Result<CallableResult<Followed>, Error> {
    valid_id("vendorId", &request.vendor_id)?;
    if request.vendor_id == who.uid {
        return Err(Error::reject(Code::InvalidArgument, "you cannot follow yourself"));
    }
    limits::check(&state, &who.uid, "followVendor").await?;
    let db = &state.db;
    store::feed::Feeds::new(db)
        .follow(&who.uid, &request.vendor_id, Utc::now())
        .await
        .map_err(store_error)?;
    state.feed.follows_changed(&who.uid);
    // Always backfill (idempotent writes): a retry after a failed backfill completes it.
    let feed = &state.feed;
    let recent = store::feed::Feeds::new(db)
        .recent_posts(std::slice::from_ref(&request.vendor_id), feed.config.backfill_posts)
        .await
        .map_err(store_error)?;
    let items: Vec<_> = recent
        .iter()
        .map(|(id, post)| feed_item(id, post, &feed.config.policy, FeedSource::Following))
        .filter(|item| item.expires_at > Utc::now())
        .collect();
    feed.fanout.write_items(&who.uid, &items).await.map_err(store_error)?;
    // Write, then re-check the follow edge (the fan-out's argument, `store::feed::Fanout::add`):
    // an unfollow that deleted the edge while we backfilled may have run its removal before
    // our writes landed; seen gone here, we remove the vendor's entries ourselves.
    let edge = paths::follow(&request.vendor_id, &who.uid).map_err(|e| store_error(e.into()))?;
    if !counters::Counters::new(db).has_marker(&edge).await.map_err(store_error)? {
        feed.fanout.remove_vendor(&who.uid, &request.vendor_id).await.map_err(store_error)?;
        return Ok(CallableResult(Followed { following: false, backfilled: 0 }));
    }
    Ok(CallableResult(Followed { following: true, backfilled: items.len() }))
}

/// `unfollowVendor({vendorId})` -> `{following: false, removed}`.
pub(crate) async fn unfollow_vendor(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(request): Callable<VendorRequest>,
) -> Result<CallableResult<Unfollowed>, Error> {
    valid_id("vendorId", &request.vendor_id)?;
    limits::check(&state, &who.uid, "unfollowVendor").await?;
    store::feed::Feeds::new(&state.db)
        .unfollow(&who.uid, &request.vendor_id)
        .await
        .map_err(store_error)?;
    state.feed.follows_changed(&who.uid);
    let stats =
        state.feed.fanout.remove_vendor(&who.uid, &request.vendor_id).await.map_err(store_error)?;
    Ok(CallableResult(Unfollowed { following: false, removed: stats.written }))
}

/// Sets or clears the caller's marker on an existing, active post (`callable` names the
/// rate limit counted).
async fn mark(
    state: &AppState,
    who: &SignedIn,
    PostRequest { post_id }: PostRequest,
    (callable, field, request): (&'static str, CounterField, Membership),
) -> Result<(String, bool), Error> {
    valid_id("postId", &post_id)?;
    limits::check(state, &who.uid, callable).await?;
    let db = &state.db;
    let post = store::feed::Feeds::new(db).post(&post_id).await.map_err(store_error)?;
    if !post.is_some_and(|p| p.active) {
        return Err(Error::reject(Code::NotFound, "no such post"));
    }
    let marker = match field {
        CounterField::Views => paths::post_view(&post_id, &who.uid),
        _ => paths::post_like(&post_id, &who.uid),
    }
    .map_err(|e| store_error(e.into()))?;
    let counted = paths::post(&post_id).map_err(|e| store_error(e.into()))?;
    let value = Marker { uid: &who.uid, post_id: &post_id, at: Utc::now().to_rfc3339() };
    let outcome = counters::Counters::new(db)
        .set_membership(&marker, &counted, field, request, &value)
        .await
        .map_err(store_error)?;
    Ok((post_id, outcome.delta != 0))
}

async fn likes(state: &AppState, post_id: &str) -> Result<u64, Error> {
    let counted = paths::post(post_id).map_err(|e| store_error(e.into()))?;
    counters::Counters::new(&state.db)
        .read(&counted, CounterField::Likes)
        .await
        .map_err(store_error)
}

/// `likePost({postId})` -> `{liked: true, changed, likes}`.
pub(crate) async fn like_post(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(post): Callable<PostRequest>,
) -> Result<CallableResult<Liked>, Error> {
    let (post_id, changed) =
        mark(&state, &who, post, ("likePost", CounterField::Likes, Membership::Set)).await?;
    let likes = likes(&state, &post_id).await?;
    Ok(CallableResult(Liked { liked: true, changed, likes }))
}

/// `unlikePost({postId})` -> `{liked: false, changed, likes}`.
pub(crate) async fn unlike_post(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(post): Callable<PostRequest>,
) -> Result<CallableResult<Liked>, Error> {
    let (post_id, changed) =
        mark(&state, &who, post, ("unlikePost", CounterField::Likes, Membership::Clear)).await?;
    let likes = likes(&state, &post_id).await?;
    Ok(CallableResult(Liked { liked: false, changed, likes }))
}

/// `recordView({postId})` -> `{counted}`: unique viewers (a user counts once per post).
pub(crate) async fn record_view(
    State(state): State<AppState>,
    who: SignedIn,
    Callable(post): Callable<PostRequest>,
) -> Result<CallableResult<Viewed>, Error> {
    let (_, counted) =
        mark(&state, &who, post, ("recordView", CounterField::Views, Membership::Set)).await?;
    Ok(CallableResult(Viewed { counted }))
}
