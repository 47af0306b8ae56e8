//! Pub/Sub emulator helpers over its REST surface: topics, pull subscriptions, pull and ack.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

/// One pulled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub ack_id: String,
    pub message_id: String,
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub ordering_key: Option<String>,
    pub delivery_attempt: Option<i32>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("reqwest client")
}

async fn put(url: String, body: Value) {
    let res =
        client().put(&url).json(&body).send().await.unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    let status = res.status();
    // 409: already exists, which is fine for idempotent setup.
    if !status.is_success() && status.as_u16() != 409 {
        panic!("PUT {url}: {status} {}", res.text().await.unwrap_or_default());
    }
}

/// Creates `projects/{project}/topics/{topic}` (idempotent). Names need 3-255 chars and start with a letter.
pub async fn create_topic(host: &str, project: &str, topic: &str) {
    put(format!("http://{host}/v1/projects/{project}/topics/{topic}"), json!({})).await;
}

/// Creates a pull subscription on `topic` (idempotent).
pub async fn create_pull_subscription(host: &str, project: &str, subscription: &str, topic: &str) {
    create_subscription(
        host,
        project,
        subscription,
        json!({"topic": format!("projects/{project}/topics/{topic}")}),
    )
    .await;
}

/// Creates a subscription from a full REST body (push config, ordering, dead-letter policy...).
pub async fn create_subscription(host: &str, project: &str, subscription: &str, body: Value) {
    put(format!("http://{host}/v1/projects/{project}/subscriptions/{subscription}"), body).await;
}

/// Publishes raw data with attributes; returns the message id.
pub async fn publish(
    host: &str,
    project: &str,
    topic: &str,
    data: &[u8],
    attributes: &BTreeMap<String, String>,
) -> String {
    let url = format!("http://{host}/v1/projects/{project}/topics/{topic}:publish");
    let body = json!({"messages": [{"data": STANDARD.encode(data), "attributes": attributes}]});
    let res: Value = client().post(&url).json(&body).send().await.unwrap().json().await.unwrap();
    res["messageIds"][0].as_str().unwrap_or_else(|| panic!("publish to {topic}: {res}")).to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PullResponse {
    #[serde(default)]
    received_messages: Vec<RawReceived>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReceived {
    ack_id: String,
    message: RawMessage,
    delivery_attempt: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessage {
    message_id: String,
    #[serde(default)]
    data: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    ordering_key: String,
}

/// Pulls up to `max` messages (returns immediately, possibly with none).
pub async fn pull(host: &str, project: &str, subscription: &str, max: u32) -> Vec<Received> {
    let url = format!("http://{host}/v1/projects/{project}/subscriptions/{subscription}:pull");
    let res = client()
        .post(&url)
        .json(&json!({"maxMessages": max, "returnImmediately": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert!(status.is_success(), "pull {subscription}: {status} {text}");
    let parsed: PullResponse =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("pull response {text}: {e}"));
    parsed
        .received_messages
        .into_iter()
        .map(|r| Received {
            ack_id: r.ack_id,
            message_id: r.message.message_id,
            data: STANDARD.decode(r.message.data).expect("emulator sends standard base64"),
            attributes: r.message.attributes,
            ordering_key: Some(r.message.ordering_key).filter(|k| !k.is_empty()),
            delivery_attempt: r.delivery_attempt,
        })
        .collect()
}

/// Pulls until at least `n` messages arrived or `timeout` passed.
pub async fn pull_at_least(
    host: &str,
    project: &str,
    subscription: &str,
    n: usize,
    timeout: std::time::Duration,
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut all = Vec::new();
    while all.len() < n && tokio::time::Instant::now() < deadline {
        let batch = pull(host, project, subscription, 100).await;
        if batch.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        } else {
            ack(host, project, subscription, batch.iter().map(|r| r.ack_id.clone()).collect())
                .await;
            all.extend(batch);
        }
    }
    all
}

/// Acknowledges pulled messages.
pub async fn ack(host: &str, project: &str, subscription: &str, ack_ids: Vec<String>) {
    if ack_ids.is_empty() {
        return;
    }
    let url =
        format!("http://{host}/v1/projects/{project}/subscriptions/{subscription}:acknowledge");
    let res = client().post(&url).json(&json!({"ackIds": ack_ids})).send().await.unwrap();
    assert!(res.status().is_success(), "ack on {subscription}: {}", res.status());
}
