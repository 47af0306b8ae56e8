//! `POST /`: Eventarc Firestore events on `candles/{instrument}/{granularity}/{ts}`.
//!
//! ```text
//! OIDC (runtime::auth::GoogleCaller)        forged / missing token -> 401
//! FirestoreEvent::from_http                 malformed CloudEvent or data -> dead letter, 200
//! document must be a candle of a configured stream, its id a canonical time
//!                                           else -> dead letter (id candle:{i}:{g}:{ts}), 200
//! the new value: incomplete                 -> 204, nothing read or written
//!   complete, same values as the old one    -> 204, nothing read or written
//!   malformed or impossible prices          -> dead letter with the path and reason, 200
//!   deleted                                 -> the bar is removed and its neighbours recomputed
//! priority budgets (in memory)              over budget -> 429 + Retry-After (Eventarc redelivers)
//! Ledger::run_once (CloudEvent id)          replayed -> 204 | busy -> 409 | conflict -> dead letter
//! store::market::Market::apply              one transaction: the window read, the affected range
//!                                           recomputed, what differs written with the health doc
//! ```
//! A rewrite with identical values changes nothing twice over: the event's old and new values
//! are compared first, and `apply` compares with the stored bar.

use anyhow::anyhow;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::market::candle::parse_ts_id;
use domain::market::{Admission, Granularity, StreamKey};
use gcp::error::PublicError;
use gcp::eventarc::FirestoreEvent;
use http::{HeaderMap, StatusCode};
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde::Serialize;
use store::ledger::Outcome;
use store::market::{Applied, CandleChange, CandleDocument};

use crate::AppState;

/// The idempotency scope of candle events (the key is the CloudEvent id).
pub const SCOPE: &str = "eventarc:candles:v1";

/// The event id under which a candle is dead-lettered (the record is
/// `dead_letters/{service}-{id}`): one per candle, so a candle failing again overwrites its
/// record, and a replay knows which candle it names.
pub fn dead_letter_id(instrument: &str, granularity: &str, ts: &str) -> String {
    format!("candle:{instrument}:{granularity}:{ts}")
}

/// The candle document (relative path) a dead-letter id names.
pub(crate) fn candle_of_dead_letter(id: &str) -> Option<String> {
    let rest = id.strip_prefix("candle:")?;
    let (instrument, rest) = rest.split_once(':')?;
    let (granularity, ts) = rest.split_once(':')?;
    store::paths::candle(instrument, granularity, ts).ok().map(|p| p.relative())
}

/// What an event id stands for in the ledger: the candle and its values (`None`: deleted).
#[derive(Serialize)]
struct EventPayload<'a> {
    path: &'a str,
    candle: Option<&'a domain::market::Candle>,
}

/// The candle a document names, checked against the configuration.
pub(crate) struct Named {
    pub(crate) key: StreamKey,
    pub(crate) ts: DateTime<Utc>,
    pub(crate) ts_id: String,
    pub(crate) path: String,
    pub(crate) dead_letter: String,
}

/// Resolves `candles/{instrument}/{granularity}/{ts}` to a configured stream and a canonical
/// start time; a permanent error (dead-lettered under `fallback_id` when the path is not even
/// a candle's) otherwise.
pub(crate) fn name(
    state: &AppState,
    relative: Option<&str>,
    fallback_id: &str,
) -> Result<Named, Error> {
    let Some((instrument, granularity, ts_id)) = relative.and_then(store::paths::candle_of) else {
        return Err(Error::permanent(
            "the event is not about a candles/{instrument}/{granularity}/{ts} document",
            anyhow!("document {relative:?}"),
            Some(fallback_id.to_owned()),
        ));
    };
    // `candle_of` checked that the three ids make a candle path.
    let path = store::paths::candle(instrument, granularity, ts_id)
        .map(|p| p.relative())
        .unwrap_or_default();
    let dead_letter = dead_letter_id(instrument, granularity, ts_id);
    let refuse = |why: String| {
        Error::permanent(format!("{path}: {why}"), anyhow!("{why}"), Some(dead_letter.clone()))
    };
    let g: Granularity = granularity.parse().map_err(|e| refuse(format!("{e}")))?;
    let key = StreamKey::new(instrument, g).map_err(|e| refuse(format!("{e}")))?;
    if state.config.priority(&key).is_none() {
        return Err(refuse(format!("unknown stream {key} (not configured)")));
    }
    let ts = parse_ts_id(ts_id).map_err(|e| refuse(format!("{e}")))?;
    Ok(Named { key, ts, ts_id: ts_id.to_owned(), path, dead_letter })
}

/// The change a candle document (as it is now, `None` when deleted) makes; `Ok(None)` when it
/// changes nothing (incomplete). Impossible or malformed candles are permanent errors.
pub(crate) fn change_of(
    named: &Named,
    doc: Option<Result<CandleDocument, String>>,
    written_at: DateTime<Utc>,
) -> Result<Option<CandleChange>, Error> {
    let refuse = |why: String| {
        Error::permanent(
            format!("{}: {why}", named.path),
            anyhow!("{why}"),
            Some(named.dead_letter.clone()),
        )
    };
    let doc = match doc {
        None => return Ok(Some(CandleChange::Remove { ts: named.ts, written_at })),
        Some(Err(why)) => return Err(refuse(format!("malformed candle: {why}"))),
        Some(Ok(doc)) => doc,
    };
    if !doc.complete {
        return Ok(None);
    }
    if doc.ts.is_some_and(|ts| ts != named.ts) {
        return Err(refuse(format!("ts field {:?} is not the time the id names", doc.ts)));
    }
    let candle = doc.candle(named.ts);
    candle.validate().map_err(|e| refuse(e.to_string()))?;
    Ok(Some(CandleChange::Upsert { candle, written_at }))
}

/// Applies a change and records its metrics; a candle overlapping a neighbour is permanent.
pub(crate) async fn apply(
    state: &AppState,
    named: &Named,
    change: CandleChange,
) -> Result<Applied, Error> {
    let priority = state.config.priority(&named.key).unwrap_or(domain::market::Priority::Low);
    let lock = state.stream_lock(&named.key.id());
    let _serialized = lock.lock().await;
    let now = Utc::now();
    let applied = state
        .market
        .apply(&named.key, priority, change, &state.config.policy, now)
        .await
        .map_err(|e| Error::for_event(e, "processing a candle", Some(&named.dead_letter)))?;
    if applied.overlaps {
        return Err(Error::permanent(
            format!(
                "{}: another candle of the stream starts less than one {} away",
                named.path, named.key.granularity
            ),
            anyhow!("overlapping candle"),
            Some(named.dead_letter.clone()),
        ));
    }
    let written_at = match change {
        CandleChange::Upsert { written_at, .. } | CandleChange::Remove { written_at, .. } => {
            written_at
        }
    };
    state.metrics.processed(&named.key.id(), &applied, now - written_at);
    Ok(applied)
}

/// Counts a permanent failure of a configured stream in its health and metrics, then passes
/// the error on to be dead-lettered.
pub(crate) async fn failed(state: &AppState, key: Option<&StreamKey>, error: Error) -> Error {
    if let Error::Permanent { .. } = &error
        && let Some(key) = key
    {
        state.metrics.dead_letter(&key.id());
        let priority = state.config.priority(key).unwrap_or(domain::market::Priority::Low);
        if let Err(e) = state.market.count_failure(key, priority, Utc::now()).await {
            tracing::warn!(error = %e, stream = %key, "could not count a failure in the stream health");
        }
    }
    error
}

pub(crate) async fn candle_event(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let ce_id = headers.get("ce-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let event = FirestoreEvent::from_http(&headers, body).map_err(|error| {
        let reason = format!("undecodable candle event: {}", error.public_message());
        Error::permanent(reason, error, ce_id.clone())
    })?;
    let named = name(&state, event.document_path(), &event.id)?;
    let key = named.key.clone();
    match handle(&state, &event, &named).await {
        Ok(status) => Ok(status),
        Err(error) => Err(failed(&state, Some(&key), error).await),
    }
}

async fn handle(
    state: &AppState,
    event: &FirestoreEvent,
    named: &Named,
) -> Result<StatusCode, Error> {
    let written_at = event
        .data
        .as_ref()
        .and_then(|d| d.value.as_ref().or(d.old_value.as_ref()))
        .and_then(|doc| doc.update_time)
        .or(event.time)
        .unwrap_or_else(Utc::now);
    let decode = |doc: &gcp::firestore::FirestoreDocument| {
        doc.deserialize::<CandleDocument>().map_err(|e| e.to_string())
    };
    let doc = match &event.data {
        Some(data) => {
            let new = data.value.as_ref().map(decode);
            // Complete before and after with the same values: a rewrite that changes nothing.
            if let (Some(Ok(new)), Some(Ok(old))) = (&new, data.old_value.as_ref().map(decode))
                && new.complete
                && old.complete
                && new.candle(named.ts) == old.candle(named.ts)
            {
                return Ok(StatusCode::NO_CONTENT);
            }
            new
        }
        // Eventarc dropped an oversized payload: the document as it is now decides.
        None => state
            .market
            .candle(&named.key, &named.ts_id)
            .await
            .map_err(|e| Error::for_event(e, "reading a candle", Some(&named.dead_letter)))?
            .map(Ok),
    };
    let Some(change) = change_of(named, doc, written_at)? else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let priority = state.config.priority(&named.key).unwrap_or(domain::market::Priority::Low);
    let admission = state.flow.lock().admit(&named.key.id(), priority, Utc::now());
    match admission {
        Admission::Admit => {}
        Admission::StreamBudget { retry_after } | Admission::GlobalBudget { retry_after } => {
            let scope = if matches!(admission, Admission::GlobalBudget { .. }) {
                "global"
            } else {
                "stream"
            };
            state.metrics.backpressure(&named.key.id());
            tracing::info!(stream = %named.key, scope, ?retry_after, "over budget: redeliver later");
            return Err(Error::retry_after(
                anyhow!("{} over its {scope} budget", named.key),
                retry_after.max(std::time::Duration::from_secs(1)),
            ));
        }
    }
    let candle = match &change {
        CandleChange::Upsert { candle, .. } => Some(candle),
        CandleChange::Remove { .. } => None,
    };
    let payload = EventPayload { path: &named.path, candle };
    let outcome = state
        .ledger
        .run_once(SCOPE, &event.id, &payload, state.config.lease, || async {
            apply(state, named, change).await.map(|a| serde_json::to_value(a).unwrap_or_default())
        })
        .await
        .map_err(|e| e.or_ledger(|e| Error::for_event(e, "the candle ledger", Some(&event.id))))?;
    match outcome {
        Outcome::Ran(summary) => {
            tracing::info!(event_id = %event.id, path = %named.path, %summary, "candle processed");
            Ok(StatusCode::NO_CONTENT)
        }
        Outcome::Replayed(_) => Ok(StatusCode::NO_CONTENT),
        Outcome::Busy { retry_after } => Err(Error::busy(
            anyhow!("{} is being processed by another delivery", event.id),
            retry_after,
        )),
        Outcome::Conflict => Err(Error::permanent(
            "a CloudEvent id was reused with a different payload",
            anyhow!("{SCOPE} {}: fingerprint differs from the first delivery", event.id),
            Some(event.id.clone()),
        )),
    }
}
