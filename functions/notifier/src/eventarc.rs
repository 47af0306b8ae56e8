//! The Eventarc (Firestore) triggers.
//!
//! ```text
//! OIDC (runtime::auth::GoogleCaller)   forged / missing token -> 401
//! FirestoreEvent::from_http            malformed CloudEvent or data -> permanent (dead letter, 200)
//! POST /posts       posts/{postId} created, active: its first follower page (tasks::page); the
//!                   page key in the ledger makes a redelivery, or a duplicate chain, a replay
//! POST /followers   followers/{vendorId}:{buyerId} created: the vendor (ledger on the event id;
//!                   a burst within the collapse window shares one entry and one push)
//! POST /signals     users/{uid}/signals/{signalId} created by the pulse: that user (ledger on
//!                   the event id; the inbox id comes from the signal id, so a second event for
//!                   the same signal writes nothing new; open and close share a collapse key)
//! anything else (another document, a change that is not a creation) -> 204, nothing written
//! ```

use std::collections::BTreeMap;

use anyhow::anyhow;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::messages::{NotifyTask, Version};
use domain::notify::{Facts, NotificationKind};
use gcp::error::PublicError;
use gcp::eventarc::FirestoreEvent;
use http::{HeaderMap, StatusCode};
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde::{Deserialize, Serialize};
use store::pulse::SignalRecord;

use crate::AppState;
use crate::deliver::{self, Notice};
use crate::events::once;

fn decode(headers: &HeaderMap, body: Bytes) -> Result<FirestoreEvent, Error> {
    let ce_id = headers.get("ce-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    FirestoreEvent::from_http(headers, body).map_err(|error| {
        let reason = format!("undecodable document event: {}", error.public_message());
        Error::permanent(reason, error, ce_id)
    })
}

/// The new document of a creation; `None` for an update, a deletion or an event without data
/// (each handler notifies on creations only: an edit notifies nobody again).
fn created(event: &FirestoreEvent) -> Option<&gcp::firestore::FirestoreDocument> {
    let data = event.data.as_ref()?;
    match (&data.old_value, &data.value) {
        (None, Some(doc)) => Some(doc),
        _ => None,
    }
}

fn not_ours(event: &FirestoreEvent, what: &str) -> Error {
    Error::permanent(
        format!("the event is not about a {what}"),
        anyhow!("document {:?}", event.document_path()),
        Some(event.id.clone()),
    )
}

/// The post fields a notification reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostFields {
    vendor_id: String,
    #[serde(default)]
    is_active: bool,
}

/// `POST /posts`.
pub(crate) async fn post_created(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let event = decode(&headers, body)?;
    let Some(post_id) = event.document_path().and_then(store::paths::post_id_of) else {
        return Err(not_ours(&event, "post"));
    };
    // A creation only: an edit of a post notifies nobody again.
    let Some(doc) = created(&event) else { return Ok(StatusCode::NO_CONTENT) };
    let Ok(fields) = doc.deserialize::<PostFields>() else {
        tracing::warn!(%post_id, "post without vendorId: nobody to notify");
        return Ok(StatusCode::NO_CONTENT);
    };
    if !fields.is_active || store::paths::vendor(&fields.vendor_id).is_err() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let task = NotifyTask {
        v: Version,
        post_id: post_id.to_owned(),
        vendor_id: fields.vendor_id,
        start_after: None,
        page_size: state.config.page_size,
        page: 0,
    };
    if let Some(summary) = crate::tasks::page(&state, &task).await? {
        tracing::info!(event_id = %event.id, %post_id, %summary, "new post: first page notified");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The follow fields a notification reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FollowFields {
    vendor_id: String,
    buyer_id: String,
}

#[derive(Serialize)]
struct FollowPayload<'a> {
    vendor_id: &'a str,
    buyer_id: &'a str,
}

/// `POST /followers`.
pub(crate) async fn follower_created(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let event = decode(&headers, body)?;
    if event.document_path().and_then(store::paths::follower_id_of).is_none() {
        return Err(not_ours(&event, "follow"));
    }
    let Some(doc) = created(&event) else { return Ok(StatusCode::NO_CONTENT) };
    let Ok(follow) = doc.deserialize::<FollowFields>() else {
        return Ok(StatusCode::NO_CONTENT);
    };
    if store::paths::user(&follow.vendor_id).is_err() || follow.vendor_id == follow.buyer_id {
        return Ok(StatusCode::NO_CONTENT);
    }
    let at: DateTime<Utc> = event.time.unwrap_or_else(Utc::now);
    let notice = Notice {
        kind: NotificationKind::NewFollower,
        subject: follow.vendor_id.clone(),
        event_id: event.id.clone(),
        facts: Facts::NewFollower { follower_id: follow.buyer_id.clone() },
        data: BTreeMap::from([("vendorId".to_owned(), follow.vendor_id.clone())]),
        actor: Some(follow.buyer_id.clone()),
        at,
    };
    let payload = FollowPayload { vendor_id: &follow.vendor_id, buyer_id: &follow.buyer_id };
    let vendor = follow.vendor_id.clone();
    let summary = once(&state, "eventarc:followers:notify", &event.id, &payload, || async {
        let stats = deliver::notify(&state, &notice, &[vendor]).await?;
        Ok(serde_json::to_value(stats).unwrap_or_default())
    })
    .await?;
    if let Some(summary) = summary {
        tracing::info!(event_id = %event.id, %summary, "new follower notified");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /signals`: a strategy of the user opened or closed a shadow trade. The pulse creates
/// the signal in the same commit as the trade, so the document is the outbox: no signal is
/// lost between the trade and its notification.
pub(crate) async fn signal_created(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let event = decode(&headers, body)?;
    let Some((uid, signal_id)) = event.document_path().and_then(store::paths::signal_of) else {
        return Err(not_ours(&event, "trade signal"));
    };
    let (uid, signal_id) = (uid.to_owned(), signal_id.to_owned());
    let Some(doc) = created(&event) else { return Ok(StatusCode::NO_CONTENT) };
    let signal: SignalRecord = doc.deserialize().map_err(|error| {
        Error::permanent("a signal without the pulse's fields", error, Some(event.id.clone()))
    })?;
    // The document's path names whose signal it is; a body naming someone else is not the
    // pulse's (it writes both from one trade).
    if signal.uid != uid {
        return Err(Error::permanent(
            "the signal names another user than its path",
            anyhow!("{signal_id}: path user {uid}, field user {}", signal.uid),
            Some(event.id.clone()),
        ));
    }
    let notice = Notice {
        kind: NotificationKind::TradeSignal,
        subject: signal.trade_id.clone(),
        event_id: signal_id.clone(),
        facts: Facts::TradeSignal {
            strategy_id: signal.strategy_id.clone(),
            trade_id: signal.trade_id.clone(),
            action: signal.action.clone(),
            reason: signal.reason.clone(),
            price: signal.price,
            live_requested: signal.execution == "live_requested",
        },
        data: BTreeMap::from([
            ("tradeId".to_owned(), signal.trade_id.clone()),
            ("strategyId".to_owned(), signal.strategy_id.clone()),
            ("signalId".to_owned(), signal_id.clone()),
        ]),
        actor: None,
        at: signal.minute,
    };
    let summary = once(&state, "eventarc:signals:notify", &event.id, &signal, || async {
        let stats = deliver::notify(&state, &notice, &[uid]).await?;
        Ok(serde_json::to_value(stats).unwrap_or_default())
    })
    .await?;
    if let Some(summary) = summary {
        tracing::info!(event_id = %event.id, %signal_id, %summary, "trade signal notified");
    }
    Ok(StatusCode::NO_CONTENT)
}
