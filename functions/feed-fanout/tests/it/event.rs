//! `POST /`: Eventarc post events.

use gcp::eventarc::FirestoreEventKind::{Created, Deleted, Updated};
use store::paths;

use crate::{Harness, holders, oidc, post_event, post_fields, seed_followers, write_post};

/// `(seconds, nanos)` of a feed entry's last write.
async fn write_time(h: &Harness, buyer: &str, post: &str) -> (i64, i32) {
    use firestore::gcloud_sdk::google::firestore::v1::GetDocumentRequest;
    let name = paths::feed_post(buyer, post).unwrap().full_name(h.db.documents_root());
    let mut client = h.db.firestore().await.unwrap().client().get();
    let doc = client
        .get_document(GetDocumentRequest { name, ..Default::default() })
        .await
        .expect("entry")
        .into_inner();
    let t = doc.update_time.unwrap();
    (t.seconds, t.nanos)
}

#[tokio::test]
async fn a_created_post_fans_out_and_a_duplicated_event_changes_nothing() {
    let h = Harness::start(&[]).await;
    let buyers = seed_followers(&h.db, "v1", 1_200).await;
    write_post(&h.db, "p1", "v1", true).await;
    let event = post_event(&h.project, "evt-1", Created, "p1", None, Some(post_fields("v1", true)));

    let res = h.send_event(&event).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    crate::assert_exactly(&h.db, "p1", &buyers).await;
    assert!(h.pull_tasks(0).await.is_empty(), "1,200 followers fit inline");
    let before = write_time(&h, &buyers[7], "p1").await;

    // The same CloudEvent again: acknowledged, nothing rewritten.
    let res = h.send_event(&event).await;
    assert_eq!(res.status(), 204);
    assert_eq!(write_time(&h, &buyers[7], "p1").await, before);
    assert_eq!(holders(&h.db, "p1").await.len(), 1_200);

    // An edit that keeps it active does nothing either.
    let edit = post_event(
        &h.project,
        "evt-2",
        Updated,
        "p1",
        Some(post_fields("v1", true)),
        Some(post_fields("v1", true)),
    );
    assert_eq!(h.send_event(&edit).await.status(), 204);
    assert_eq!(write_time(&h, &buyers[7], "p1").await, before);

    // Deactivated: removed from every feed.
    write_post(&h.db, "p1", "v1", false).await;
    let off = post_event(
        &h.project,
        "evt-3",
        Updated,
        "p1",
        Some(post_fields("v1", true)),
        Some(post_fields("v1", false)),
    );
    assert_eq!(h.send_event(&off).await.status(), 204);
    assert!(holders(&h.db, "p1").await.is_empty());
}

#[tokio::test]
async fn out_of_order_events_follow_the_post_as_it_is_now() {
    let h = Harness::start(&[]).await;
    seed_followers(&h.db, "v2", 30).await;
    // The post was created then deleted; the "deleted" event arrives first.
    let deleted =
        post_event(&h.project, "evt-d", Deleted, "p2", Some(post_fields("v2", true)), None);
    assert_eq!(h.send_event(&deleted).await.status(), 204);
    let created =
        post_event(&h.project, "evt-c", Created, "p2", None, Some(post_fields("v2", true)));
    assert_eq!(h.send_event(&created).await.status(), 204);
    assert!(holders(&h.db, "p2").await.is_empty(), "a deleted post is never fanned out");
}

#[tokio::test]
async fn a_high_follower_vendors_post_is_not_fanned_out() {
    let h = Harness::start(&[("HEARTH_FEED_HIGH_FOLLOWERS", "3")]).await;
    for buyer in ["a", "b", "c"] {
        store::feed::Feeds::new(&h.db)
            .follow(buyer, "star", crate::at(1_700_000_000))
            .await
            .unwrap();
    }
    // The scheduled aggregation writes followerCount (the vendor document must exist).
    let vendor = paths::vendor("star").unwrap();
    h.db.set(&vendor, &serde_json::json!({"name": "Star Bakery"})).await.unwrap();
    let total = store::counters::Counters::new(&h.db)
        .aggregate(&vendor, domain::counters::CounterField::Followers)
        .await
        .unwrap();
    assert_eq!(total, 3);
    write_post(&h.db, "p3", "star", true).await;
    let event =
        post_event(&h.project, "evt-h", Created, "p3", None, Some(post_fields("star", true)));
    assert_eq!(h.send_event(&event).await.status(), 204);
    assert!(holders(&h.db, "p3").await.is_empty());
    assert!(h.pull_tasks(0).await.is_empty());
}

#[tokio::test]
async fn bad_callers_and_bad_events_are_refused() {
    let h = Harness::start(&[]).await;
    seed_followers(&h.db, "v4", 5).await;
    write_post(&h.db, "p4", "v4", true).await;
    let event = post_event(&h.project, "evt-x", Created, "p4", None, Some(post_fields("v4", true)));

    // No token, a token of another account, a token for another audience.
    assert_eq!(h.send_event_as(&event, None).await.status(), 401);
    let stranger = oidc("someone@else.iam.gserviceaccount.com");
    assert_eq!(h.send_event_as(&event, Some(&stranger)).await.status(), 401);
    let other_aud = testkit::tokens::sign(
        &testkit::tokens::google_oidc_claims("https://other.example/", crate::PUSH_SA),
        testkit::keys::primary(),
    );
    assert_eq!(h.send_event_as(&event, Some(&other_aud)).await.status(), 401);
    assert!(holders(&h.db, "p4").await.is_empty());

    // Garbage data, a non-post document, a non-CloudEvent: dead-lettered and acknowledged.
    let res = h
        .app
        .client
        .post(h.app.url("/"))
        .bearer_auth(oidc(crate::PUSH_SA))
        .header("ce-specversion", "1.0")
        .header("ce-id", "evt-garbage")
        .header("ce-source", "//firestore.googleapis.com/projects/p/databases/(default)")
        .header("ce-type", "google.cloud.firestore.document.v1.created")
        .header("content-type", "application/protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut elsewhere = event.clone();
    elsewhere.id = "evt-users".to_owned();
    elsewhere.document = Some("users/p4".to_owned());
    elsewhere.subject = Some("documents/users/p4".to_owned());
    assert_eq!(h.send_event(&elsewhere).await.status(), 200);
    let plain = h.push("/", b"{}".to_vec()).await;
    assert!(plain.status().is_client_error() || plain.status() == 200, "{}", plain.status());
    // Oversized bodies are cut off by the push limit.
    let huge = h.push("/", vec![b' '; 17 * 1024 * 1024]).await;
    assert_eq!(huge.status(), 413);
    assert!(holders(&h.db, "p4").await.is_empty());

    // The genuine event still works afterwards.
    assert_eq!(h.send_event(&event).await.status(), 204);
    assert_eq!(holders(&h.db, "p4").await.len(), 5);
}
