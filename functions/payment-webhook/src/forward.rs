//! Dedupe and forward: claim the provider's event id in the ledger, publish the
//! `PaymentEvent` to `payment-events` (ordering key: the order id), settle the claim.
//!
//! ```text
//! claim(scope, event id)  Fresh   -> publish -> complete -> Forwarded
//!                                    publish failed / timed out -> release -> Unavailable (503)
//!                         Done    -> Duplicate (acknowledged, nothing published)
//!                         InFlight-> Busy (409: the provider retries later)
//!                         Mismatch-> Conflict (same id, other content: refused)
//! ```

use domain::messages::{PaymentEvent, PaymentEvents, PaymentProvider};
use sha2::{Digest, Sha256};
use store::Claim;

use crate::AppState;

/// Ledger scope of Stripe event ids.
pub const STRIPE_SCOPE: &str = "webhook:stripe";
/// Ledger scope of Pesapal IPN ids.
pub const PESAPAL_SCOPE: &str = "webhook:pesapal";

/// What became of an event.
#[derive(Debug)]
pub(crate) enum Forwarded {
    /// Published now.
    Published,
    /// Seen before: nothing published.
    Duplicate,
    /// Another delivery of the same event is being forwarded.
    Busy,
    /// The id was seen with different content.
    Conflict,
    /// Firestore or Pub/Sub failed: the provider should retry.
    Unavailable(anyhow::Error),
}

pub(crate) async fn forward(state: &AppState, event: &PaymentEvent) -> Forwarded {
    let scope = match event.provider {
        PaymentProvider::Stripe => STRIPE_SCOPE,
        PaymentProvider::Pesapal => PESAPAL_SCOPE,
    };
    let key = &event.provider_event_id;
    let claim = match state.ledger.claim(scope, key, &fingerprint(event), state.lease).await {
        Ok(claim) => claim,
        Err(error) => {
            return Forwarded::Unavailable(anyhow::Error::new(error).context("ledger claim"));
        }
    };
    let token = match claim {
        Claim::Fresh(token) => token,
        Claim::Done(_) => return Forwarded::Duplicate,
        Claim::InFlight { .. } => return Forwarded::Busy,
        Claim::Mismatch => return Forwarded::Conflict,
    };
    let attributes = bus::Attributes::new()
        .with("provider", scope.trim_start_matches("webhook:"))
        .with("provider_event_id", key.chars().take(512).collect::<String>());
    match state.bus.publish_within::<PaymentEvents>(event, attributes, state.publish_deadline).await
    {
        Ok(message_id) => {
            let saved = serde_json::json!({ "message_id": message_id.as_str() });
            if let Err(error) = state.ledger.complete(&token, &saved).await {
                // Published already: a retry of the provider will find the lease over and
                // publish again, which the processor dedupes by the same event id.
                tracing::warn!(%error, event_id = %key, "could not settle the webhook claim");
            }
            tracing::info!(event_id = %key, order_id = %event.order_id, kind = ?event.kind, %message_id, "payment event forwarded");
            Forwarded::Published
        }
        Err(error) => {
            if let Err(release) = state.ledger.release(&token).await {
                tracing::warn!(error = %release, event_id = %key, "could not release the webhook claim");
            }
            Forwarded::Unavailable(anyhow::Error::new(error).context("publish to payment-events"))
        }
    }
}

/// What must not change between deliveries of one event id: kind, order and payment.
fn fingerprint(event: &PaymentEvent) -> String {
    let text =
        format!("{:?}|{}|{}|{}", event.kind, event.provider_type, event.order_id, event.payment_id);
    hex::encode(Sha256::digest(text.as_bytes()))
}
