//! Dedupe and forward: claim the provider's event id in the ledger's leased mode, publish the
//! `PaymentEvent` to `payment-events` (ordering key: the order id), and stop there.
//!
//! ```text
//! run_leased(scope, event id, lease)
//!   Ran      published (the claim's create was the only Firestore call) -> Forwarded
//!            publish failed / timed out -> claim released -> Unavailable (503)
//!   Busy     the id was claimed less than a lease ago: published, being published, or its
//!            holder crashed -> Busy (Stripe: 409, retried later; after the lease it publishes)
//!   Replayed a record the former run_once protocol completed -> Duplicate (nothing published)
//!   Conflict same id, other content -> Conflict (refused)
//! ```
//!
//! Why the leased mode and not `run_once`: the payment processor applies each event once by its
//! provider event id (its own ledger, then the order's watermark), so this dedupe only has to
//! keep duplicate publishes rare, and its happy path is then one Firestore round trip (the
//! claim's create) instead of two (create, then complete). A provider's resend within the lease
//! is answered "retry", and one after the lease is published again: both rare, both harmless.
//! Crash between the claim and the publish: the provider got no 2xx and retries; within the
//! lease it is told to retry again, after it the event is published. It is never lost while
//! the provider retries for longer than the lease (Stripe: days; Pesapal also gets the status
//! from the processor's reconciliation).

use domain::messages::{PaymentEvent, PaymentEventKind, PaymentEvents, PaymentProvider};
use serde::Serialize;
use store::ledger::{Outcome, RunError};

use crate::AppState;

// `v2` since fingerprints hash the payload's serde JSON (`store::ledger::fingerprint`; they
// hashed its `Debug` text before): records of the former format are not consulted, so an event
// redelivered across that deploy is forwarded again, which the processor's own
// ledger and the order's state machine make harmless, instead of being refused as a conflict.
/// Ledger scope of Stripe event ids.
pub const STRIPE_SCOPE: &str = "webhook:stripe:v2";
/// Ledger scope of Pesapal IPN ids.
pub const PESAPAL_SCOPE: &str = "webhook:pesapal:v2";

/// What became of an event.
#[derive(Debug)]
pub(crate) enum Forwarded {
    /// Published now.
    Published,
    /// Forwarded and saved as done by the former protocol: nothing published.
    Duplicate,
    /// The same event id was claimed less than a lease ago: nothing published now.
    Busy,
    /// The id was seen with different content.
    Conflict,
    /// Firestore or Pub/Sub failed: the provider should retry.
    Unavailable(anyhow::Error),
}

pub(crate) async fn forward(state: &AppState, event: &PaymentEvent) -> Forwarded {
    let (scope, provider) = match event.provider {
        PaymentProvider::Stripe => (STRIPE_SCOPE, "stripe"),
        PaymentProvider::Pesapal => (PESAPAL_SCOPE, "pesapal"),
    };
    let key = &event.provider_event_id;
    let attributes = bus::Attributes::new()
        .with("provider", provider)
        .with("provider_event_id", key.chars().take(512).collect::<String>());
    let outcome = state
        .ledger
        .run_leased(scope, key, &Fingerprint::of(event), state.lease, || async {
            let message_id = state
                .bus
                .publish_within::<PaymentEvents>(event, attributes, state.publish_deadline)
                .await?;
            Ok::<_, bus::PublishError>(Saved { message_id: message_id.as_str().to_owned() })
        })
        .await;
    match outcome {
        Ok(Outcome::Ran(Saved { message_id })) => {
            tracing::info!(event_id = %key, order_id = %event.order_id, kind = ?event.kind, %message_id, "payment event forwarded");
            Forwarded::Published
        }
        Ok(Outcome::Replayed(_)) => Forwarded::Duplicate,
        Ok(Outcome::Busy { .. }) => Forwarded::Busy,
        Ok(Outcome::Conflict) => Forwarded::Conflict,
        Err(RunError::Ledger(error)) => {
            Forwarded::Unavailable(anyhow::Error::new(error).context("ledger claim"))
        }
        Err(RunError::Work(error)) => {
            Forwarded::Unavailable(anyhow::Error::new(error).context("publish to payment-events"))
        }
    }
}

/// What a forwarded event answers the ledger (the leased mode saves nothing).
#[derive(Debug, Serialize)]
struct Saved {
    message_id: String,
}

/// What must not change between deliveries of one event id: kind, order and payment (its
/// serde form is hashed).
#[derive(Debug, Serialize)]
struct Fingerprint<'a> {
    kind: PaymentEventKind,
    provider_type: &'a str,
    order_id: &'a str,
    payment_id: &'a str,
}

impl<'a> Fingerprint<'a> {
    fn of(event: &'a PaymentEvent) -> Self {
        Self {
            kind: event.kind,
            provider_type: &event.provider_type,
            order_id: &event.order_id,
            payment_id: &event.payment_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_the_serde_form_of_what_must_not_change() {
        let fingerprint = Fingerprint {
            kind: PaymentEventKind::StatusChanged,
            provider_type: "IPNCHANGE",
            order_id: "ord_1",
            payment_id: "trk_1",
        };
        assert_eq!(
            serde_json::to_string(&fingerprint).unwrap(),
            r#"{"kind":"status_changed","provider_type":"IPNCHANGE","order_id":"ord_1","payment_id":"trk_1"}"#
        );
    }
}
