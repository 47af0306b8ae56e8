//! Push delivery with production semantics from a pull subscription: one loop per push
//! subscription of the manifest pulls messages, wraps each in the push envelope
//! (`gcp::pubsub`), POSTs it to the function with an OIDC token, and acknowledges, retries
//! after the retry policy's backoff, or dead-letters, as [`super::schedule`] decides.
//!
//! The loop holds pulled messages itself (their emulator lease is extended while they wait), so
//! the emulator's own, incomplete push behaviour never comes into play. If devstack dies, the
//! leases run out and the emulator hands the messages to the next run: at-least-once, as in
//! production.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gcp::pubsub::{PushEvent, build_push_envelope_bytes};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::rest::{PubsubMessage, PubsubRest};
use super::schedule::{Completion, Held, Outcome, RetryPolicy, Scheduler};
use crate::identity::{self, Caller};

/// How long devstack holds a pulled message before the emulator may redeliver it.
pub const LEASE: Duration = Duration::from_secs(600);
const RENEW_EVERY: Duration = Duration::from_secs(240);
/// Pause between pulls that found nothing.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Pause after the emulator failed a call.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Flow control: messages held (waiting or in flight) per subscription.
pub const MAX_OUTSTANDING: usize = 64;
/// The User-Agent Pub/Sub push requests carry.
pub const PUSH_USER_AGENT: &str =
    "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)";

/// One push subscription: where its messages go and how they are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRoute {
    pub function: String,
    pub topic: String,
    /// Subscription id (`<topic>--<function>` unless the manifest names it).
    pub subscription: String,
    /// The full URL of the push endpoint.
    pub endpoint: String,
    /// The OIDC audience the function expects (`HEARTH_OIDC_AUDIENCE`).
    pub audience: String,
    pub policy: RetryPolicy,
    pub ordered: bool,
    pub dead_letter_topic: String,
    /// The push request timeout (the subscription's ack deadline).
    pub ack_deadline: Duration,
}

/// Attribute names Pub/Sub adds to a dead-lettered message.
pub mod dead_letter_attributes {
    pub const DELIVERY_COUNT: &str = "CloudPubSubDeadLetterSourceDeliveryCount";
    pub const SUBSCRIPTION: &str = "CloudPubSubDeadLetterSourceSubscription";
    pub const SUBSCRIPTION_PROJECT: &str = "CloudPubSubDeadLetterSourceSubscriptionProject";
    pub const TOPIC_PUBLISH_TIME: &str = "CloudPubSubDeadLetterSourceTopicPublishTime";
}

/// The attributes of the dead-lettered copy: the original ones plus Pub/Sub's bookkeeping.
pub fn dead_letter_attrs(
    message: &PubsubMessage,
    project: &str,
    subscription: &str,
    attempts: u32,
) -> BTreeMap<String, String> {
    use dead_letter_attributes as a;
    let mut attrs = message.attributes.clone();
    attrs.insert(a::DELIVERY_COUNT.to_owned(), attempts.to_string());
    attrs.insert(a::SUBSCRIPTION.to_owned(), subscription.to_owned());
    attrs.insert(a::SUBSCRIPTION_PROJECT.to_owned(), project.to_owned());
    attrs.insert(
        a::TOPIC_PUBLISH_TIME.to_owned(),
        message.publish_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    attrs
}

/// The wrapped push body of `message` for delivery attempt `attempt`.
pub fn envelope(
    message: &PubsubMessage,
    subscription_name: &str,
    attempt: u32,
) -> Result<Vec<u8>, serde_json::Error> {
    build_push_envelope_bytes(&PushEvent {
        message_id: message.message_id.clone(),
        publish_time: message.publish_time,
        attributes: message.attributes.clone(),
        ordering_key: message.ordering_key.clone(),
        delivery_attempt: Some(attempt),
        subscription: subscription_name.to_owned(),
        data: message.data.as_slice(),
    })
}

/// POSTs one push request and reports how it ended.
pub async fn push_once(
    http: &reqwest::Client,
    route: &PushRoute,
    project: &str,
    message: &PubsubMessage,
    attempt: u32,
) -> Outcome {
    let subscription = format!("projects/{project}/subscriptions/{}", route.subscription);
    let body = match envelope(message, &subscription, attempt) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "cannot serialize a push envelope");
            return Outcome::NoAnswer;
        }
    };
    let token = identity::oidc_token(project, Caller::PubSub, &route.audience);
    let sent = http
        .post(&route.endpoint)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, PUSH_USER_AGENT)
        .bearer_auth(token)
        .timeout(route.ack_deadline)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(error) => {
            tracing::debug!(%error, endpoint = %route.endpoint, "push got no answer");
            Outcome::NoAnswer
        }
    }
}

/// Runs the delivery loop of `route` until `cancel` fires.
pub fn spawn(
    route: PushRoute,
    rest: PubsubRest,
    http: reqwest::Client,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { run(route, rest, http, cancel).await })
}

async fn run(route: PushRoute, rest: PubsubRest, http: reqwest::Client, cancel: CancellationToken) {
    let project = rest.project().to_owned();
    let mut scheduler: Scheduler<PubsubMessage> = Scheduler::new(route.policy, route.ordered);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, Outcome)>();
    let mut next_pull = Instant::now();
    let mut next_renew = Instant::now() + RENEW_EVERY;
    let mut emulator_failing = false;
    tracing::debug!(subscription = %route.subscription, endpoint = %route.endpoint, "push delivery started");
    loop {
        let now = Instant::now();
        if now >= next_pull {
            let room = MAX_OUTSTANDING.saturating_sub(scheduler.len());
            next_pull = now + IDLE_POLL;
            if room > 0 {
                match rest.pull(&route.subscription, room).await {
                    Ok(batch) => {
                        emulator_failing = false;
                        if !batch.is_empty() {
                            next_pull = now;
                        }
                        for pulled in batch {
                            let held = Held {
                                message_id: pulled.message.message_id.clone(),
                                ack_id: pulled.ack_id,
                                ordering_key: pulled.message.ordering_key.clone(),
                                message: pulled.message,
                            };
                            scheduler.offer(held, Instant::now());
                        }
                    }
                    Err(error) => {
                        if !emulator_failing {
                            tracing::warn!(subscription = %route.subscription, %error, "pull failed; retrying");
                        }
                        emulator_failing = true;
                        next_pull = now + ERROR_PAUSE;
                    }
                }
            }
        }
        for dispatch in scheduler.take_due(Instant::now(), usize::MAX) {
            let (http, route, project, done) =
                (http.clone(), route.clone(), project.clone(), done_tx.clone());
            tokio::spawn(async move {
                let outcome =
                    push_once(&http, &route, &project, &dispatch.message, dispatch.attempt).await;
                let _ = done.send((dispatch.message_id, outcome));
            });
        }
        if now >= next_renew {
            next_renew = now + RENEW_EVERY;
            if let Err(error) =
                rest.modify_ack_deadline(&route.subscription, &scheduler.ack_ids(), LEASE).await
            {
                tracing::warn!(subscription = %route.subscription, %error, "lease extension failed");
            }
        }
        let wake = [Some(next_pull), scheduler.next_due(), Some(next_renew)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_pull);
        tokio::select! {
            () = cancel.cancelled() => break,
            Some((message_id, outcome)) = done_rx.recv() => {
                let completion = scheduler.complete(&message_id, outcome, Instant::now());
                finish(&route, &rest, &project, &message_id, outcome, completion).await;
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
        }
    }
    // Hand held messages back to the emulator at once rather than after the lease.
    let _ =
        rest.modify_ack_deadline(&route.subscription, &scheduler.ack_ids(), Duration::ZERO).await;
    tracing::debug!(subscription = %route.subscription, "push delivery stopped");
}

async fn finish(
    route: &PushRoute,
    rest: &PubsubRest,
    project: &str,
    message_id: &str,
    outcome: Outcome,
    completion: Completion<PubsubMessage>,
) {
    let status = match outcome {
        Outcome::Status(s) => s.to_string(),
        Outcome::NoAnswer => "no answer".to_owned(),
    };
    match completion {
        Completion::Ack { ack_id } => {
            tracing::info!(function = %route.function, subscription = %route.subscription, message_id, %status, "push delivered");
            if let Err(error) = rest.acknowledge(&route.subscription, &[ack_id]).await {
                tracing::warn!(%error, message_id, "acknowledge failed; the message may come again");
            }
        }
        Completion::Retry { after, next_attempt } => {
            tracing::warn!(
                function = %route.function, subscription = %route.subscription, message_id, %status,
                retry_in_s = after.as_secs_f64(), next_attempt, "push refused; will redeliver"
            );
        }
        Completion::DeadLetter { ack_id, attempts, message } => {
            let attrs = dead_letter_attrs(&message, project, &route.subscription, attempts);
            let published = rest
                .publish(
                    &route.dead_letter_topic,
                    &message.data,
                    &attrs,
                    message.ordering_key.as_deref(),
                )
                .await;
            match published {
                Ok(_) => {
                    tracing::error!(
                        function = %route.function, subscription = %route.subscription, message_id, %status,
                        attempts, dead_letter_topic = %route.dead_letter_topic, "push failed every attempt; dead-lettered"
                    );
                    if let Err(error) = rest.acknowledge(&route.subscription, &[ack_id]).await {
                        tracing::warn!(%error, message_id, "acknowledge after dead-lettering failed");
                    }
                }
                Err(error) => {
                    tracing::error!(%error, message_id, "dead-letter publish failed; handing the message back to the emulator");
                    let _ = rest
                        .modify_ack_deadline(&route.subscription, &[ack_id], Duration::ZERO)
                        .await;
                }
            }
        }
        Completion::Unknown => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn message() -> PubsubMessage {
        PubsubMessage {
            message_id: "42".into(),
            data: br#"{"uid":"u1"}"#.to_vec(),
            attributes: [("schema".to_owned(), "user-signups".to_owned())].into_iter().collect(),
            ordering_key: Some("k".into()),
            publish_time: chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn envelopes_parse_back_with_the_attempt() {
        let body = envelope(&message(), "projects/p/subscriptions/s", 3).unwrap();
        let event = gcp::pubsub::parse_push::<serde_json::Value>(&body).unwrap();
        assert_eq!(event.message_id, "42");
        assert_eq!(event.delivery_attempt, Some(3));
        assert_eq!(event.ordering_key.as_deref(), Some("k"));
        assert_eq!(event.subscription, "projects/p/subscriptions/s");
        assert_eq!(event.data["uid"], "u1");
        assert_eq!(event.attributes["schema"], "user-signups");
    }

    #[test]
    fn dead_letter_copies_keep_attributes_and_add_the_source() {
        let attrs = dead_letter_attrs(&message(), "p", "user-signups--onboarding", 10);
        assert_eq!(attrs["schema"], "user-signups");
        assert_eq!(attrs[dead_letter_attributes::DELIVERY_COUNT], "10");
        assert_eq!(attrs[dead_letter_attributes::SUBSCRIPTION], "user-signups--onboarding");
        assert_eq!(attrs[dead_letter_attributes::SUBSCRIPTION_PROJECT], "p");
        assert_eq!(attrs[dead_letter_attributes::TOPIC_PUBLISH_TIME], "2023-11-14T22:13:20.000Z");
    }
}
