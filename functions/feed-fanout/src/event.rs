//! `POST /`: Eventarc Firestore events on `posts/{postId}`.
//!
//! ```text
//! OIDC (runtime::auth::GoogleCaller)         forged / missing token -> 401
//! FirestoreEvent::from_http                  malformed CloudEvent or data -> permanent (dead letter, 200)
//! document must be posts/{postId}            anything else -> permanent
//! domain::feed::classify(old, new)           Nothing -> 204 (no write at all)
//! Ledger::run_once (CloudEvent id)           replayed -> 204 | busy -> 409 + Retry-After | conflict -> permanent
//! domain::feed::event_action on the post now Add: gone/inactive -> nothing; high-follower vendor -> nothing
//!                                            (merged at read time); else the first pages inline, the rest
//!                                            as fanout-tasks, after re-reading the post (gone or
//!                                            inactive by then -> removed instead, see work::add).
//!                                            Remove: active again -> nothing; else delete
//!                                            from every feed (the rest as fanout-tasks).
//!                                            Retime (an active post's expiresAt changed):
//!                                            rewrite every entry's expiresAt/ttlAt to the post's
//!                                            current expiry, then re-check (work::retime).
//! ```
//! The event only triggers: Eventarc does not order deliveries, so acting on the current post
//! makes a late "created" after a "deleted" harmless, and the reverse.

use anyhow::anyhow;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::feed::{Change, PostAction, PostFacts, Skip, classify, event_action, is_high_follower};
use gcp::error::PublicError;
use gcp::eventarc::FirestoreEvent;
use gcp::firestore::FirestoreDocument;
use http::{HeaderMap, StatusCode};
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::work::{self, store_failure};

/// The idempotency scope of post events (the key is the CloudEvent id).
// `v2` since fingerprints hash the payload's serde JSON ([`store::ledger::fingerprint`]): records
// of the former format are not consulted, so a redelivery across that deploy redoes its
// (idempotent) fan-out instead of being dead-lettered as a conflict.
pub const SCOPE: &str = "eventarc:posts:v2";

/// What an event id stands for in the ledger.
#[derive(Serialize)]
struct EventPayload<'a> {
    event_type: String,
    post_id: &'a str,
    change: &'a str,
}

/// The post fields the feed reads, as the event carries them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostFields {
    vendor_id: String,
    #[serde(default)]
    is_active: bool,
    created_at: DateTime<Utc>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    is_premium: bool,
}

fn facts(doc: &FirestoreDocument) -> Option<PostFacts> {
    let fields: PostFields = doc.deserialize().ok()?;
    Some(PostFacts {
        vendor_id: fields.vendor_id,
        active: fields.is_active,
        created_at: fields.created_at,
        expires_at: fields.expires_at,
        premium: fields.is_premium,
    })
}

pub(crate) async fn post_event(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let ce_id = headers.get("ce-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let event = FirestoreEvent::from_http(&headers, body).map_err(|error| {
        let reason = format!("undecodable post event: {}", error.public_message());
        Error::permanent(reason, error, ce_id.clone())
    })?;
    let post_id = match event.document_path().and_then(store::paths::post_id_of) {
        Some(id) => id.to_owned(),
        None => {
            return Err(Error::permanent(
                "the event is not about a posts/{postId} document",
                anyhow!("document {:?}", event.document_path()),
                Some(event.id),
            ));
        }
    };

    // Without data (Eventarc drops oversized payloads), the current post decides alone.
    let change = match &event.data {
        Some(data) => {
            let old = data.old_value.as_ref().and_then(facts);
            let new = data.value.as_ref().and_then(facts);
            if data.value.is_some() && new.is_none() {
                tracing::warn!(%post_id, "post without vendorId/createdAt: not a feed post");
            }
            classify(old.as_ref(), new.as_ref())
        }
        None => Change::Add,
    };
    if change == Change::Nothing {
        return Ok(StatusCode::NO_CONTENT);
    }

    // The ledger fingerprints this payload's serde JSON: the same event id with another type,
    // post or change is a conflict.
    let payload = EventPayload {
        event_type: event.event_type.to_string(),
        post_id: &post_id,
        change: change.as_str(),
    };
    let no_data = event.data.is_none();
    let Some(summary) = work::once(&state, SCOPE, &event.id, &payload, || {
        handle(&state, &post_id, change, no_data)
    })
    .await?
    else {
        return Ok(StatusCode::NO_CONTENT);
    };
    tracing::info!(event_id = %event.id, %post_id, %summary, "post event handled");
    Ok(StatusCode::NO_CONTENT)
}

async fn handle(
    state: &AppState,
    post_id: &str,
    change: Change,
    no_data: bool,
) -> Result<Value, Error> {
    let current = store::feed::Feeds::new(&state.db)
        .post(post_id)
        .await
        .map_err(|e| store_failure(e, None))?;
    let active = current.as_ref().filter(|p| p.active);
    match (event_action(change, active.is_some(), !no_data), active) {
        (PostAction::Add, Some(post)) => {
            // The aggregated `followerCount` (the number getFeed's read-time merge uses too, so
            // both sides agree on who is a high-follower vendor).
            let counts = store::feed::Feeds::new(&state.db)
                .follower_counts(std::slice::from_ref(&post.vendor_id))
                .await
                .map_err(|e| store_failure(e, None))?;
            let followers = counts.first().copied().unwrap_or(0);
            if is_high_follower(followers, &state.policy) {
                return Ok(
                    json!({"action": "none", "reason": "high-follower vendor: merged at read time", "followers": followers}),
                );
            }
            let item = work::item(state, post_id, post);
            work::add(state, &item, None, None, Some(state.policy.inline_pages), 0).await
        }
        (PostAction::Remove, _) => {
            let vendor = current.map(|p| p.vendor_id).unwrap_or_default();
            work::remove(state, post_id, &vendor, Some(state.policy.inline_pages), 0).await
        }
        (PostAction::Retime, Some(post)) => {
            let item = work::item(state, post_id, post);
            work::retime(state, &item, Some(state.policy.inline_pages), 0).await
        }
        (PostAction::Skip(skip), _) => Ok(skipped(skip)),
        // The table adds and retimes only an active post.
        (PostAction::Add | PostAction::Retime, None) => Ok(skipped(Skip::NoLongerActive)),
    }
}

/// The outcome of a post event or task that does nothing.
pub(crate) fn skipped(skip: Skip) -> Value {
    match skip.reason() {
        Some(reason) => json!({"action": "none", "reason": reason}),
        None => json!({"action": "none"}),
    }
}
