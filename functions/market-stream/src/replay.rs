//! Operators: `GET /dead-letters` lists this function's dead letters (with the candle each
//! names), and `POST /replay` `{"candle": "candles/{instrument}/{granularity}/{ts}"}` (or
//! `{"dead_letter_id": "candle:..."}`, the dead letter's `event_id`) reprocesses that candle as it is stored now, after the
//! candle or the configuration was fixed. Both need a Google OIDC token of an account in
//! `HEARTH_OIDC_ALLOWED_EMAILS` (operators are listed there, beside Eventarc and Scheduler).
//!
//! A replay is idempotent: processing compares with what is stored (a second replay writes
//! nothing), and the dead letter is deleted once the candle is processed. A candle that still
//! fails answers 422 with the reason, and its dead letter stays. Replays bypass the priority
//! budgets (an operator's deliberate, rare action).

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use gcp::callable::Code;
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::event::{self, candle_of_dead_letter};

/// How many dead letters a listing shows.
const LIST_LIMIT: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    #[serde(default)]
    candle: Option<String>,
    #[serde(default)]
    dead_letter_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReplayAnswer {
    candle: String,
    outcome: &'static str,
    bars_written: usize,
    labels_resolved: usize,
    dead_letter_removed: bool,
}

fn operator(caller: Option<&gcp::oidc::GoogleClaims>) -> String {
    caller.map_or_else(|| "local (unauthenticated)".to_owned(), |c| c.email.clone())
}

pub(crate) async fn list(
    State(state): State<AppState>,
    GoogleCaller(caller): GoogleCaller,
) -> Result<Json<Value>, Error> {
    tracing::info!(operator = %operator(caller.as_ref()), "dead letters listed");
    let source = format!("{} POST /", state.service);
    let letters = state.market.dead_letters(&source, LIST_LIMIT).await.map_err(|e| {
        Error::for_caller(e, "listing dead letters", Code::Internal, "listing failed")
    })?;
    let items: Vec<Value> = letters
        .iter()
        .map(|dl| {
            let candle = dl
                .event_id
                .as_deref()
                .and_then(candle_of_dead_letter);
            json!({"id": dl.id, "candle": candle, "reason": dl.reason, "recorded_at": dl.recorded_at})
        })
        .collect();
    Ok(Json(json!({"dead_letters": items})))
}

pub(crate) async fn replay(
    State(state): State<AppState>,
    GoogleCaller(caller): GoogleCaller,
    body: axum::body::Bytes,
) -> Result<Json<ReplayAnswer>, Error> {
    let request: ReplayRequest = serde_json::from_slice(&body).map_err(|_| {
        Error::reject(
            Code::InvalidArgument,
            "expected {\"candle\": <candle document path>} or {\"dead_letter_id\": \"candle:...\"}",
        )
    })?;
    let path = match (&request.candle, &request.dead_letter_id) {
        (Some(path), None) => path.clone(),
        (None, Some(id)) => candle_of_dead_letter(id).ok_or_else(|| {
            Error::reject(Code::InvalidArgument, "not the dead letter of a candle")
        })?,
        _ => {
            return Err(Error::reject(
                Code::InvalidArgument,
                "name exactly one of candle, dead_letter_id",
            ));
        }
    };
    // A path that is no configured candle is the caller's mistake here, not a dead letter.
    let named = event::name(&state, Some(&path), "replay").map_err(|_| {
        Error::reject(
            Code::InvalidArgument,
            format!("{path} is not a candle of a configured stream"),
        )
    })?;
    tracing::info!(operator = %operator(caller.as_ref()), candle = %named.path, "replay");
    let doc = state.market.candle(&named.key, &named.ts_id).await.map_err(|e| {
        Error::for_caller(e, "reading a candle", Code::Internal, "reading the candle failed")
    })?;
    let still_failing = |e: Error| match e {
        Error::Permanent { reason, .. } => {
            Error::reject(Code::FailedPrecondition, format!("still failing: {reason}"))
        }
        other => other,
    };
    let change = event::change_of(&named, doc.map(Ok), Utc::now()).map_err(still_failing)?;
    let (outcome, applied) = match change {
        None => ("incomplete", store::market::Applied::default()),
        Some(change) => {
            let applied = event::apply(&state, &named, change).await.map_err(still_failing)?;
            (if applied.unchanged { "unchanged" } else { "processed" }, applied)
        }
    };
    let removed = if outcome == "incomplete" {
        false
    } else {
        let record = format!("{}-{}", state.service, named.dead_letter);
        let existed = state
            .dead_letters
            .get(&record)
            .await
            .map_err(|e| {
                Error::for_caller(e, "reading a dead letter", Code::Internal, "replay failed")
            })?
            .is_some();
        if existed {
            state.market.forget_dead_letter(&record).await.map_err(|e| {
                Error::for_caller(e, "deleting a dead letter", Code::Internal, "replay failed")
            })?;
        }
        existed
    };
    if outcome == "incomplete" {
        tracing::info!(candle = %named.path, "replay of an incomplete candle: nothing to do");
    }
    Ok(Json(ReplayAnswer {
        candle: named.path,
        outcome,
        bars_written: applied.bars_written,
        labels_resolved: applied.labels_resolved,
        dead_letter_removed: removed,
    }))
}
