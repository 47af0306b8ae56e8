//! Attacks on every notifier endpoint: forged or missing tokens, malformed and oversized
//! bodies, messages of another schema, duplicated and out-of-order deliveries, events about
//! documents that are not the trigger's, and tasks that name someone else's post.

use gcp::eventarc::FirestoreEventKind;
use serde_json::json;

use crate::*;

const PATHS: [&str; 7] = [
    "/pubsub/order-paid",
    "/pubsub/order-refunded",
    "/pubsub/stream-alerts",
    "/pubsub/notify-tasks",
    "/posts",
    "/followers",
    "/signals",
];

#[tokio::test]
async fn forged_or_missing_tokens_are_refused_everywhere() {
    let h = Harness::start(&[]).await;
    let body = push_envelope(
        &h.project,
        "order-paid",
        "m",
        &serde_json::to_vec(&order_paid("o", "u")).unwrap(),
    );
    let forged = tokens::sign(&tokens::google_oidc_claims(AUDIENCE, PUSH_SA), keys::other());
    let stranger = oidc("someone@else.iam.gserviceaccount.com");
    for path in PATHS.iter().chain(["/jobs/deliver-deferred"].iter()) {
        for bearer in [None, Some(forged.as_str()), Some(stranger.as_str())] {
            let mut req = h.app.client.post(h.app.url(path)).body(body.clone());
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            let status = req.send().await.unwrap().status().as_u16();
            assert!(status == 401 || status == 403, "{path} {bearer:?}: {status}");
        }
    }
    assert_eq!(h.fcm.calls(), 0);
}

#[tokio::test]
async fn malformed_other_versions_and_oversized_bodies_write_nothing() {
    let h = Harness::start(&[]).await;
    h.device("u1", "tok-u1").await;
    // Not an envelope, not base64 JSON, another schema version, a missing buyer: permanent
    // (acknowledged, dead-lettered), never retried, nothing sent.
    for (i, body) in [
        b"{not json".to_vec(),
        json!({"message": {"messageId": "x", "data": "!!!"}, "subscription": "s"})
            .to_string()
            .into_bytes(),
        push_envelope(
            &h.project,
            "order-paid",
            "m-v2",
            &serde_json::to_vec(&json!({"v": 2, "order_id": "o", "uid": "u1"})).unwrap(),
        ),
        push_envelope(
            &h.project,
            "order-paid",
            "m-empty",
            &serde_json::to_vec(&order_paid("o", "")).unwrap(),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let res = h.push("/pubsub/order-paid", body).await;
        assert!(res.status().is_success(), "case {i}: {}", res.status());
    }
    // A task with a zero or huge page, or an id that cannot name a post.
    for task in [
        json!({"v": 1, "post_id": "p", "vendor_id": "v", "start_after": null, "page_size": 0, "page": 0}),
        json!({"v": 1, "post_id": "p", "vendor_id": "v", "start_after": null, "page_size": 100000, "page": 0}),
        json!({"v": 1, "post_id": "a/b", "vendor_id": "v", "start_after": null, "page_size": 10, "page": 0}),
    ] {
        let res = h.deliver("notify-tasks", "m-t", task).await;
        assert!(res.status().is_success(), "{}", res.status());
    }
    // Oversized: over the push endpoints' 16 MiB.
    let huge = vec![b'a'; 17 * 1024 * 1024];
    assert_eq!(h.push("/pubsub/order-paid", huge).await.status(), 413);
    assert_eq!(h.fcm.calls(), 0);
    assert!(h.repo().inbox_ids("u1", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn events_about_other_documents_or_out_of_order_changes_notify_nobody() {
    let h = Harness::start(&[]).await;
    h.device("v1", "tok-v1").await;
    seed_followers(&h.db, "v1", 2).await;
    // A post event on the followers route and the reverse: not the trigger's documents.
    let post = doc_event(
        &h.project,
        "ce-1",
        FirestoreEventKind::Created,
        "posts/p1",
        None,
        Some(post_fields("v1", true)),
    );
    assert!(h.send_event("/followers", &post).await.status().is_success());
    let follow = doc_event(
        &h.project,
        "ce-2",
        FirestoreEventKind::Created,
        "followers/v1:b9",
        None,
        Some(follow_fields("v1", "b9")),
    );
    assert!(h.send_event("/posts", &follow).await.status().is_success());
    // A feed entry is not a post.
    let feed = doc_event(
        &h.project,
        "ce-3",
        FirestoreEventKind::Created,
        "feeds/u1/posts/p1",
        None,
        Some(post_fields("v1", true)),
    );
    assert!(h.send_event("/posts", &feed).await.status().is_success());
    // A deletion or an update of a follow (out of order, or an edit) is no new follower; a
    // self-follow notifies nobody.
    let deleted = doc_event(
        &h.project,
        "ce-4",
        FirestoreEventKind::Deleted,
        "followers/v1:b8",
        Some(follow_fields("v1", "b8")),
        None,
    );
    assert_eq!(h.send_event("/followers", &deleted).await.status(), 204);
    let own = doc_event(
        &h.project,
        "ce-5",
        FirestoreEventKind::Created,
        "followers/v1:v1",
        None,
        Some(follow_fields("v1", "v1")),
    );
    assert_eq!(h.send_event("/followers", &own).await.status(), 204);
    // A created-post event whose post does not exist (deleted before delivery): nobody.
    assert_eq!(h.send_event("/posts", &post).await.status(), 204);
    assert!(h.repo().inbox_ids("v1-b00000", 10).await.unwrap().is_empty());
    assert!(h.repo().inbox_ids("v1", 10).await.unwrap().is_empty());
    assert_eq!(h.fcm.calls(), 0);
}

#[tokio::test]
async fn a_task_naming_another_vendors_post_notifies_nobody() {
    let h = Harness::start(&[]).await;
    let theirs = seed_followers(&h.db, "v-mallory", 2).await;
    write_post(&h.db, "p-honest", "v-honest").await;
    // A forged continuation: v-honest's post sent to v-mallory's followers.
    let task = json!({"v": 1, "post_id": "p-honest", "vendor_id": "v-mallory", "start_after": null, "page_size": 10, "page": 0});
    assert_eq!(h.deliver("notify-tasks", "m-x", task).await.status(), 204);
    for b in &theirs {
        assert!(h.repo().inbox_ids(b, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_reused_message_id_with_another_payload_is_a_conflict_not_a_second_notification() {
    let h = Harness::start(&[]).await;
    h.device("u1", "tok-u1").await;
    h.device("u2", "tok-u2").await;
    assert_eq!(h.deliver("order-paid", "m-1", order_paid("ord_1", "u1")).await.status(), 204);
    // The same message id, now claiming another buyer: dead-lettered, nobody notified.
    let res = h.deliver("order-paid", "m-1", order_paid("ord_1", "u2")).await;
    assert!(res.status().is_success());
    assert_eq!(h.fcm.accepted_for("tok-u2").len(), 0);
    assert!(h.repo().inbox_ids("u2", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn signals_of_other_documents_or_naming_another_user_notify_nobody() {
    let h = Harness::start(&[]).await;
    h.device("alice", "tok-alice").await;
    h.device("mallory", "tok-mallory").await;
    // A signal document in alice's path whose body names mallory (the pulse writes both from
    // one trade, so this is not its document): acknowledged as permanent, nobody notified.
    let forged = doc_event(
        &h.project,
        "ce-forged",
        FirestoreEventKind::Created,
        "users/alice/signals/t1-open",
        None,
        Some(signal_fields("mallory", "t1", "open_long", "label")),
    );
    assert!(h.send_event("/signals", &forged).await.status().is_success());
    // Another collection under the user, a nested document, a post: not signals.
    for (n, path) in
        ["users/alice/notifications/t1-open", "users/alice/signals/t1/x/y", "posts/t1-open"]
            .iter()
            .enumerate()
    {
        let event = doc_event(
            &h.project,
            &format!("ce-{n}"),
            FirestoreEventKind::Created,
            path,
            None,
            Some(signal_fields("alice", "t1", "open_long", "label")),
        );
        assert!(h.send_event("/signals", &event).await.status().is_success(), "{path}");
    }
    // An update or a deletion of a signal (out of order, or an edit) is no new signal; a body
    // without the pulse's fields is refused.
    let fields = signal_fields("alice", "t1", "close", "stop_loss");
    for (id, kind, old, new) in [
        ("ce-upd", FirestoreEventKind::Updated, Some(fields.clone()), Some(fields.clone())),
        ("ce-del", FirestoreEventKind::Deleted, Some(fields.clone()), None),
    ] {
        let event = doc_event(&h.project, id, kind, "users/alice/signals/t1-close", old, new);
        assert_eq!(h.send_event("/signals", &event).await.status(), 204, "{id}");
    }
    let garbage = doc_event(
        &h.project,
        "ce-garbage",
        FirestoreEventKind::Created,
        "users/alice/signals/t2-open",
        None,
        Some(follow_fields("alice", "bob")),
    );
    assert!(h.send_event("/signals", &garbage).await.status().is_success());
    for uid in ["alice", "mallory"] {
        assert!(h.repo().inbox_ids(uid, 10).await.unwrap().is_empty(), "{uid}");
    }
    assert_eq!(h.fcm.calls(), 0);
}
