//! `POST /pubsub/refund-requests`: executes refunds through the provider.
//!
//! ```text
//! Push<RefundRequests>                  forged / missing -> 401; undecodable -> dead letter
//! ledger run_once ({order}:{refund id})  Replayed -> 204 | Busy -> 409 | Conflict -> permanent
//! store::refunds::prepare               the refund on the order (the out-of-stock refund is
//!                                         recorded here); none -> permanent (dead letter)
//!                                       not `requested` any more -> done (a redelivery)
//! Stripe POST /v1/refunds               Idempotency-Key = refund id (a retry never refunds
//!   (providers::StripeClient)             twice) -> submitted, 204
//!                                       refused (4xx, failed) -> the refund is `failed` (its
//!                                         amount may be asked again) and the request is
//!                                         dead-lettered with the provider's reason
//!                                       outage / circuit open -> 503 (Pub/Sub redelivers)
//! ```
//!
//! The money is confirmed by the provider's signed `charge.refunded` webhook, which comes back
//! through payment-webhook and `payment-events` (`push.rs`): the order's `refunded_minor`
//! rises, the refunds it covers become `confirmed`, a whole refund moves the order to
//! `refunded`, and `order-refunded` is published. Pesapal refunds are not executed here:
//! they are dead-lettered for an operator (Pesapal's refund request needs the payment's
//! confirmation code and answers by email, not by a signed notification).

use anyhow::anyhow;
use axum::extract::State;
use chrono::Utc;
use domain::messages::{PaymentProvider, RefundRequest, RefundRequests};
use domain::refunds::RefundStatus;
use http::StatusCode;
use providers::NewRefund;
use runtime::Error;
use runtime::trigger::Push;
use serde::Serialize;
use serde_json::json;
use store::ledger::Outcome;
use store::refunds::Seen;

use crate::AppState;
use crate::push::store_failure;

/// The ledger scope of executed refund requests (key: `{order id}:{refund id}`).
pub const SCOPE: &str = "pubsub:refund-requests";

pub(crate) async fn refund_requests(
    State(state): State<AppState>,
    Push { event: push, .. }: Push<RefundRequests>,
) -> Result<StatusCode, Error> {
    let request = push.data;
    let refund = request.refund_id.clone().unwrap_or_else(|| "out_of_stock".to_owned());
    let key = format!("{}:{refund}", request.order_id);
    let fingerprint = Fingerprint { order_id: &request.order_id, refund_id: &refund };
    let outcome = state
        .ledger
        .run_once(SCOPE, &key, &fingerprint, state.lease, || execute(&state, &request, &key))
        .await
        .map_err(|e| e.or_ledger(|e| store_failure(e, &key)))?;
    match outcome {
        Outcome::Ran(_) | Outcome::Replayed(_) => Ok(StatusCode::NO_CONTENT),
        Outcome::Busy { retry_after } => Err(Error::busy(
            anyhow!("refund {key} is being executed by another delivery"),
            retry_after,
        )),
        Outcome::Conflict => Err(Error::permanent(
            "a refund request id was reused with different content",
            anyhow!("refund {key}: fingerprint differs from the first delivery"),
            Some(key),
        )),
    }
}

async fn execute(
    state: &AppState,
    request: &RefundRequest,
    key: &str,
) -> Result<serde_json::Value, Error> {
    let now = Utc::now();
    let Some(recorded) = state
        .refunds
        .prepare(&request.order_id, request.refund_id.as_deref(), now)
        .await
        .map_err(|e| store_failure(e, key))?
    else {
        return Err(Error::permanent(
            "refund request for no refundable order",
            anyhow!("order {} holds no such refund and no paid payment", request.order_id),
            Some(key.to_owned()),
        ));
    };
    let entry = &recorded.entry;
    if entry.status != RefundStatus::Requested {
        return Ok(json!({ "outcome": "already", "status": entry.status }));
    }
    let seen = recorded.seen.as_ref();
    let refuse =
        |reason: String| refuse(state, &request.order_id, &entry.refund_id, seen, reason, key);
    if recorded.payment.provider != PaymentProvider::Stripe {
        return refuse("Pesapal refunds are made by an operator".to_owned()).await;
    }
    let Some(stripe) = &state.stripe else {
        return Err(Error::permanent(
            "a Stripe refund was requested but Stripe is not configured",
            anyhow!("HEARTH_STRIPE_SECRET_KEY is unset"),
            Some(key.to_owned()),
        ));
    };
    let Some(provider_payment_id) = recorded.payment.provider_payment_id.clone() else {
        return refuse("the payment has no provider id".to_owned()).await;
    };
    let created = stripe
        .create_refund(&NewRefund {
            order_id: request.order_id.clone(),
            refund_id: entry.refund_id.clone(),
            provider_payment_id,
            amount_minor: entry.amount_minor,
        })
        .await;
    match created {
        Ok(created) if created.accepted() => {
            state
                .refunds
                .mark(
                    &request.order_id,
                    &entry.refund_id,
                    seen,
                    RefundStatus::Submitted,
                    Some(&created.provider_refund_id),
                    None,
                    now,
                )
                .await
                .map_err(|e| store_failure(e, key))?;
            tracing::info!(order_id = %request.order_id, refund = %entry.refund_id, amount_minor = entry.amount_minor, provider_refund = %created.provider_refund_id, "refund submitted");
            Ok(json!({ "outcome": "submitted", "provider_refund_id": created.provider_refund_id }))
        }
        Ok(created) => {
            refuse(format!("Stripe answered the refund with status {}", created.status)).await
        }
        Err(error) if error.is_retryable() => {
            Err(Error::retry(anyhow::Error::new(error).context("calling Stripe for a refund")))
        }
        Err(error) => refuse(error.to_string()).await,
    }
}

/// Records the provider's refusal on the refund (its amount may be asked again) and answers the
/// permanent error that dead-letters the request with the reason.
async fn refuse(
    state: &AppState,
    order_id: &str,
    refund_id: &str,
    seen: Option<&Seen>,
    reason: String,
    key: &str,
) -> Result<serde_json::Value, Error> {
    state
        .refunds
        .mark(order_id, refund_id, seen, RefundStatus::Failed, None, Some(&reason), Utc::now())
        .await
        .map_err(|e| store_failure(e, key))?;
    tracing::warn!(order_id, refund = refund_id, %reason, "refund refused");
    Err(Error::permanent(
        "the refund was refused",
        anyhow!("refund {key}: {reason}"),
        Some(key.to_owned()),
    ))
}

/// What must not change between deliveries of one refund request.
#[derive(Debug, Serialize)]
struct Fingerprint<'a> {
    order_id: &'a str,
    refund_id: &'a str,
}
