//! `POST /pubsub/payment-events`.
//!
//! ```text
//! Push<PaymentEvents>                  forged / missing -> 401
//!                                      undecodable -> permanent (dead letter, 200)
//! ledger run_once (provider:event id)  Replayed -> 204 | Busy -> 409 | Conflict -> permanent
//! Pesapal hint: the order must hold the   no -> suspected forgery (dead letter), nothing changes
//!   tracking id; GetTransactionStatus   pending -> done (the reconcile job asks again later)
//!                                       throttled / circuit open / down -> deferred: the
//!                                         payment is due for the reconcile job, 204 (a
//!                                         provider outage never uses up delivery attempts)
//!                                       unknown to Pesapal (error inside a 200) -> suspected
//!                                         forgery | other refusal -> permanent
//! store::payments::apply_event         Changed / Ignored / partial refund -> publish outcome
//!                                        (order-paid, refund-requests, order-refunded),
//!                                        complete, 204
//!                                      not this order's money -> suspected forgery (dead
//!                                        letter flagged, nothing changed)
//!                                      unknown order -> permanent | Firestore down -> 503
//! ```
//!
//! The invariant, for every provider: an event changes an order only when its (provider,
//! provider payment id) is one of that order's payments and, where the provider reports them,
//! the merchant reference, amount and currency match the order (`domain::payments::decide`).

use anyhow::anyhow;
use axum::extract::State;
use domain::messages::{
    OrderPaid, OrderPaidTopic, OrderRefunded, OrderRefundedTopic, PaymentEvent, PaymentEventKind,
    PaymentEvents, PaymentProvider, RefundReason, RefundRequest, RefundRequests, Version,
};
use domain::payments::OrderStatus;
use http::StatusCode;
use providers::pesapal::StatusOutcome;
use runtime::Error;
use runtime::trigger::Push;
use serde::Serialize;
use serde_json::json;
use store::ledger::Outcome;
use store::payments::{Applied, Order, ResolvedEvent};

use crate::AppState;

// `v2` since fingerprints hash the payload's serde JSON (`store::ledger::fingerprint`; they
// hashed its `Debug` text before): records of the former format are not consulted, so an event
// redelivered across that deploy is applied again, which the order's state machine makes a
// no-op when it was applied already, instead of being refused as a conflict.
/// The ledger scope of applied events (key: `{provider}:{provider event id}`).
pub const SCOPE: &str = "pubsub:payment-events:v2";

pub(crate) async fn payment_events(
    State(state): State<AppState>,
    Push { event: push, .. }: Push<PaymentEvents>,
) -> Result<StatusCode, Error> {
    let event = push.data;
    let provider = match event.provider {
        PaymentProvider::Stripe => "stripe",
        PaymentProvider::Pesapal => "pesapal",
    };
    let key = format!("{provider}:{}", event.provider_event_id);
    let outcome = state
        .ledger
        .run_once(SCOPE, &key, &Fingerprint::of(&event), state.lease, || {
            process(&state, &event, &key)
        })
        .await
        .map_err(|e| e.or_ledger(|e| store_failure(e, &key)))?;
    match outcome {
        Outcome::Ran(_) | Outcome::Replayed(_) => Ok(StatusCode::NO_CONTENT),
        Outcome::Busy { retry_after } => Err(Error::busy(
            anyhow!("event {key} is being applied by another delivery"),
            retry_after,
        )),
        Outcome::Conflict => Err(Error::permanent(
            "a payment event id was reused with different content",
            anyhow!("event {key}: fingerprint differs from the first delivery"),
            Some(key),
        )),
    }
}

async fn process(
    state: &AppState,
    event: &PaymentEvent,
    key: &str,
) -> Result<serde_json::Value, Error> {
    let resolved = match resolve(state, event, key).await? {
        Resolution::Final(resolved) => resolved,
        Resolution::Pending => return Ok(json!({ "outcome": "pending" })),
        Resolution::Deferred => return Ok(json!({ "outcome": "deferred" })),
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
        Applied::Suspect(mismatch) => {
            return Err(suspected_forgery(event, key, &mismatch.to_string()));
        }
        Applied::Changed { from, order, committed_units } => {
            tracing::info!(order_id = %order.id, ?from, to = ?order.status, committed_units, event = %key, "order moved");
            Some(order.as_ref().clone())
        }
        Applied::PartiallyRefunded { refunded_minor, order } => {
            tracing::info!(order_id = %event.order_id, refunded_minor, event = %key, "part of the order refunded; status unchanged");
            Some(order.as_ref().clone())
        }
        Applied::Ignored(reason) => {
            tracing::debug!(order_id = %event.order_id, ?reason, event = %key, "payment event changed nothing");
            // A redelivery after a failed publish: the order still names this event.
            state.payments.order(&event.order_id).await.map_err(|e| store_failure(e, key))?
        }
    };
    let event_id = Some(event.provider_event_id.as_str());
    if let Some(order) = &order
        && order.last_refund_event_id.as_deref() == event_id
    {
        publish_refunded(state, order, &event.provider_event_id).await?;
    }
    if let Some(order) = order.filter(|o| o.last_event_id.as_deref() == event_id) {
        publish_outcome(state, &order, event.provider, &event.payment_id, &event.provider_event_id)
            .await?;
    }
    let outcome = match applied {
        Applied::Changed { .. } => "changed",
        Applied::Ignored(_) => "ignored",
        Applied::PartiallyRefunded { .. } => "partially_refunded",
        Applied::Suspect(_) => "suspect",
        Applied::UnknownOrder => "unknown_order",
    };
    Ok(json!({ "outcome": outcome }))
}

/// What an event comes to once hints are looked up.
enum Resolution {
    /// Apply it.
    Final(ResolvedEvent),
    /// The provider says the payment is not final yet: nothing to apply now.
    Pending,
    /// The provider could not be asked now (throttled, circuit open, down): the payment is due
    /// for the reconcile job instead of costing a delivery attempt.
    Deferred,
}

/// The event, resolved: Stripe events are signed and carry their facts; Pesapal hints are
/// looked up with the provider, whose answer supplies the merchant reference, amount and
/// currency that `decide` checks against the order.
async fn resolve(state: &AppState, event: &PaymentEvent, key: &str) -> Result<Resolution, Error> {
    if event.kind != PaymentEventKind::StatusChanged {
        return Ok(Resolution::Final(ResolvedEvent {
            provider: event.provider,
            event_id: event.provider_event_id.clone(),
            order_id: event.order_id.clone(),
            provider_payment_id: event.payment_id.clone(),
            kind: event.kind,
            occurred_at: event.occurred_at,
            merchant_reference: None,
            amount_minor: event.amount_minor,
            currency: event.currency.clone(),
            amount_refunded_minor: event.amount_refunded_minor,
        }));
    }
    let Some(pesapal) = &state.pesapal else {
        return Err(Error::permanent(
            "a Pesapal hint arrived but Pesapal is not configured",
            anyhow!("HEARTH_PESAPAL_CONSUMER_KEY is unset"),
            Some(key.to_owned()),
        ));
    };
    // Only a tracking id the order holds is worth a provider call: anything else is a forged
    // or misdirected hint, refused without spending Pesapal's quota.
    let holds = state
        .payments
        .holds_provider_payment(&event.order_id, event.provider, &event.payment_id)
        .await
        .map_err(|e| store_failure(e, key))?;
    if !holds {
        return Err(suspected_forgery(
            event,
            key,
            "the order holds no payment with this tracking id",
        ));
    }
    let status = match pesapal.transaction_status(&event.payment_id).await {
        Ok(status) => status,
        Err(error) if error.is_retryable() => {
            let soon = chrono::Utc::now() + RETRY_LOOKUP_AFTER;
            state
                .payments
                .reconcile_soon(&event.order_id, event.provider, &event.payment_id, soon)
                .await
                .map_err(|e| store_failure(e, key))?;
            tracing::warn!(%error, event = %key, "Pesapal unavailable: status lookup left to the reconcile job");
            return Ok(Resolution::Deferred);
        }
        Err(error) => {
            return Err(Error::permanent(
                "Pesapal refused the status lookup",
                anyhow::Error::new(error),
                Some(key.to_owned()),
            ));
        }
    };
    match status.outcome() {
        StatusOutcome::Final(kind) => Ok(Resolution::Final(ResolvedEvent {
            provider: event.provider,
            event_id: event.provider_event_id.clone(),
            order_id: event.order_id.clone(),
            provider_payment_id: event.payment_id.clone(),
            kind,
            occurred_at: event.occurred_at,
            merchant_reference: status.merchant_reference.clone(),
            amount_minor: status.amount_minor(),
            currency: status.currency.clone(),
            amount_refunded_minor: None,
        })),
        StatusOutcome::Pending => {
            // Not final: make sure the reconcile job asks again (payments recorded before the
            // job existed carry no due time).
            let later = chrono::Utc::now() + store::payments::FIRST_RECONCILE;
            state
                .payments
                .reconcile_soon(&event.order_id, event.provider, &event.payment_id, later)
                .await
                .map_err(|e| store_failure(e, key))?;
            Ok(Resolution::Pending)
        }
        StatusOutcome::Error { code, message } if code == "order_not_found" => {
            Err(suspected_forgery(
                event,
                key,
                &format!("Pesapal does not know the tracking id: {message}"),
            ))
        }
        StatusOutcome::Error { code, message } => Err(Error::permanent(
            "Pesapal answered the status lookup with an error",
            anyhow!("Pesapal error {code}: {message}"),
            Some(key.to_owned()),
        )),
    }
}

/// How soon the reconcile job asks again after the provider could not be asked.
const RETRY_LOOKUP_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// An event that is not about the order it names: nothing changed; dead letter flagged.
fn suspected_forgery(event: &PaymentEvent, key: &str, why: &str) -> Error {
    tracing::warn!(
        order_id = %event.order_id,
        provider_payment_id = %event.payment_id,
        event = %key,
        why,
        "suspected forged payment event refused"
    );
    Error::suspected_forgery(
        "payment event refused: not this order's money (suspected forgery)",
        anyhow!("order {}, provider payment {}: {why}", event.order_id, event.payment_id),
        Some(key.to_owned()),
    )
}

/// Announces a refund the provider confirmed (the raise of `refunded_minor` that the event
/// `provider_event_id` made) on `order-refunded`.
async fn publish_refunded(
    state: &AppState,
    order: &Order,
    provider_event_id: &str,
) -> Result<(), Error> {
    let message = OrderRefunded {
        v: Version,
        order_id: order.id.clone(),
        uid: order.uid.clone(),
        vendor_ids: order.vendor_ids.clone(),
        refund_id: provider_event_id.to_owned(),
        amount_minor: order.last_refund_minor,
        refunded_total_minor: order.refunded_minor,
        currency: order.currency.clone(),
        fully_refunded: order.status == OrderStatus::Refunded,
    };
    state
        .bus
        .publish::<OrderRefundedTopic>(&message, bus::Attributes::new())
        .await
        .map(drop)
        .map_err(|e| Error::retry(anyhow::Error::new(e).context("publishing order-refunded")))
}

/// Announces a paid order on `order-paid`, or a paid order without stock on
/// `refund-requests`.
pub(crate) async fn publish_outcome(
    state: &AppState,
    order: &Order,
    provider: PaymentProvider,
    payment_id: &str,
    provider_event_id: &str,
) -> Result<(), Error> {
    let bus = &state.bus;
    let published = match order.status {
        OrderStatus::Paid => {
            let message = OrderPaid {
                v: Version,
                order_id: order.id.clone(),
                uid: order.uid.clone(),
                provider,
                payment_id: payment_id.to_owned(),
                amount_minor: order.amount_minor,
                currency: order.currency.clone(),
                provider_event_id: provider_event_id.to_owned(),
            };
            bus.publish::<OrderPaidTopic>(&message, bus::Attributes::new()).await
        }
        OrderStatus::RefundPending => {
            let message = RefundRequest {
                v: Version,
                order_id: order.id.clone(),
                uid: order.uid.clone(),
                provider,
                payment_id: payment_id.to_owned(),
                amount_minor: order.amount_minor,
                currency: order.currency.clone(),
                reason: RefundReason::OutOfStock,
                refund_id: None,
            };
            bus.publish::<RefundRequests>(&message, bus::Attributes::new()).await
        }
        _ => return Ok(()),
    };
    published
        .map(drop)
        .map_err(|e| Error::retry(anyhow::Error::new(e).context("publishing the order outcome")))
}

pub(crate) fn store_failure(error: store::Error, key: &str) -> Error {
    Error::for_event(error, "applying a payment event", Some(key))
}

/// What must not change between deliveries of one event id (its serde form is hashed).
/// Not the time: a Pesapal hint re-sent by the webhook carries a new receive time.
#[derive(Debug, Serialize)]
struct Fingerprint<'a> {
    kind: PaymentEventKind,
    order_id: &'a str,
    payment_id: &'a str,
}

impl<'a> Fingerprint<'a> {
    fn of(event: &'a PaymentEvent) -> Self {
        Self { kind: event.kind, order_id: &event.order_id, payment_id: &event.payment_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_the_serde_form_of_what_must_not_change() {
        let fingerprint = Fingerprint {
            kind: PaymentEventKind::Succeeded,
            order_id: "ord_1",
            payment_id: "pi_1",
        };
        assert_eq!(
            serde_json::to_string(&fingerprint).unwrap(),
            r#"{"kind":"succeeded","order_id":"ord_1","payment_id":"pi_1"}"#
        );
    }
}
