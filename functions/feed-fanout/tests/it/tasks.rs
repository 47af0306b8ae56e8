//! Large audiences: the event writes the first pages, continuation tasks on `fanout-tasks`
//! cover the rest; removal the same way.

use domain::messages::{FanoutAction, FanoutTask};
use gcp::eventarc::FirestoreEventKind::{Created, Deleted};

use crate::{Harness, holders, post_event, post_fields, push_envelope, seed_followers, write_post};

#[tokio::test]
async fn ten_thousand_followers_through_continuation_tasks_then_deletion() {
    // 500 per page, 4 pages inline, then tasks of at most 1 s each.
    let h = Harness::start(&[("HEARTH_FEED_TIME_BUDGET_SECS", "1")]).await;
    let buyers = seed_followers(&h.db, "big", 10_000).await;
    write_post(&h.db, "p1", "big", true).await;
    let event =
        post_event(&h.project, "evt-big", Created, "p1", None, Some(post_fields("big", true)));
    assert_eq!(h.send_event(&event).await.status(), 204);
    // At most four pages inline (fewer when the 1 s budget runs out first).
    let inline = holders(&h.db, "p1").await.len();
    assert!(inline % 500 == 0 && (500..=2_000).contains(&inline), "{inline}");

    // The first continuation task: the rest of the range, after the 2,000th follower.
    let first = h.pull_tasks(1).await;
    assert_eq!(first.len(), 1);
    let task: FanoutTask = serde_json::from_slice(&first[0].data).unwrap();
    assert_eq!(task.action, FanoutAction::Add);
    assert_eq!(task.post_id, "p1");
    assert_eq!(task.vendor_id, "big");
    assert_eq!(task.attempt, 1);
    assert!(task.start_after.is_some() && task.end_at.is_none());

    // A crash before acknowledging: the same task is delivered twice (and a duplicate later).
    let body = push_envelope(&h.project, &first[0].message_id, &first[0].data);
    let res = h.push("/pubsub/fanout-tasks", body.clone()).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let delivered = h.drain_tasks().await;
    assert_eq!(h.push("/pubsub/fanout-tasks", body).await.status(), 204);
    crate::assert_exactly(&h.db, "p1", &buyers).await;
    println!(
        "10,000 followers: the event's inline pages, then {} continuation task(s)",
        delivered + 1
    );

    // Deleted: the event removes up to four pages, tasks remove the rest.
    store::Db::delete(&h.db, &store::paths::post("p1").unwrap()).await.unwrap();
    let deleted =
        post_event(&h.project, "evt-big-del", Deleted, "p1", Some(post_fields("big", true)), None);
    assert_eq!(h.send_event(&deleted).await.status(), 204);
    let left = holders(&h.db, "p1").await.len();
    assert!(left % 500 == 0 && (8_000..10_000).contains(&left), "{left}");
    assert!(h.drain_tasks().await >= 1);
    assert!(holders(&h.db, "p1").await.is_empty());
}

#[tokio::test]
async fn malformed_tasks_are_dead_lettered_and_stale_ones_do_nothing() {
    let h = Harness::start(&[]).await;
    seed_followers(&h.db, "v", 10).await;
    let garbage = push_envelope(&h.project, "m-garbage", b"not json");
    assert_eq!(h.push("/pubsub/fanout-tasks", garbage).await.status(), 200);
    let wrong_version = serde_json::json!({"v": 9, "action": "add", "post_id": "p", "vendor_id": "v",
        "start_after": null, "end_at": null, "page_size": 500, "attempt": 0});
    let body = push_envelope(&h.project, "m-v9", &serde_json::to_vec(&wrong_version).unwrap());
    assert_eq!(h.push("/pubsub/fanout-tasks", body).await.status(), 200);
    let unauthenticated = h
        .app
        .client
        .post(h.app.url("/pubsub/fanout-tasks"))
        .body(push_envelope(&h.project, "m-x", b"{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // An add task for a post that no longer exists writes nothing.
    let stale = serde_json::json!({"v": 1, "action": "add", "post_id": "gone", "vendor_id": "v",
        "start_after": null, "end_at": null, "page_size": 500, "attempt": 1});
    let body = push_envelope(&h.project, "m-stale", &serde_json::to_vec(&stale).unwrap());
    assert_eq!(h.push("/pubsub/fanout-tasks", body).await.status(), 204);
    assert!(holders(&h.db, "gone").await.is_empty());
    // A remove task for a post that is active again removes nothing.
    write_post(&h.db, "back", "v", true).await;
    let add = serde_json::json!({"v": 1, "action": "add", "post_id": "back", "vendor_id": "v",
        "start_after": null, "end_at": null, "page_size": 500, "attempt": 1});
    let body = push_envelope(&h.project, "m-add", &serde_json::to_vec(&add).unwrap());
    assert_eq!(h.push("/pubsub/fanout-tasks", body).await.status(), 204);
    assert_eq!(holders(&h.db, "back").await.len(), 10);
    let remove = serde_json::json!({"v": 1, "action": "remove", "post_id": "back", "vendor_id": "v",
        "start_after": null, "end_at": null, "page_size": 500, "attempt": 1});
    let body = push_envelope(&h.project, "m-rm", &serde_json::to_vec(&remove).unwrap());
    assert_eq!(h.push("/pubsub/fanout-tasks", body).await.status(), 204);
    assert_eq!(holders(&h.db, "back").await.len(), 10);
}
