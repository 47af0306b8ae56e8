//! `GET|POST /pesapal`: an IPN is a hint; validate its fields, dedupe, forward, and answer in
//! Pesapal's acknowledgement shape (`status` 200 taken, 500 not).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use http::StatusCode;
use providers::pesapal::Ipn;
use serde_json::{Value, json};

use crate::AppState;
use crate::forward::{Forwarded, forward};

type Answer = (StatusCode, Json<Value>);

pub(crate) async fn receive_get(
    State(state): State<AppState>,
    query: Result<Query<Ipn>, QueryRejection>,
) -> Answer {
    match query {
        Ok(Query(ipn)) => take(&state, ipn).await,
        Err(error) => malformed(&error.body_text()),
    }
}

pub(crate) async fn receive_post(State(state): State<AppState>, body: Bytes) -> Answer {
    match serde_json::from_slice::<Ipn>(&body) {
        Ok(ipn) => take(&state, ipn).await,
        Err(error) => malformed(&error.to_string()),
    }
}

fn malformed(why: &str) -> Answer {
    tracing::warn!(why, "malformed Pesapal IPN refused");
    (StatusCode::BAD_REQUEST, Json(json!({ "status": 500, "message": "malformed notification" })))
}

async fn take(state: &AppState, ipn: Ipn) -> Answer {
    if let Err(error) = ipn.validate() {
        return malformed(&error.to_string());
    }
    let event = ipn.to_event(chrono::Utc::now());
    match forward(state, &event).await {
        Forwarded::Published | Forwarded::Duplicate | Forwarded::Busy => {
            (StatusCode::OK, Json(ipn.ack(true)))
        }
        Forwarded::Conflict => (StatusCode::BAD_REQUEST, Json(ipn.ack(false))),
        Forwarded::Unavailable(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "Pesapal IPN not forwarded; Pesapal will retry"
            );
            (StatusCode::SERVICE_UNAVAILABLE, Json(ipn.ack(false)))
        }
    }
}
