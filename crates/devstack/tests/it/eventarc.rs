//! The Eventarc bridge against the Firestore emulator: document writes become binary-mode
//! CloudEvents with protobuf `DocumentEventData` that `gcp` decodes, for the matching
//! triggers only, with the before and after snapshots.

use std::sync::Arc;
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
        stats: Arc::default(),
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
        stats: Arc::default(),
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

/// The bridge's reads do not grow with documents its triggers do not watch: the feed entries
/// `feeds/{uid}/posts/{postId}` share the collection id of `posts/{postId}`, and before the
/// bridge targeted the `posts` collection itself, every feed entry written made the emulator
/// resend every post and feed entry on the stream (about 20,000 snapshots for 200 entries).
#[tokio::test]
async fn documents_outside_a_triggers_pattern_cost_the_bridge_nothing() {
    let project = testkit::project_id();
    let keys = LocalKeys::start().await;
    let recorder =
        Recorder::new(&keys.url(), AUDIENCE, &project, |_, _, _, _| StatusCode::NO_CONTENT);
    let app = testkit::spawn_app(recorder.router()).await;
    let route = |document: &str, path: &str| EventarcRoute {
        function: "feed".into(),
        pattern: DocumentPattern::parse(document).unwrap(),
        event_type: FirestoreEventType::new(FirestoreEventKind::Created),
        endpoint: app.url(path),
        audience: AUDIENCE.into(),
    };
    let host = testkit::emulators::firestore().await;
    let db = store::Db::new(store::DbConfig::emulator(&project, host));
    let stats = Arc::new(devstack::eventarc::listener::BridgeStats::default());
    let bridge = Bridge {
        db: db.clone(),
        project: project.clone(),
        routes: vec![
            route("posts/{postId}", "/posts"),
            // A wildcard before the collection: a collection-group target narrowed to the
            // names under `tenants/`.
            route("tenants/{t}/members/{uid}", "/members"),
            // A wildcard collection: polled, narrowed to the names under `candles/`.
            route("candles/{instrument}/{granularity}/{ts}", "/candles"),
        ],
        http: reqwest::Client::new(),
        retry: EventarcRetry::default(),
        stats: stats.clone(),
    };
    let cancel = CancellationToken::new();
    bridge.start(cancel.clone(), Duration::from_secs(30)).await.unwrap();

    const POSTS: u64 = 5;
    const ENTRIES: usize = 40;
    for n in 1..=POSTS {
        let post = format!("p{n}");
        db.set(&store::paths::posts().doc(&post).unwrap(), &json!({"n": n})).await.unwrap();
        let events = usize::try_from(2 * n).unwrap();
        assert!(eventually(10, || recorder.accepted("/posts").len() == events - 1).await);
        let listened = stats.listened();
        for i in 0..ENTRIES {
            let entry = store::paths::feed_post(&format!("u{i}"), &post).unwrap();
            db.set(&entry, &json!({"postId": post})).await.unwrap();
        }
        // A post written after the entries: were they on the stream, they would come first.
        let marker = store::paths::posts().doc(&format!("marker{n}")).unwrap();
        db.set(&marker, &json!({"n": n})).await.unwrap();
        assert!(eventually(10, || recorder.accepted("/posts").len() == events).await);
        // The emulator resends the posts collection (n posts and n markers), never an entry.
        let read = stats.listened() - listened;
        assert!(read <= 2 * n, "post {n}: {read} snapshots for {ENTRIES} entries and one post");
    }

    // The group target: ids at the edges of the name range fire; the same collection id
    // outside `tenants/` neither fires nor is resent.
    for path in ["tenants/a/members/m1", "tenants/\u{e9}/members/m2", "tenants/~z/members/m3"] {
        db.set(&member(path), &json!({"in": true})).await.unwrap();
    }
    assert!(eventually(10, || recorder.accepted("/members").len() == 3).await);
    let listened = stats.listened();
    for path in ["clubs/a/members/x", "tenants0/a/members/y", "tenant/a/members/z"] {
        db.set(&member(path), &json!({"in": false})).await.unwrap();
    }
    db.set(&member("tenants/b/members/m4"), &json!({"in": true})).await.unwrap();
    assert!(eventually(10, || recorder.accepted("/members").len() == 4).await);
    let read = stats.listened() - listened;
    assert!(read <= 3 * 3 + 4, "{read} snapshots: the group target held other members");

    // The poll reads the candles only, not the entries and posts above.
    let candle = store::paths::candle("EURUSD", "M1", "1700000000").unwrap();
    db.set(&candle, &json!({"close": 1.25})).await.unwrap();
    assert!(eventually(10, || recorder.accepted("/candles").len() == 1).await);
    assert!(stats.polled() < 100, "{} documents polled", stats.polled());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recorder.accepted("/posts").len(), 10);
    assert_eq!(recorder.accepted("/members").len(), 4);
    assert_eq!(recorder.accepted("/candles").len(), 1);
    cancel.cancel();
}

fn member(path: &str) -> store::paths::DocPath {
    let parts: Vec<&str> = path.split('/').collect();
    store::paths::CollectionPath::root(parts[0])
        .and_then(|c| c.doc(parts[1]))
        .and_then(|d| d.sub(parts[2]))
        .and_then(|c| c.doc(parts[3]))
        .unwrap()
}
