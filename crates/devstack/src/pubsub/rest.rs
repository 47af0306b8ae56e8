//! The Pub/Sub emulator's REST surface, as the delivery engine uses it: topics, pull
//! subscriptions, pull, acknowledge, lease extension and publish. Errors are values (a dev
//! tool that loses its emulator logs and keeps going), never panics.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// A failed call to the emulator.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("Pub/Sub emulator unreachable ({what}): {source}")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Pub/Sub emulator refused {what}: HTTP {status}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("Pub/Sub emulator answered {what} with an unexpected body: {message}")]
    Body { what: String, message: String },
}

/// One pulled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub ack_id: String,
    pub message: PubsubMessage,
}

/// A message as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubMessage {
    pub message_id: String,
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub ordering_key: Option<String>,
    pub publish_time: DateTime<Utc>,
}

/// How to create a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    pub topic: String,
    pub ack_deadline: Duration,
    pub ordering: bool,
}

/// A client of one project in the emulator.
#[derive(Debug, Clone)]
pub struct PubsubRest {
    http: reqwest::Client,
    host: String,
    project: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullResponse {
    #[serde(default)]
    received_messages: Vec<RawReceived>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReceived {
    ack_id: String,
    message: RawMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessage {
    message_id: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    ordering_key: String,
    publish_time: Option<String>,
}

impl PubsubRest {
    /// `host` is `host:port` (what `PUBSUB_EMULATOR_HOST` holds).
    pub fn new(host: &str, project: &str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self { http, host: host.to_owned(), project: project.to_owned() }
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// `projects/P/topics/T`
    pub fn topic_name(&self, topic: &str) -> String {
        format!("projects/{}/topics/{topic}", self.project)
    }

    /// `projects/P/subscriptions/S`
    pub fn subscription_name(&self, subscription: &str) -> String {
        format!("projects/{}/subscriptions/{subscription}", self.project)
    }

    fn url(&self, resource: &str) -> String {
        format!("http://{}/v1/{resource}", self.host)
    }

    async fn call(
        &self,
        what: String,
        request: reqwest::RequestBuilder,
        allow_conflict: bool,
    ) -> Result<String, RestError> {
        let response = request
            .send()
            .await
            .map_err(|source| RestError::Transport { what: what.clone(), source })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) || (allow_conflict && status == 409) {
            Ok(body)
        } else {
            Err(RestError::Status { what, status, body })
        }
    }

    /// Creates a topic (already existing is fine).
    pub async fn create_topic(&self, topic: &str) -> Result<(), RestError> {
        let name = self.topic_name(topic);
        let request = self.http.put(self.url(&name)).json(&json!({}));
        self.call(format!("creating {name}"), request, true).await.map(drop)
    }

    /// Creates a pull subscription (already existing is fine).
    pub async fn create_subscription(
        &self,
        subscription: &str,
        spec: &SubscriptionSpec,
    ) -> Result<(), RestError> {
        let name = self.subscription_name(subscription);
        let body = json!({
            "topic": self.topic_name(&spec.topic),
            "ackDeadlineSeconds": spec.ack_deadline.as_secs().clamp(10, 600),
            "enableMessageOrdering": spec.ordering,
        });
        let request = self.http.put(self.url(&name)).json(&body);
        self.call(format!("creating {name}"), request, true).await.map(drop)
    }

    /// Pulls up to `max` messages without waiting.
    pub async fn pull(&self, subscription: &str, max: usize) -> Result<Vec<Pulled>, RestError> {
        let name = self.subscription_name(subscription);
        let what = format!("pull on {name}");
        let request = self
            .http
            .post(self.url(&format!("{name}:pull")))
            .json(&json!({"maxMessages": max.max(1), "returnImmediately": true}));
        let body = self.call(what.clone(), request, false).await?;
        let parsed: PullResponse = serde_json::from_str(&body)
            .map_err(|e| RestError::Body { what: what.clone(), message: e.to_string() })?;
        parsed
            .received_messages
            .into_iter()
            .map(|r| {
                let data = STANDARD.decode(r.message.data.as_bytes()).map_err(|e| {
                    RestError::Body { what: what.clone(), message: format!("data: {e}") }
                })?;
                let publish_time = r
                    .message
                    .publish_time
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
                Ok(Pulled {
                    ack_id: r.ack_id,
                    message: PubsubMessage {
                        message_id: r.message.message_id,
                        data,
                        attributes: r.message.attributes,
                        ordering_key: Some(r.message.ordering_key).filter(|k| !k.is_empty()),
                        publish_time,
                    },
                })
            })
            .collect()
    }

    /// Acknowledges messages.
    pub async fn acknowledge(
        &self,
        subscription: &str,
        ack_ids: &[String],
    ) -> Result<(), RestError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let name = self.subscription_name(subscription);
        let request = self
            .http
            .post(self.url(&format!("{name}:acknowledge")))
            .json(&json!({"ackIds": ack_ids}));
        self.call(format!("acknowledge on {name}"), request, false).await.map(drop)
    }

    /// Extends (or with zero, releases) the leases of pulled messages.
    pub async fn modify_ack_deadline(
        &self,
        subscription: &str,
        ack_ids: &[String],
        deadline: Duration,
    ) -> Result<(), RestError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        let name = self.subscription_name(subscription);
        let request = self
            .http
            .post(self.url(&format!("{name}:modifyAckDeadline")))
            .json(&json!({"ackIds": ack_ids, "ackDeadlineSeconds": deadline.as_secs().min(600)}));
        self.call(format!("modifyAckDeadline on {name}"), request, false).await.map(drop)
    }

    /// Publishes one message; returns its id.
    pub async fn publish(
        &self,
        topic: &str,
        data: &[u8],
        attributes: &BTreeMap<String, String>,
        ordering_key: Option<&str>,
    ) -> Result<String, RestError> {
        let name = self.topic_name(topic);
        let what = format!("publish to {name}");
        let mut message = json!({"data": STANDARD.encode(data)});
        if !attributes.is_empty() {
            message["attributes"] = json!(attributes);
        }
        if let Some(key) = ordering_key {
            message["orderingKey"] = Value::String(key.to_owned());
        }
        let request = self
            .http
            .post(self.url(&format!("{name}:publish")))
            .json(&json!({"messages": [message]}));
        let body = self.call(what.clone(), request, false).await?;
        let parsed: Value = serde_json::from_str(&body)
            .map_err(|e| RestError::Body { what: what.clone(), message: e.to_string() })?;
        parsed["messageIds"][0]
            .as_str()
            .map(str::to_owned)
            .ok_or(RestError::Body { what, message: "no messageIds".to_owned() })
    }
}
