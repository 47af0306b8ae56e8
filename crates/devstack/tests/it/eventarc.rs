//! The Eventarc bridge against the Firestore emulator: document writes become binary-mode
//! CloudEvents with protobuf `DocumentEventData` that `gcp` decodes, for the matching
//! triggers only, with the before and after snapshots.

use std::time::Duration;

use axum::http::StatusCode;
use devstack::eventarc::listener::Bridge;
use devstack::eventarc::pattern::DocumentPattern;
use devstack::eventarc::{EventarcRetry, EventarcRoute};
use devstack::identity::LocalKeys;
use gcp::eventarc::{FirestoreEvent, FirestoreEventKind, FirestoreEventType};
use gcp::firestore::Value;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{Recorder, Seen, eventually};

const AUDIENCE: &str = "http://feed.devstack.local";

fn decode(seen: &Seen) -> FirestoreEvent {
    assert_eq!(seen.headers["content-type"], "application/protobuf");
    assert_eq!(seen.headers["ce-specversion"], "1.0");
    FirestoreEvent::from_http(&seen.headers, seen.body.clone()).unwrap()
}

#[tokio::test]
async fn document_writes_become_cloudevents_for_the_matching_triggers() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    let recorder =
        Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, _| StatusCode::NO_CONTENT);
    let app = testkit::spawn_app(recorder.router()).await;
    let route = |document: &str, kind, path: &str| EventarcRoute {
        function: "feed".into(),
        pattern: DocumentPattern::parse(document).unwrap(),
        event_type: FirestoreEventType::new(kind),
        endpoint: app.url(path),
        audience: AUDIENCE.into(),
    };
    let host = testkit::emulators::firestore().await;
    let db = store::Db::new(store::DbConfig::emulator(&project, host));
    // A document that exists before the bridge starts produces no event.
    let old = store::paths::posts().doc("before").unwrap();
    db.set(&old, &json!({"title": "old"})).await.unwrap();

    let bridge = Bridge {
        db: db.clone(),
        project: project.clone(),
        routes: vec![
            route("posts/{postId}", FirestoreEventKind::Created, "/created"),
            route("posts/{postId}", FirestoreEventKind::Updated, "/updated"),
            route("posts/{postId}", FirestoreEventKind::Deleted, "/deleted"),
            route(
                "candles/{instrument}/{granularity}/{ts}",
                FirestoreEventKind::Written,
                "/candles",
            ),
        ],
        http: reqwest::Client::new(),
        retry: EventarcRetry::default(),
    };
    let cancel = CancellationToken::new();
    bridge.start(cancel.clone(), Duration::from_secs(30)).await.unwrap();

    let post = store::paths::posts().doc("p1").unwrap();
    db.set(&post, &json!({"title": "hello", "likes": 1})).await.unwrap();
    assert!(
        eventually(10, || recorder.accepted("/created").len() == 1).await,
        "{:?}",
        recorder.seen()
    );
    let created = decode(&recorder.accepted("/created")[0]);
    assert_eq!(created.event_type.to_string(), "google.cloud.firestore.document.v1.created");
    assert_eq!(created.document_path(), Some("posts/p1"));
    assert_eq!(created.subject.as_deref(), Some("documents/posts/p1"));
    assert_eq!(created.project.as_deref(), Some(project.as_str()));
    assert_eq!(
        created.source,
        format!("//firestore.googleapis.com/projects/{project}/databases/(default)")
    );
    let value = created.data.unwrap().value.unwrap();
    assert_eq!(value.fields["title"], Value::String("hello".into()));
    assert_eq!(value.fields["likes"], Value::Integer(1));
    assert!(value.create_time.is_some());

    db.set(&post, &json!({"title": "hello", "likes": 2})).await.unwrap();
    assert!(eventually(10, || recorder.accepted("/updated").len() == 1).await);
    let updated = decode(&recorder.accepted("/updated")[0]).data.unwrap();
    assert_eq!(updated.old_value.unwrap().fields["likes"], Value::Integer(1));
    assert_eq!(updated.value.unwrap().fields["likes"], Value::Integer(2));
    assert_eq!(updated.update_mask.unwrap(), ["likes"]);

    db.delete(&post).await.unwrap();
    assert!(eventually(10, || recorder.accepted("/deleted").len() == 1).await);
    let deleted = decode(&recorder.accepted("/deleted")[0]).data.unwrap();
    assert!(deleted.value.is_none());
    assert_eq!(deleted.old_value.unwrap().fields["likes"], Value::Integer(2));

    // A wildcard collection id (candles/{instrument}/{granularity}/{ts}) is watched too, and a
    // same-named subcollection elsewhere does not match posts/{postId}.
    let candle = store::paths::candle("EURUSD", "M1", "1700000000").unwrap();
    db.set(&candle, &json!({"close": 1.25})).await.unwrap();
    let user = store::paths::users().doc("u1").unwrap();
    db.set(&user, &json!({"x": 1})).await.unwrap();
    assert!(eventually(10, || recorder.accepted("/candles").len() == 1).await);
    let written = decode(&recorder.accepted("/candles")[0]);
    assert_eq!(written.event_type.kind, FirestoreEventKind::Written);
    assert_eq!(written.document_path(), Some("candles/EURUSD/M1/1700000000"));

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        recorder.accepted("/created").len(),
        1,
        "no event for the pre-existing doc or others"
    );
    assert_eq!(recorder.accepted("/updated").len(), 1);
    assert_eq!(recorder.accepted("/candles").len(), 1);
    cancel.cancel();
}

#[tokio::test]
async fn a_refused_event_is_retried_with_backoff() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    let recorder = Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, n| {
        if n == 1 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }
    });
    let app = testkit::spawn_app(recorder.router()).await;
    let host = testkit::emulators::firestore().await;
    let db = store::Db::new(store::DbConfig::emulator(&project, host));
    let mut retry = EventarcRetry::default();
    retry.policy.min_backoff = Duration::from_millis(300);
    let bridge = Bridge {
        db: db.clone(),
        project: project.clone(),
        routes: vec![EventarcRoute {
            function: "feed".into(),
            pattern: DocumentPattern::parse("posts/{postId}").unwrap(),
            event_type: FirestoreEventType::new(FirestoreEventKind::Written),
            endpoint: app.url("/"),
            audience: AUDIENCE.into(),
        }],
        http: reqwest::Client::new(),
        retry,
    };
    let cancel = CancellationToken::new();
    bridge.start(cancel.clone(), Duration::from_secs(30)).await.unwrap();
    db.set(&store::paths::posts().doc("p2").unwrap(), &json!({"t": 1})).await.unwrap();
    assert!(eventually(10, || recorder.accepted("/").len() == 2).await);
    let seen = recorder.accepted("/");
    let (a, b) = (decode(&seen[0]), decode(&seen[1]));
    assert_eq!(a.id, b.id, "a retry is the same event");
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(290));
    cancel.cancel();
}
