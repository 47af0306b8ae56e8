//! The wrapped Pub/Sub push envelope (contracts 2.1): parsed into a typed [`PushEvent<T>`] by
//! [`parse_push`], and produced by [`build_push_envelope`] (tests and the local stack deliver
//! push themselves).
//!
//! Decisions:
//! - `messageId`/`message_id` and `publishTime`/`publish_time` may both appear (Pub/Sub sends
//!   both); either is enough; if both appear they must agree. `orderingKey`/`ordering_key` and
//!   `deliveryAttempt`/`delivery_attempt` are read in either spelling. The builder writes both
//!   spellings of id and time, as Pub/Sub does.
//! - `data` is base64 in the **standard** alphabet (what Pub/Sub produces); padding may be
//!   omitted, but the URL-safe alphabet (`-`, `_`) is refused: a second spelling of the same
//!   bytes would only hide a bug in whoever built the envelope.
//! - absent (or empty) `data`, the attributes-only message, is handed to `T` as JSON `null`:
//!   `Option<U>` gets `None`, `()` gets `()`, and a `T` that needs a value fails with
//!   [`PushError::MissingData`]. A message with neither data nor attributes is malformed.
//! - `deliveryAttempt` is `None` when absent or 0 (Pub/Sub sets it only with a dead-letter policy).
//! - bodies over [`MAX_ENVELOPE_BYTES`] and data over [`MAX_DATA_BYTES`] (Pub/Sub's 10 MB
//!   message limit) are refused before decoding.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::callable::Code;
use crate::error::PublicError;

/// Pub/Sub's limit on message data.
pub const MAX_DATA_BYTES: usize = 10_000_000;
/// Largest envelope accepted: base64 of [`MAX_DATA_BYTES`] plus attributes and metadata.
/// Runtime body limits for push endpoints should be at least this.
pub const MAX_ENVELOPE_BYTES: usize = 14 * 1024 * 1024;

const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A push delivery, typed. `data` is the message data decoded from base64 then from JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct PushEvent<T> {
    /// Stable across redeliveries: the idempotency key.
    pub message_id: String,
    pub publish_time: DateTime<Utc>,
    pub attributes: BTreeMap<String, String>,
    pub ordering_key: Option<String>,
    /// 1 + NACKs; only set when the subscription has a dead-letter policy.
    pub delivery_attempt: Option<u32>,
    /// `projects/P/subscriptions/S`.
    pub subscription: String,
    pub data: T,
}

impl<T> PushEvent<T> {
    /// The same delivery with other data.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PushEvent<U> {
        PushEvent {
            message_id: self.message_id,
            publish_time: self.publish_time,
            attributes: self.attributes,
            ordering_key: self.ordering_key,
            delivery_attempt: self.delivery_attempt,
            subscription: self.subscription,
            data: f(self.data),
        }
    }
}

/// Why a push body was refused. All answer `INVALID_ARGUMENT`: redelivering the same bytes
/// cannot succeed, so the runtime treats them as permanent (acknowledge and dead-letter).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push body larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    #[error("push body is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("push body is not a push envelope: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("push envelope has no {0}")]
    MissingField(&'static str),
    #[error("push envelope spells {0} twice with different values")]
    ConflictingField(&'static str),
    #[error("push message has neither data nor attributes")]
    EmptyMessage,
    #[error("push message publish time is not RFC 3339")]
    BadPublishTime,
    #[error("push message data larger than {MAX_DATA_BYTES} bytes")]
    DataTooLarge,
    #[error("push message data is not standard base64")]
    BadBase64(#[source] base64::DecodeError),
    #[error("push message data is not JSON")]
    DataNotJson(#[source] serde_json::Error),
    #[error("push message data does not have the expected shape")]
    DataShape(#[source] serde_json::Error),
    #[error("push message has no data but its type requires a value")]
    MissingData(#[source] serde_json::Error),
}

impl PublicError for PushError {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }

    fn public_message(&self) -> String {
        match self {
            PushError::TooLarge | PushError::DataTooLarge => "push message too large",
            PushError::NotJson(_)
            | PushError::Malformed(_)
            | PushError::MissingField(_)
            | PushError::ConflictingField(_)
            | PushError::EmptyMessage
            | PushError::BadPublishTime => "malformed push envelope",
            PushError::BadBase64(_) => "push message data is not base64",
            PushError::DataNotJson(_) => "push message data is not JSON",
            PushError::DataShape(_) | PushError::MissingData(_) => {
                "push message data does not have the expected shape"
            }
        }
        .to_owned()
    }
}

#[derive(Deserialize)]
struct RawEnvelope {
    message: RawMessage,
    subscription: Option<String>,
    #[serde(rename = "deliveryAttempt", alias = "delivery_attempt")]
    delivery_attempt: Option<u32>,
}

#[derive(Deserialize)]
struct RawMessage {
    data: Option<String>,
    attributes: Option<BTreeMap<String, String>>,
    #[serde(rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(rename = "publish_time")]
    publish_time_snake: Option<String>,
    #[serde(rename = "orderingKey")]
    ordering_key_camel: Option<String>,
    #[serde(rename = "ordering_key")]
    ordering_key_snake: Option<String>,
}

fn either(
    name: &'static str,
    camel: Option<String>,
    snake: Option<String>,
) -> Result<Option<String>, PushError> {
    match (camel, snake) {
        (Some(a), Some(b)) if a != b => Err(PushError::ConflictingField(name)),
        (a, b) => Ok(a.or(b)),
    }
}

/// Parses a push body into a delivery whose data is the raw decoded bytes (empty when absent).
pub fn parse_push_bytes(body: &[u8]) -> Result<PushEvent<Bytes>, PushError> {
    if body.len() > MAX_ENVELOPE_BYTES {
        return Err(PushError::TooLarge);
    }
    let value: Value = serde_json::from_slice(body).map_err(PushError::NotJson)?;
    let raw: RawEnvelope = serde_json::from_value(value).map_err(PushError::Malformed)?;
    let m = raw.message;
    let message_id = either("messageId", m.message_id_camel, m.message_id_snake)?
        .filter(|id| !id.is_empty())
        .ok_or(PushError::MissingField("messageId"))?;
    let publish_time = either("publishTime", m.publish_time_camel, m.publish_time_snake)?
        .ok_or(PushError::MissingField("publishTime"))?;
    let publish_time = DateTime::parse_from_rfc3339(&publish_time)
        .map_err(|_| PushError::BadPublishTime)?
        .with_timezone(&Utc);
    let ordering_key = either("orderingKey", m.ordering_key_camel, m.ordering_key_snake)?
        .filter(|k| !k.is_empty());
    let subscription = raw.subscription.ok_or(PushError::MissingField("subscription"))?;
    let attributes = m.attributes.unwrap_or_default();
    let encoded = m.data.unwrap_or_default();
    if encoded.is_empty() && attributes.is_empty() {
        return Err(PushError::EmptyMessage);
    }
    if encoded.len() / 4 * 3 > MAX_DATA_BYTES + 3 {
        return Err(PushError::DataTooLarge);
    }
    let data = STANDARD_LENIENT.decode(encoded.as_bytes()).map_err(PushError::BadBase64)?;
    if data.len() > MAX_DATA_BYTES {
        return Err(PushError::DataTooLarge);
    }
    Ok(PushEvent {
        message_id,
        publish_time,
        attributes,
        ordering_key,
        delivery_attempt: raw.delivery_attempt.filter(|n| *n > 0),
        subscription,
        data: Bytes::from(data),
    })
}

/// Parses a push body and its data (JSON) into the caller's type.
pub fn parse_push<T: DeserializeOwned>(body: &[u8]) -> Result<PushEvent<T>, PushError> {
    let event = parse_push_bytes(body)?;
    let data = if event.data.is_empty() {
        T::deserialize(Value::Null).map_err(PushError::MissingData)?
    } else {
        let value: Value = serde_json::from_slice(&event.data).map_err(PushError::DataNotJson)?;
        serde_json::from_value(value).map_err(PushError::DataShape)?
    };
    Ok(event.map(|_| data))
}

/// Serializes a delivery as Pub/Sub would push it: `data` is the JSON of `event.data` in
/// standard base64, omitted when that JSON is `null` (attributes-only message).
pub fn build_push_envelope<T: Serialize>(
    event: &PushEvent<T>,
) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_value(&event.data)?;
    let data = if json.is_null() { Vec::new() } else { serde_json::to_vec(&json)? };
    build_push_envelope_bytes(&PushEvent {
        message_id: event.message_id.clone(),
        publish_time: event.publish_time,
        attributes: event.attributes.clone(),
        ordering_key: event.ordering_key.clone(),
        delivery_attempt: event.delivery_attempt,
        subscription: event.subscription.clone(),
        data,
    })
}

/// Serializes a delivery whose data is raw bytes (omitted when empty).
pub fn build_push_envelope_bytes(
    event: &PushEvent<impl AsRef<[u8]>>,
) -> Result<Vec<u8>, serde_json::Error> {
    let time = event.publish_time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mut message = Map::new();
    let data = event.data.as_ref();
    if !data.is_empty() {
        message.insert(
            "data".to_owned(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
        );
    }
    if !event.attributes.is_empty() {
        message.insert("attributes".to_owned(), serde_json::to_value(&event.attributes)?);
    }
    message.insert("messageId".to_owned(), Value::String(event.message_id.clone()));
    message.insert("message_id".to_owned(), Value::String(event.message_id.clone()));
    message.insert("publishTime".to_owned(), Value::String(time.clone()));
    message.insert("publish_time".to_owned(), Value::String(time));
    if let Some(key) = &event.ordering_key {
        message.insert("orderingKey".to_owned(), Value::String(key.clone()));
    }
    let mut envelope = Map::new();
    envelope.insert("message".to_owned(), Value::Object(message));
    envelope.insert("subscription".to_owned(), Value::String(event.subscription.clone()));
    if let Some(attempt) = event.delivery_attempt {
        envelope.insert("deliveryAttempt".to_owned(), Value::from(attempt));
    }
    serde_json::to_vec(&Value::Object(envelope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Signup {
        uid: String,
    }

    fn envelope(message: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"message": message, "subscription": "projects/p/subscriptions/s"}),
        )
        .unwrap()
    }

    #[test]
    fn snake_case_only_keys_are_accepted() {
        let body = envelope(json!({
            "data": "eyJ1aWQiOiJ1MSJ9", "message_id": "7", "publish_time": "2021-02-26T19:13:55.749Z",
            "ordering_key": "k"
        }));
        let ev = parse_push::<Signup>(&body).unwrap();
        assert_eq!(ev.message_id, "7");
        assert_eq!(ev.ordering_key.as_deref(), Some("k"));
        assert_eq!(ev.data.uid, "u1");
    }

    #[test]
    fn conflicting_spellings_are_refused() {
        let body = envelope(
            json!({"data": "e30=", "messageId": "1", "message_id": "2", "publishTime": "2021-02-26T19:13:55Z"}),
        );
        assert!(matches!(
            parse_push::<Value>(&body),
            Err(PushError::ConflictingField("messageId"))
        ));
    }

    #[test]
    fn padding_is_optional_but_the_alphabet_is_standard() {
        // {"uid":"?"} encodes with '/' in standard and '_' in URL-safe base64, with padding.
        let raw = br#"{"uid":"?"}"#;
        let std = base64::engine::general_purpose::STANDARD.encode(raw);
        let url = base64::engine::general_purpose::URL_SAFE.encode(raw);
        assert_ne!(std, url);
        let mk = |data: &str| {
            envelope(json!({"data": data, "messageId": "1", "publishTime": "2021-02-26T19:13:55Z"}))
        };
        assert!(std.contains('/') && std.ends_with('='));
        assert_eq!(parse_push::<Signup>(&mk(&std)).unwrap().data.uid, "?");
        assert_eq!(parse_push::<Signup>(&mk(std.trim_end_matches('='))).unwrap().data.uid, "?");
        assert!(matches!(parse_push::<Signup>(&mk(&url)), Err(PushError::BadBase64(_))));
    }

    #[test]
    fn delivery_attempt_zero_is_none() {
        let body = serde_json::to_vec(&json!({
            "message": {"data": "e30=", "messageId": "1", "publishTime": "2021-02-26T19:13:55Z"},
            "subscription": "projects/p/subscriptions/s", "delivery_attempt": 0
        }))
        .unwrap();
        assert_eq!(parse_push::<Value>(&body).unwrap().delivery_attempt, None);
    }

    #[test]
    fn data_too_large_is_refused_before_decoding() {
        let data = "A".repeat(MAX_DATA_BYTES / 3 * 4 + 8);
        let body = envelope(
            json!({"data": data, "messageId": "1", "publishTime": "2021-02-26T19:13:55Z"}),
        );
        assert!(matches!(parse_push_bytes(&body), Err(PushError::DataTooLarge)));
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(parse_push_bytes(&huge), Err(PushError::TooLarge)));
    }
}
