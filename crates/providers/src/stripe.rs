//! Stripe webhooks: `Stripe-Signature` verification and the mapping of Stripe events to
//! [`PaymentEvent`]s.
//!
//! Signature (Stripe docs, "Verify webhook signatures manually"): the header is
//! `t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]`; the expected `v1` is
//! `hex(HMAC-SHA256(secret, "{t}.{raw body}"))`. Every `v1` is compared against every active
//! secret (several during a rotation) in constant time; `v0` (test-mode legacy scheme) is
//! ignored. A timestamp further than the tolerance (300 s by default, Stripe's own) from now,
//! in either direction, is refused, which bounds replays of a captured request.

use chrono::{DateTime, Utc};
use domain::messages::{PaymentEvent, PaymentEventKind, PaymentProvider, Version};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use std::time::Duration;

/// Stripe's default signature tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Longest `Stripe-Signature` header accepted.
const MAX_HEADER_BYTES: usize = 4096;

/// Why a signature is refused. Messages are safe to log; callers see one generic answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("missing Stripe-Signature header")]
    Missing,
    /// The header cannot be parsed (no `t=`, no `v1=`, not numbers / hex, too long).
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("signature timestamp {age_secs} s from now, tolerance {tolerance_secs} s")]
    Stale {
        /// Now minus `t` (negative: from the future).
        age_secs: i64,
        /// The tolerance.
        tolerance_secs: u64,
    },
    /// No `v1` matches any active secret.
    #[error("no signature matches an active secret")]
    Mismatch,
    /// No secret is configured.
    #[error("no webhook secret configured")]
    NoSecret,
}

/// Verifies `header` over `body` at `now` (unix seconds); returns the signed timestamp.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    tolerance: Duration,
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match key {
            "t" => {
                timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => candidates.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, candidates.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    let age = now.saturating_sub(t);
    let tolerance_secs = tolerance.as_secs();
    if age.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::Stale { age_secs: age, tolerance_secs });
    }
    for secret in secrets {
        for candidate in &candidates {
            if mac(secret.expose_secret(), t, body).verify_slice(candidate).is_ok() {
                return Ok(t);
            }
        }
    }
    Err(SignatureError::Mismatch)
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Stripe-Signature` header Stripe would send for `body` at `t` with `secret` (for the
/// fake provider and tests).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body).finalize().into_bytes()))
}

/// The parts of a Stripe event this system reads.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeEvent {
    /// `evt_...`
    pub id: String,
    /// `payment_intent.succeeded`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    /// `{"object": {...}}`
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The PaymentIntent (or Charge, for `charge.refunded`).
    pub object: EventObject,
}

/// The event's object, as far as payments go.
#[derive(Debug, Clone, Deserialize)]
pub struct EventObject {
    /// `pi_...` or `ch_...`.
    pub id: String,
    /// Minor units.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Lower-case ISO code.
    #[serde(default)]
    pub currency: Option<String>,
    /// PaymentIntent status.
    #[serde(default)]
    pub status: Option<String>,
    /// For a Charge: refunded so far, minor units (cumulative; `refunded` is true only when
    /// this reaches `amount`).
    #[serde(default)]
    pub amount_refunded: Option<i64>,
    /// For a Charge: its PaymentIntent.
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// Our `order_id` travels here.
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
}

/// What to do with a verified Stripe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// Forward it.
    Event(Box<PaymentEvent>),
    /// A type this system does not act on: acknowledge and ignore.
    Ignored {
        /// The Stripe event type.
        event_type: String,
    },
    /// An interesting type without our `order_id` metadata (not created by us): acknowledge
    /// and ignore, with a warning.
    NoOrder {
        /// The Stripe event id.
        event_id: String,
    },
}

/// The event kind of a Stripe event type, `None` for types we ignore.
pub fn kind_of(event_type: &str) -> Option<PaymentEventKind> {
    Some(match event_type {
        "payment_intent.succeeded" => PaymentEventKind::Succeeded,
        "payment_intent.payment_failed" => PaymentEventKind::Failed,
        "payment_intent.canceled" => PaymentEventKind::Canceled,
        "payment_intent.processing" => PaymentEventKind::Processing,
        "charge.refunded" => PaymentEventKind::Refunded,
        _ => return None,
    })
}

/// Parses a verified body and maps it.
pub fn map_event(body: &[u8]) -> Result<Mapped, serde_json::Error> {
    let event: StripeEvent = serde_json::from_slice(body)?;
    let Some(kind) = kind_of(&event.event_type) else {
        return Ok(Mapped::Ignored { event_type: event.event_type });
    };
    let object = event.data.object;
    let Some(order_id) = object.metadata.get("order_id").filter(|o| valid_id(o)).cloned() else {
        return Ok(Mapped::NoOrder { event_id: event.id });
    };
    let payment_id = match kind {
        PaymentEventKind::Refunded => object.payment_intent.unwrap_or(object.id),
        _ => object.id,
    };
    let occurred_at = DateTime::<Utc>::from_timestamp(event.created, 0).unwrap_or_default();
    Ok(Mapped::Event(Box::new(PaymentEvent {
        v: Version,
        provider: PaymentProvider::Stripe,
        provider_event_id: event.id,
        kind,
        provider_type: event.event_type,
        order_id,
        payment_id,
        amount_minor: object.amount,
        currency: object.currency,
        raw_status: object.status,
        amount_refunded_minor: match kind {
            PaymentEventKind::Refunded => object.amount_refunded,
            _ => None,
        },
        occurred_at,
    })))
}

/// Ids we accept from providers: 1-128 chars of `[A-Za-z0-9_.-]` (safe as document ids and
/// ordering keys).
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && id != "."
        && id != ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::from((*s).to_owned())).collect()
    }

    const NOW: i64 = 1_750_000_000;

    #[test]
    fn a_correct_signature_verifies_with_any_active_secret() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("whsec_new", NOW - 10, body);
        let both = secrets(&["whsec_old", "whsec_new"]);
        assert_eq!(verify(Some(&header), body, &both, DEFAULT_TOLERANCE, NOW), Ok(NOW - 10));
        // Several v1 values (Stripe sends one per active secret during a rotation).
        let v1 = |secret: &str| sign(secret, NOW, body).split_once("v1=").unwrap().1.to_owned();
        let two = format!("t={NOW},v1={},v1={}", v1("whsec_other"), v1("whsec_new"));
        assert_eq!(verify(Some(&two), body, &both, DEFAULT_TOLERANCE, NOW), Ok(NOW));
        // The rotated-out secret alone no longer verifies.
        let old_only = secrets(&["whsec_old"]);
        assert_eq!(
            verify(Some(&header), body, &old_only, DEFAULT_TOLERANCE, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn forged_stale_and_malformed_signatures_are_refused() {
        let body = br#"{"id":"evt_1"}"#;
        let s = secrets(&["whsec_a"]);
        let forged = sign("whsec_attacker", NOW, body);
        assert_eq!(
            verify(Some(&forged), body, &s, DEFAULT_TOLERANCE, NOW),
            Err(SignatureError::Mismatch)
        );
        let other_body = sign("whsec_a", NOW, br#"{"id":"evt_2"}"#);
        assert_eq!(
            verify(Some(&other_body), body, &s, DEFAULT_TOLERANCE, NOW),
            Err(SignatureError::Mismatch)
        );
        let stale = sign("whsec_a", NOW - 301, body);
        assert!(matches!(
            verify(Some(&stale), body, &s, DEFAULT_TOLERANCE, NOW),
            Err(SignatureError::Stale { .. })
        ));
        let future = sign("whsec_a", NOW + 301, body);
        assert!(matches!(
            verify(Some(&future), body, &s, DEFAULT_TOLERANCE, NOW),
            Err(SignatureError::Stale { .. })
        ));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            assert_eq!(
                verify(Some(bad), body, &s, DEFAULT_TOLERANCE, NOW),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(verify(None, body, &s, DEFAULT_TOLERANCE, NOW), Err(SignatureError::Missing));
        assert_eq!(
            verify(Some(&forged), body, &[], DEFAULT_TOLERANCE, NOW),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn events_map_to_payment_events() {
        let body = json!({
            "id": "evt_9", "object": "event", "type": "payment_intent.succeeded", "created": NOW,
            "data": {"object": {"id": "pi_9", "object": "payment_intent", "amount": 1500,
                "currency": "usd", "status": "succeeded", "metadata": {"order_id": "ord_1"}}}
        });
        let Mapped::Event(event) = map_event(body.to_string().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(event.kind, PaymentEventKind::Succeeded);
        assert_eq!(event.order_id, "ord_1");
        assert_eq!(event.payment_id, "pi_9");
        assert_eq!(event.amount_minor, Some(1500));
        assert_eq!(event.occurred_at.timestamp(), NOW);

        // A partial refund carries the cumulative refunded amount.
        let refund = json!({
            "id": "evt_r", "type": "charge.refunded", "created": NOW,
            "data": {"object": {"id": "ch_1", "object": "charge", "amount": 1500,
                "amount_refunded": 500, "refunded": false, "currency": "usd",
                "payment_intent": "pi_9", "metadata": {"order_id": "ord_1"}}}
        });
        let Mapped::Event(event) = map_event(refund.to_string().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(event.kind, PaymentEventKind::Refunded);
        assert_eq!(event.payment_id, "pi_9");
        assert_eq!(event.amount_minor, Some(1500));
        assert_eq!(event.amount_refunded_minor, Some(500));

        let ignored = json!({"id": "evt_x", "type": "customer.created", "created": NOW, "data": {"object": {"id": "cus_1"}}});
        assert_eq!(
            map_event(ignored.to_string().as_bytes()).unwrap(),
            Mapped::Ignored { event_type: "customer.created".to_owned() }
        );
        let foreign = json!({"id": "evt_y", "type": "payment_intent.succeeded", "created": NOW, "data": {"object": {"id": "pi_1"}}});
        assert_eq!(
            map_event(foreign.to_string().as_bytes()).unwrap(),
            Mapped::NoOrder { event_id: "evt_y".to_owned() }
        );
        assert!(map_event(b"{not json").is_err());
        assert!(map_event(br#"{"id":"evt"}"#).is_err());
    }

    #[test]
    fn provider_ids_are_checked() {
        assert!(valid_id("ord_1-a.b"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(".."));
        assert!(!valid_id(&"a".repeat(129)));
    }
}
