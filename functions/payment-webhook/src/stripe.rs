//! `POST /stripe`: verify, map, dedupe, forward.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use gcp::callable::Code;
use http::HeaderMap;
use providers::stripe::{Mapped, map_event, verify};
use runtime::Error;
use serde_json::{Value, json};

use crate::AppState;
use crate::forward::{Forwarded, forward};

pub(crate) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(error) = verify(header, &body, &state.secrets, state.tolerance, now) {
        tracing::warn!(%error, "Stripe webhook refused");
        return Err(Error::reject(Code::InvalidArgument, "Webhook signature verification failed."));
    }
    let event = match map_event(&body) {
        Ok(Mapped::Event(event)) => event,
        Ok(Mapped::Ignored { event_type }) => {
            tracing::debug!(%event_type, "Stripe event type ignored");
            return Ok(Json(json!({ "received": true, "ignored": true })));
        }
        Ok(Mapped::NoOrder { event_id }) => {
            tracing::warn!(%event_id, "Stripe payment event without our order_id metadata ignored");
            return Ok(Json(json!({ "received": true, "ignored": true })));
        }
        Err(error) => {
            tracing::warn!(%error, "signed Stripe webhook with an unreadable body");
            return Err(Error::reject(
                Code::InvalidArgument,
                "The event body is not a Stripe event.",
            ));
        }
    };
    match forward(&state, &event).await {
        Forwarded::Published => Ok(Json(json!({ "received": true }))),
        Forwarded::Duplicate => Ok(Json(json!({ "received": true, "duplicate": true }))),
        Forwarded::Busy => {
            Err(Error::reject(Code::Aborted, "This event is being processed; retry later."))
        }
        Forwarded::Conflict => Err(Error::reject(
            Code::InvalidArgument,
            "This event id was already received with different content.",
        )),
        Forwarded::Unavailable(source) => Err(Error::retry(source)),
    }
}
