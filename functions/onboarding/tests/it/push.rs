//! `POST /pubsub/user-signups`: provisioning from push deliveries, redelivery and duplicates,
//! poison messages dead-lettered and acknowledged, Firestore outages retried, and a real push
//! from the Pub/Sub emulator. Forged OIDC tokens and oversized bodies: `attacks.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use domain::onboarding::DocKind;
use gcp::pubsub::{PushEvent, build_push_envelope_bytes};
use serde_json::{Value, json};
use store::onboarding::Onboarding;
use store::{DeadLetters, Ledger};

use crate::{Harness, PUSH_SA, oidc, raw, request_of, signup, write_times};

pub(crate) const PATH: &str = "/pubsub/user-signups";

pub(crate) fn envelope(message_id: &str, data: &[u8]) -> Vec<u8> {
    build_push_envelope_bytes(&PushEvent {
        message_id: message_id.to_owned(),
        publish_time: chrono::Utc::now(),
        attributes: BTreeMap::from([("schema_version".to_owned(), "1".to_owned())]),
        ordering_key: None,
        delivery_attempt: Some(1),
        subscription: "projects/hearth-test/subscriptions/onboarding-user-signups".to_owned(),
        data: data.to_vec(),
    })
    .unwrap()
}

pub(crate) fn signup_envelope(message_id: &str, body: &Value) -> Vec<u8> {
    envelope(message_id, &serde_json::to_vec(body).unwrap())
}

pub(crate) async fn push(h: &Harness, body: Vec<u8>) -> reqwest::Response {
    h.post(PATH, Some(&oidc(PUSH_SA)), body).await
}

/// Asserts a 200 acknowledgement of a dead-lettered message and returns the dead letter.
pub(crate) async fn dead_lettered(
    h: &Harness,
    response: reqwest::Response,
) -> domain::dead_letter::DeadLetter {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["acknowledged"], json!(true));
    let id = body["deadLetterId"].as_str().unwrap().to_owned();
    let letter = DeadLetters::new(&h.db).get(&id).await.unwrap().expect("dead letter recorded");
    assert_eq!(letter.source, "onboarding POST /pubsub/user-signups");
    letter
}

#[tokio::test]
async fn a_delivery_provisions_all_seven_documents_and_redeliveries_change_nothing() {
    let h = Harness::start().await;
    let body = signup("ada", "personal-ada", "owner", true);
    let req = request_of(&body);

    let first = push(&h, signup_envelope("m-1", &body)).await;
    assert_eq!(first.status(), 204);
    let times = write_times(&h.db, &req).await;
    assert_eq!(times.keys().copied().collect::<Vec<_>>(), DocKind::ALL);
    let membership = raw(&h.db, DocKind::Membership, &req).await.unwrap();
    let membership: Value = firestore::FirestoreDb::deserialize_doc_to(&membership).unwrap();
    assert_eq!(membership["role"], json!("owner"));
    let state = Onboarding::new(&h.db).onboarding_state("ada").await.unwrap().unwrap();
    assert!(state.is_current());
    assert_eq!(state.created, DocKind::ALL);

    // The same message again (Pub/Sub redelivery): answered from the ledger.
    let again = push(&h, signup_envelope("m-1", &body)).await;
    assert_eq!(again.status(), 204);
    assert_eq!(write_times(&h.db, &req).await, times);

    // Another message for the same user (a duplicate publish): provisioning finds everything.
    let duplicate = push(&h, signup_envelope("m-2", &body)).await;
    assert_eq!(duplicate.status(), 204);
    assert_eq!(write_times(&h.db, &req).await, times);
    for id in ["m-1", "m-2"] {
        let record =
            h.db.get::<Value>(&Ledger::path(onboarding::LEDGER_SCOPE, id).unwrap()).await.unwrap();
        assert_eq!(record.unwrap()["state"], json!("done"), "{id}");
    }
}

#[tokio::test]
async fn concurrent_duplicate_deliveries_create_each_document_once() {
    let h = Harness::start().await;
    let body = signup("grace", "personal-grace", "owner", true);
    let req = request_of(&body);
    let deliveries = (0..6).map(|i| {
        // Half redeliver one message id, half are duplicate publishes with their own ids.
        let id = if i % 2 == 0 { "dup-1".to_owned() } else { format!("dup-{i}") };
        let (h, envelope) = (&h, signup_envelope(&id, &body));
        async move { push(h, envelope).await.status().as_u16() }
    });
    let statuses = futures::future::join_all(deliveries).await;
    // In-flight redeliveries of the same id are refused for now (409 + Retry-After) and come
    // back later; every other delivery is acknowledged.
    assert!(statuses.iter().all(|s| *s == 204 || *s == 409), "{statuses:?}");
    assert!(statuses.contains(&204));
    for kind in DocKind::ALL {
        let doc = raw(&h.db, kind, &req).await.unwrap();
        assert_eq!(doc.create_time, doc.update_time, "{kind:?} written once");
    }
    // A redelivery after the dust settles is acknowledged without writing.
    let times = write_times(&h.db, &req).await;
    assert_eq!(push(&h, signup_envelope("dup-1", &body)).await.status(), 204);
    assert_eq!(write_times(&h.db, &req).await, times);
}

#[tokio::test]
async fn an_in_flight_message_is_sent_back_for_later() {
    let h = Harness::start().await;
    let body = signup("lin", "personal-lin", "owner", true);
    // Another instance holds the lease on this message id right now.
    let fingerprint_of_other_payload = "held-by-another-instance";
    let claim = Ledger::new(&h.db)
        .claim(
            onboarding::LEDGER_SCOPE,
            "m-held",
            fingerprint_of_other_payload,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(matches!(claim, store::Claim::Fresh(_)));
    // Same id, other payload: that is a mismatch, dead-lettered.
    let letter = dead_lettered(&h, push(&h, signup_envelope("m-held", &body)).await).await;
    assert!(letter.reason.contains("reused with a different payload"), "{letter:?}");

    // Same id, same payload, still leased: 409 with Retry-After, nothing written.
    let (h2, body2) = (&h, signup("mo", "personal-mo", "owner", true));
    let envelope = signup_envelope("m-held-2", &body2);
    let event = gcp::pubsub::parse_push::<domain::messages::UserSignup>(&envelope).unwrap();
    let fingerprint = onboarding::signup_fingerprint(&event.data);
    Ledger::new(&h2.db)
        .claim(onboarding::LEDGER_SCOPE, "m-held-2", &fingerprint, Duration::from_secs(30))
        .await
        .unwrap();
    let response = push(h2, envelope).await;
    assert_eq!(response.status(), 409);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert!(write_times(&h.db, &request_of(&body2)).await.is_empty());
}

#[tokio::test]
async fn undecodable_messages_are_dead_lettered_and_acknowledged() {
    let h = Harness::start().await;

    let not_json = dead_lettered(&h, push(&h, b"{not json".to_vec()).await).await;
    assert!(not_json.reason.contains("malformed push envelope"), "{not_json:?}");
    assert_eq!(not_json.event_id, None);

    let no_id = json!({"message": {"data": "e30=", "publishTime": "2025-01-01T00:00:00Z"}, "subscription": "s"});
    let letter = dead_lettered(&h, push(&h, serde_json::to_vec(&no_id).unwrap()).await).await;
    assert!(letter.reason.contains("malformed push envelope"), "{letter:?}");

    let mut bad_base64: Value = serde_json::from_slice(&envelope("m-b64", b"{}")).unwrap();
    bad_base64["message"]["data"] = json!("!!!not-base64!!!");
    let letter = dead_lettered(&h, push(&h, serde_json::to_vec(&bad_base64).unwrap()).await).await;
    assert!(letter.reason.contains("not base64"), "{letter:?}");

    let data_not_json = dead_lettered(&h, push(&h, envelope("m-text", b"hello")).await).await;
    assert!(data_not_json.reason.contains("not JSON"), "{data_not_json:?}");

    let mut v2 = signup("vera", "personal-vera", "owner", true);
    v2["v"] = json!(2);
    let letter = dead_lettered(&h, push(&h, signup_envelope("m-v2", &v2)).await).await;
    assert!(letter.reason.contains("expected shape"), "{letter:?}");
    assert!(letter.detail.contains("unsupported schema version 2"), "{letter:?}");
    // The envelope was readable: the dead letter is named after the message.
    assert_eq!(letter.event_id.as_deref(), Some("m-v2"));
    assert_eq!(letter.id, "onboarding-m-v2");
    assert!(write_times(&h.db, &request_of(&v2)).await.is_empty());

    let mut wrong_role = signup("rob", "personal-rob", "owner", true);
    wrong_role["role"] = json!("superuser");
    dead_lettered(&h, push(&h, signup_envelope("m-role", &wrong_role)).await).await;

    // The same poison message again: acknowledged again, same dead letter (no loop, no pile-up).
    let again = dead_lettered(&h, push(&h, signup_envelope("m-v2", &v2)).await).await;
    assert_eq!(again.id, "onboarding-m-v2");
}

#[tokio::test]
async fn an_invited_user_whose_tenant_is_missing_is_dead_lettered() {
    let h = Harness::start().await;
    let body = signup("ivy", "ghost-corp", "member", false);
    let letter = dead_lettered(&h, push(&h, signup_envelope("m-ghost", &body)).await).await;
    assert!(letter.reason.contains("tenant ghost-corp does not exist"), "{letter:?}");
    assert!(write_times(&h.db, &request_of(&body)).await.is_empty());
    // The lease was released, so a later repair or redelivery is not blocked for its duration.
    let record =
        h.db.get::<Value>(&Ledger::path(onboarding::LEDGER_SCOPE, "m-ghost").unwrap())
            .await
            .unwrap();
    assert_eq!(record.unwrap()["state"], json!("released"));
}

#[tokio::test]
async fn firestore_outages_ask_pubsub_to_redeliver() {
    // Nothing listens on this port: every Firestore call fails as unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let h = Harness::with_vars(&dead, &[]).await;
    let body = signup("oli", "personal-oli", "owner", true);
    let response = push(&h, signup_envelope("m-down", &body)).await;
    let problem = crate::problem(response, 503).await;
    assert_eq!(problem["code"], json!("UNAVAILABLE"));
    assert!(!problem.to_string().contains(&dead), "internal details stay internal: {problem}");
}

#[tokio::test]
async fn a_message_arriving_after_a_repair_changes_nothing() {
    let h = Harness::start().await;
    let body = signup("kim", "personal-kim", "owner", true);
    let req = request_of(&body);
    store::onboarding::Onboarding::new(&h.db).provision(&req).await.unwrap();
    let times = write_times(&h.db, &req).await;
    assert_eq!(push(&h, signup_envelope("m-late", &body)).await.status(), 204);
    assert_eq!(write_times(&h.db, &req).await, times);
}

/// The Pub/Sub emulator pushes a published message to the app (no OIDC: the emulator sends no
/// token, so the app runs with HEARTH_INSECURE_LOCAL_PUSH, accepted only in emulator mode).
#[tokio::test]
async fn the_pubsub_emulator_push_is_understood() {
    let firestore = testkit::emulators::firestore().await;
    let pubsub = testkit::emulators::pubsub().await;
    let h = Harness::with_vars(
        firestore,
        &[("PUBSUB_EMULATOR_HOST", pubsub), ("HEARTH_INSECURE_LOCAL_PUSH", "1")],
    )
    .await;
    testkit::pubsub::create_topic(pubsub, &h.project, "user-signups").await;
    testkit::pubsub::create_subscription(
        pubsub,
        &h.project,
        "onboarding-user-signups",
        json!({
            "topic": format!("projects/{}/topics/user-signups", h.project),
            "pushConfig": {"pushEndpoint": h.app.url(PATH)},
        }),
    )
    .await;
    let body = signup("pat", "personal-pat", "owner", true);
    let data = serde_json::to_vec(&body).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
    let url = format!("http://{pubsub}/v1/projects/{}/topics/user-signups:publish", h.project);
    let published = h
        .app
        .client
        .post(url)
        .json(&json!({"messages": [{"data": encoded, "attributes": {"schema_version": "1"}}]}))
        .send()
        .await
        .unwrap();
    assert!(published.status().is_success());

    let req = request_of(&body);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if write_times(&h.db, &req).await.len() == 7 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the pushed message was not provisioned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(Onboarding::new(&h.db).onboarding_state("pat").await.unwrap().unwrap().is_current());
}
