//! `GET|POST /pesapal`: an IPN is a hint; validate its fields, dedupe, forward, and answer in
//! Pesapal's acknowledgement shape (`status` 200 taken, 500 not).
//!
//! An IPN is unsigned, so anyone can send one. Before it costs anything beyond one read:
//!
//! ```text
//! per-source budget (sources.rs)          over -> 429 (status 500: Pesapal retries later)
//! fields valid                            no   -> 400
//! orders/{OrderMerchantReference} holds   no   -> 404, nothing claimed, published or asked
//!   a Pesapal payment OrderTrackingId            of Pesapal, no dead letter (a flood must not
//!                                                fill them); logged
//! ledger claim, publish                   as for Stripe
//! ```

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use domain::messages::PaymentProvider;
use http::{HeaderMap, StatusCode};
use providers::pesapal::Ipn;
use serde_json::{Value, json};

use crate::AppState;
use crate::forward::{Forwarded, forward};

type Answer = (StatusCode, Json<Value>);

pub(crate) async fn receive_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<Ipn>, QueryRejection>,
) -> Answer {
    if !state.sources.admit(&headers) {
        return throttled();
    }
    match query {
        Ok(Query(ipn)) => take(&state, ipn).await,
        Err(error) => malformed(&error.body_text()),
    }
}

pub(crate) async fn receive_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    if !state.sources.admit(&headers) {
        return throttled();
    }
    match serde_json::from_slice::<Ipn>(&body) {
        Ok(ipn) => take(&state, ipn).await,
        Err(error) => malformed(&error.to_string()),
    }
}

fn throttled() -> Answer {
    (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "status": 500, "message": "too many notifications from this source" })),
    )
}

fn malformed(why: &str) -> Answer {
    tracing::warn!(why, "malformed Pesapal IPN refused");
    (StatusCode::BAD_REQUEST, Json(json!({ "status": 500, "message": "malformed notification" })))
}

async fn take(state: &AppState, ipn: Ipn) -> Answer {
    if let Err(error) = ipn.validate() {
        return malformed(&error.to_string());
    }
    match state
        .payments
        .holds_provider_payment(
            &ipn.order_merchant_reference,
            PaymentProvider::Pesapal,
            &ipn.order_tracking_id,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                order_id = %ipn.order_merchant_reference,
                tracking_id = %ipn.order_tracking_id,
                "Pesapal IPN refused: the order holds no payment with this tracking id (forged or misdirected)"
            );
            return (StatusCode::NOT_FOUND, Json(ipn.ack(false)));
        }
        Err(error) => {
            tracing::warn!(%error, "Pesapal IPN not checked; Pesapal will retry");
            return (StatusCode::SERVICE_UNAVAILABLE, Json(ipn.ack(false)));
        }
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
