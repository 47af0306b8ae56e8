//! `POST /pubsub/payment-events`.
//!
//! ```text
//! OIDC (GoogleCaller)                 forged / missing -> 401
//! parse_push::<PaymentEvent>           undecodable -> permanent (dead letter, 200)
//! ledger claim (provider:event id)     Done -> 204 | InFlight -> 409 | Mismatch -> permanent
//! Pesapal hint: GetTransactionStatus   pending -> done, nothing changes | provider down -> 503
//! store::payments::apply_event         Changed / Ignored -> publish outcome (if on), complete, 204
//!                                      unknown order -> permanent | Firestore down -> 503
//! ```

use anyhow::anyhow;
use axum::body::Bytes;
use axum::extract::State;
use domain::messages::{
    OrderPaid, OrderPaidTopic, PaymentEvent, PaymentEventKind, PaymentProvider, RefundReason,
    RefundRequest, RefundRequests, Version,
};
use domain::payments::OrderStatus;
use gcp::callable::Code;
use gcp::error::PublicError;
use gcp::pubsub::{parse_push, parse_push_bytes};
use http::StatusCode;
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde_json::json;
use sha2::{Digest, Sha256};
use store::Claim;
use store::payments::{Applied, Order, ResolvedEvent};

use crate::AppState;

/// The ledger scope of applied events (key: `{provider}:{provider event id}`).
pub const SCOPE: &str = "pubsub:payment-events";

pub(crate) async fn payment_events(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
    body: Bytes,
) -> Result<StatusCode, Error> {
    let push = match parse_push::<PaymentEvent>(&body) {
        Ok(push) => push,
        Err(error) => {
            let message_id = parse_push_bytes(&body).ok().map(|event| event.message_id);
            let reason = format!("undecodable payment-events message: {}", error.public_message());
            return Err(Error::permanent(reason, error, message_id));
        }
    };
    let event = push.data;
    let provider = match event.provider {
        PaymentProvider::Stripe => "stripe",
        PaymentProvider::Pesapal => "pesapal",
    };
    let key = format!("{provider}:{}", event.provider_event_id);
    let claim = state
        .ledger
        .claim(SCOPE, &key, &fingerprint(&event), state.lease)
        .await
        .map_err(|e| store_failure(e, &key))?;
    let token = match claim {
        Claim::Fresh(token) => token,
        Claim::Done(_) => return Ok(StatusCode::NO_CONTENT),
        Claim::InFlight { retry_after } => {
            return Err(Error::Retry {
                source: anyhow!("event {key} is being applied by another delivery"),
                code: Code::Aborted,
                retry_after: Some(retry_after),
                details: None,
            });
        }
        Claim::Mismatch => {
            return Err(Error::permanent(
                "a payment event id was reused with different content",
                anyhow!("event {key}: fingerprint differs from the first delivery"),
                Some(key),
            ));
        }
    };
    match process(&state, &event, &key).await {
        Ok(summary) => {
            if let Err(error) = state.ledger.complete(&token, &summary).await {
                tracing::warn!(%key, %error, "could not settle the payment event claim");
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Err(error) => {
            if let Err(release) = state.ledger.release(&token).await {
                tracing::warn!(%key, error = %release, "could not release the payment event claim");
            }
            Err(error)
        }
    }
}

async fn process(
    state: &AppState,
    event: &PaymentEvent,
    key: &str,
) -> Result<serde_json::Value, Error> {
    let Some(kind) = resolve(state, event, key).await? else {
        return Ok(json!({ "outcome": "pending" }));
    };
    let resolved = ResolvedEvent {
        provider: event.provider,
        event_id: event.provider_event_id.clone(),
        order_id: event.order_id.clone(),
        provider_payment_id: event.payment_id.clone(),
        kind,
        occurred_at: event.occurred_at,
    };
    let applied = state
        .payments
        .apply_event(&resolved, chrono::Utc::now())
        .await
        .map_err(|e| store_failure(e, key))?;
    let order = match &applied {
        Applied::UnknownOrder => {
            return Err(Error::permanent(
                "payment event for an unknown order",
                anyhow!("order {} does not exist", event.order_id),
                Some(key.to_owned()),
            ));
        }
        Applied::Changed { from, order, committed_units } => {
            tracing::info!(order_id = %order.id, ?from, to = ?order.status, committed_units, event = %key, "order moved");
            Some(order.as_ref().clone())
        }
        Applied::Ignored(reason) => {
            tracing::debug!(order_id = %event.order_id, ?reason, event = %key, "payment event changed nothing");
            // A redelivery after a failed publish: the order still names this event.
            state.payments.order(&event.order_id).await.map_err(|e| store_failure(e, key))?
        }
    };
    if let Some(order) =
        order.filter(|o| o.last_event_id.as_deref() == Some(event.provider_event_id.as_str()))
    {
        publish_outcome(state, &order, event).await?;
    }
    let outcome = match applied {
        Applied::Changed { .. } => "changed",
        Applied::Ignored(_) => "ignored",
        Applied::UnknownOrder => "unknown_order",
    };
    Ok(json!({ "outcome": outcome }))
}

/// The event's kind; Pesapal hints are resolved with the provider (`None`: still pending).
async fn resolve(
    state: &AppState,
    event: &PaymentEvent,
    key: &str,
) -> Result<Option<PaymentEventKind>, Error> {
    if event.kind != PaymentEventKind::StatusChanged {
        return Ok(Some(event.kind));
    }
    let Some(pesapal) = &state.pesapal else {
        return Err(Error::permanent(
            "a Pesapal hint arrived but Pesapal is not configured",
            anyhow!("HEARTH_PESAPAL_CONSUMER_KEY is unset"),
            Some(key.to_owned()),
        ));
    };
    match pesapal.transaction_status(&event.payment_id).await {
        Ok(status) => Ok(status.kind()),
        Err(error) if error.is_retryable() => Err(Error::retry(anyhow::Error::new(error))),
        Err(error) => Err(Error::permanent(
            "Pesapal refused the status lookup",
            anyhow::Error::new(error),
            Some(key.to_owned()),
        )),
    }
}

async fn publish_outcome(
    state: &AppState,
    order: &Order,
    event: &PaymentEvent,
) -> Result<(), Error> {
    let Some(bus) = &state.bus else { return Ok(()) };
    let published = match order.status {
        OrderStatus::Paid => {
            let message = OrderPaid {
                v: Version,
                order_id: order.id.clone(),
                uid: order.uid.clone(),
                provider: event.provider,
                payment_id: event.payment_id.clone(),
                amount_minor: order.amount_minor,
                currency: order.currency.clone(),
                provider_event_id: event.provider_event_id.clone(),
            };
            bus.publish::<OrderPaidTopic>(&message, bus::Attributes::new()).await
        }
        OrderStatus::RefundPending => {
            let message = RefundRequest {
                v: Version,
                order_id: order.id.clone(),
                uid: order.uid.clone(),
                provider: event.provider,
                payment_id: event.payment_id.clone(),
                amount_minor: order.amount_minor,
                currency: order.currency.clone(),
                reason: RefundReason::OutOfStock,
            };
            bus.publish::<RefundRequests>(&message, bus::Attributes::new()).await
        }
        _ => return Ok(()),
    };
    published
        .map(drop)
        .map_err(|e| Error::retry(anyhow::Error::new(e).context("publishing the order outcome")))
}

fn store_failure(error: store::Error, key: &str) -> Error {
    if error.is_retryable() {
        return Error::retry(anyhow::Error::new(error).context("applying a payment event"));
    }
    Error::permanent(
        format!("cannot apply this payment event: {error}"),
        error,
        Some(key.to_owned()),
    )
}

/// What must not change between deliveries of one event id.
fn fingerprint(event: &PaymentEvent) -> String {
    // Not the time: a Pesapal hint re-sent by the webhook carries a new receive time.
    let text = format!("{:?}|{}|{}", event.kind, event.order_id, event.payment_id);
    hex::encode(Sha256::digest(text.as_bytes()))
}
