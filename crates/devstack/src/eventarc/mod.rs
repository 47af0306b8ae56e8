//! Eventarc for Firestore on the local stack: the Firestore emulator has no Eventarc, so
//! devstack listens to it (the gRPC `Listen` stream, one collection-group target per trigger
//! collection) and POSTs binary-mode CloudEvents with protobuf `DocumentEventData`
//! (`gcp::eventarc::encode_document_event`) to every function whose manifest filter matches,
//! with an OIDC token, retrying refused events with Eventarc's backoff (10 s doubling to 600 s,
//! for up to 24 hours).
//!
//! Why Listen rather than polling: it is how the Firestore SDKs watch collections, the
//! emulator implements it fully, and it reports every write at once without rescanning. The
//! stream only carries the new snapshot, so [`tracker::Tracker`] keeps the last snapshot of
//! every watched document to fill `old_value` and `update_mask`; after a dropped stream it
//! reconnects and reports what changed meanwhile.

pub mod convert;
pub mod listener;
pub mod pattern;
pub mod tracker;

use std::time::Duration;

use gcp::cloudevent::CloudEvent;
use gcp::eventarc::{
    AuthContext, DataEncoding, DocumentEventData, FirestoreEvent, FirestoreEventType,
    encode_document_event,
};

use crate::identity::{self, Caller};
use crate::pubsub::schedule::{Outcome, RetryPolicy};
use pattern::DocumentPattern;
use tracker::Change;

/// One Eventarc trigger of the manifest (one event type of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventarcRoute {
    pub function: String,
    pub pattern: DocumentPattern,
    pub event_type: FirestoreEventType,
    /// Full URL of the function's CloudEvent endpoint.
    pub endpoint: String,
    /// The OIDC audience the function expects.
    pub audience: String,
}

/// How refused events are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventarcRetry {
    pub policy: RetryPolicy,
    /// Events older than this are dropped (Eventarc keeps undelivered events 24 hours).
    pub retention: Duration,
}

impl Default for EventarcRetry {
    fn default() -> Self {
        Self {
            policy: RetryPolicy {
                min_backoff: Duration::from_secs(10),
                max_backoff: Duration::from_secs(600),
                max_delivery_attempts: u32::MAX,
            },
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// The CloudEvent Eventarc would send `route` for `change` in `project`.
pub fn build_event(project: &str, route: &EventarcRoute, change: &Change) -> CloudEvent {
    let path = change.path();
    let mut event =
        FirestoreEvent::new(uuid::Uuid::new_v4().to_string(), route.event_type, project, path);
    let data = match change {
        Change::Created(doc) => {
            DocumentEventData { value: Some(doc.clone()), old_value: None, update_mask: None }
        }
        Change::Updated { old, new, mask } => DocumentEventData {
            value: Some(new.clone()),
            old_value: Some(old.clone()),
            update_mask: Some(mask.clone()),
        },
        Change::Deleted(doc) => {
            DocumentEventData { value: None, old_value: Some(doc.clone()), update_mask: None }
        }
    };
    event.time = match change {
        Change::Deleted(_) => Some(chrono::Utc::now()),
        _ => change.document().update_time.or_else(|| Some(chrono::Utc::now())),
    };
    if route.event_type.with_auth_context {
        // The emulator does not say who wrote; production would say `service_account`,
        // `api_key`, `system`, `unauthenticated` or `unknown`.
        event.auth = Some(AuthContext { auth_type: "unknown".to_owned(), auth_id: None });
    }
    event.data = Some(data);
    encode_document_event(&event, DataEncoding::Protobuf)
}

/// POSTs one binary-mode CloudEvent with an OIDC token.
pub async fn post_event(
    http: &reqwest::Client,
    project: &str,
    route: &EventarcRoute,
    event: &CloudEvent,
) -> Outcome {
    let (headers, body) = match event.to_binary() {
        Ok(parts) => parts,
        Err(error) => {
            tracing::error!(%error, "cannot encode a CloudEvent");
            return Outcome::NoAnswer;
        }
    };
    let sent = http
        .post(&route.endpoint)
        .headers(headers)
        .header(http::header::USER_AGENT, crate::pubsub::engine::PUSH_USER_AGENT)
        .bearer_auth(identity::oidc_token(project, Caller::Eventarc, &route.audience))
        .timeout(Duration::from_secs(60))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(_) => Outcome::NoAnswer,
    }
}

/// Delivers `event` to `route`, retrying refused attempts (any non-2xx) until the retention
/// window closes.
pub async fn deliver(
    http: reqwest::Client,
    project: String,
    route: EventarcRoute,
    event: CloudEvent,
    retry: EventarcRetry,
) {
    let started = std::time::Instant::now();
    let mut attempt = 1u32;
    loop {
        let outcome = post_event(&http, &project, &route, &event).await;
        let status = match outcome {
            Outcome::Status(s) => s.to_string(),
            Outcome::NoAnswer => "no answer".to_owned(),
        };
        if matches!(outcome, Outcome::Status(s) if (200..300).contains(&s)) {
            tracing::info!(function = %route.function, event_type = %route.event_type, document = %event.subject.as_deref().unwrap_or_default(), %status, "Eventarc event delivered");
            return;
        }
        let wait = retry.policy.backoff(attempt);
        if started.elapsed() + wait > retry.retention
            || attempt >= retry.policy.max_delivery_attempts
        {
            tracing::error!(function = %route.function, event_id = %event.id, %status, attempt, "Eventarc event dropped after its retries");
            return;
        }
        tracing::warn!(function = %route.function, event_id = %event.id, %status, attempt, retry_in_s = wait.as_secs_f64(), "Eventarc event refused; will retry");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcp::eventarc::FirestoreEventKind;
    use gcp::firestore::{FirestoreDocument, Value};

    fn route(kind: FirestoreEventKind) -> EventarcRoute {
        EventarcRoute {
            function: "feed-fanout".into(),
            pattern: DocumentPattern::parse("posts/{postId}").unwrap(),
            event_type: FirestoreEventType::new(kind),
            endpoint: "http://127.0.0.1:1/".into(),
            audience: "http://127.0.0.1:1".into(),
        }
    }

    fn post(title: &str) -> FirestoreDocument {
        FirestoreDocument {
            name: "projects/demo-p/databases/(default)/documents/posts/p1".into(),
            fields: [("title".to_owned(), Value::String(title.into()))].into_iter().collect(),
            create_time: Some(chrono::Utc::now()),
            update_time: Some(chrono::Utc::now()),
        }
    }

    fn roundtrip(event: &CloudEvent) -> FirestoreEvent {
        let (headers, body) = event.to_binary().unwrap();
        FirestoreEvent::from_http(&headers, body).unwrap()
    }

    #[test]
    fn created_updated_and_deleted_events_decode_with_their_snapshots() {
        let created = roundtrip(&build_event(
            "demo-p",
            &route(FirestoreEventKind::Created),
            &Change::Created(post("a")),
        ));
        assert_eq!(created.event_type.to_string(), "google.cloud.firestore.document.v1.created");
        assert_eq!(created.document_path(), Some("posts/p1"));
        assert_eq!(
            created.source,
            "//firestore.googleapis.com/projects/demo-p/databases/(default)"
        );
        let data = created.data.unwrap();
        assert_eq!(data.value.unwrap().fields["title"], Value::String("a".into()));
        assert!(data.old_value.is_none());

        let change = Change::Updated { old: post("a"), new: post("b"), mask: vec!["title".into()] };
        let updated =
            roundtrip(&build_event("demo-p", &route(FirestoreEventKind::Written), &change));
        assert_eq!(updated.event_type.kind, FirestoreEventKind::Written);
        let data = updated.data.unwrap();
        assert_eq!(data.old_value.unwrap().fields["title"], Value::String("a".into()));
        assert_eq!(data.update_mask.unwrap(), ["title"]);

        let deleted = roundtrip(&build_event(
            "demo-p",
            &route(FirestoreEventKind::Deleted),
            &Change::Deleted(post("b")),
        ));
        let data = deleted.data.unwrap();
        assert!(data.value.is_none());
        assert!(data.old_value.is_some());
    }

    #[test]
    fn auth_context_variants_carry_an_auth_type() {
        let mut r = route(FirestoreEventKind::Created);
        r.event_type.with_auth_context = true;
        let event = roundtrip(&build_event("demo-p", &r, &Change::Created(post("a"))));
        assert_eq!(event.auth.unwrap().auth_type, "unknown");
    }
}
