//! A post deleted while its fan-out is in flight: the deletion's removal may query the feeds
//! before the fan-out's last pages land. "Write, then re-check" (`work::add`) must leave no
//! entry behind, whether the race hits the event's inline pages or a continuation task.
//!
//! The writes are paced at half the cold-key-space rate (250 writes/s), so a range of a few
//! thousand followers takes several seconds and the deletion reliably lands in the middle of it,
//! even on a loaded CI machine (at 500 writes/s a slow removal sometimes answered after the
//! fan-out, and the check below failed the run); the
//! test checks that it did (the fan-out delivery had not answered yet when the deletion's
//! event was handled), so it cannot pass without exercising the race.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use domain::messages::{FanoutAction, FanoutTask, Version};
use gcp::eventarc::FirestoreEventKind::{Created, Deleted};
use store::paths;

use crate::{Harness, holders, post_event, post_fields, push_envelope, seed_followers, write_post};

/// Polls until more than `at_least` feeds hold `post_id`, or `done` says the fan-out answered
/// (then the race was missed: the caller's assertion reports it).
async fn wait_until_held(h: &Harness, post_id: &str, at_least: usize, done: &AtomicBool) {
    while holders(&h.db, post_id).await.len() <= at_least && !done.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes `posts/{post_id}` as the vendor's client does and delivers its Eventarc event.
async fn delete_and_deliver(h: &Harness, post_id: &str, vendor: &str) {
    h.db.delete(&paths::post(post_id).unwrap()).await.unwrap();
    let event = post_event(
        &h.project,
        &format!("evt-del-{post_id}"),
        Deleted,
        post_id,
        Some(post_fields(vendor, true)),
        None,
    );
    let res = h.send_event(&event).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap_or_default());
}

#[tokio::test]
async fn a_post_deleted_during_the_events_inline_pages_leaves_no_feed_entry() {
    // 3,000 followers: the event writes 4 pages of 500 inline (about 8 s at 250 writes/s),
    // the rest would go to a continuation task.
    let h = Harness::start(&[("HEARTH_FANOUT_RAMP_START_OPS", "250")]).await;
    seed_followers(&h.db, "racy", 3_000).await;
    write_post(&h.db, "p1", "racy", true).await;
    let created =
        post_event(&h.project, "evt-add-p1", Created, "p1", None, Some(post_fields("racy", true)));

    let add_answered = AtomicBool::new(false);
    let fan_out = async {
        let res = h.send_event(&created).await;
        add_answered.store(true, Ordering::SeqCst);
        res
    };
    let delete = async {
        wait_until_held(&h, "p1", 0, &add_answered).await;
        delete_and_deliver(&h, "p1", "racy").await;
        // Read right after the deletion's removal has answered.
        add_answered.load(Ordering::SeqCst)
    };
    let (res, add_had_answered) = tokio::join!(fan_out, delete);
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap_or_default());
    assert!(!add_had_answered, "the deletion must land while the fan-out is still writing");

    // Both finished: deliver whatever continuation tasks there are (none should add anything).
    h.drain_tasks().await;
    let left = holders(&h.db, "p1").await;
    assert!(left.is_empty(), "{} feeds still hold the deleted post", left.len());
}

#[tokio::test]
async fn a_post_deleted_during_a_continuation_task_leaves_no_feed_entry() {
    // A continuation task for the whole range of 2,500 followers (about 10 s at 250 writes/s).
    // It is published directly rather than handed off by an event, so that no entry exists
    // before the task starts: the deletion's removal then finds only the task's first writes
    // and finishes within the event (a removal handed on to a task of its own would run after
    // the add and hide the race).
    let h = Harness::start(&[("HEARTH_FANOUT_RAMP_START_OPS", "250")]).await;
    seed_followers(&h.db, "racy", 2_500).await;
    write_post(&h.db, "p2", "racy", true).await;
    let task = FanoutTask {
        v: Version,
        action: FanoutAction::Add,
        post_id: "p2".to_owned(),
        vendor_id: "racy".to_owned(),
        start_after: None,
        end_at: None,
        page_size: 500,
        attempt: 1,
    };
    let body = push_envelope(&h.project, "m-add-p2", &serde_json::to_vec(&task).unwrap());

    let task_answered = AtomicBool::new(false);
    let continuation = async {
        let res = h.push("/pubsub/fanout-tasks", body).await;
        task_answered.store(true, Ordering::SeqCst);
        res
    };
    let delete = async {
        wait_until_held(&h, "p2", 0, &task_answered).await;
        delete_and_deliver(&h, "p2", "racy").await;
        task_answered.load(Ordering::SeqCst)
    };
    let (res, task_had_answered) = tokio::join!(continuation, delete);
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap_or_default());
    assert!(!task_had_answered, "the deletion must land while the task is still writing");

    h.drain_tasks().await;
    let left = holders(&h.db, "p2").await;
    assert!(left.is_empty(), "{} feeds still hold the deleted post", left.len());
}

/// Regression: an unfollow landing while a fan-out is writing left an entry behind. The
/// unfollow (what `unfollowVendor` does: delete the follow edge, then the vendor's entries in
/// the user's feed) runs after the fan-out read its follower pages but before it wrote the
/// unfollower's entry, so the removal found nothing and the entry stayed until it expired.
/// The fan-out now re-checks the follow edges after writing (`Fanout::add`).
#[tokio::test]
async fn an_unfollow_during_the_fan_out_leaves_no_entry_in_the_unfollowers_feed() {
    // 2,000 followers, all inline (4 pages), about 4 s at 500 writes/s; the unfollower is
    // near the end of the range, so its entry is written seconds after the unfollow.
    let h = Harness::start(&[("HEARTH_FANOUT_RAMP_START_OPS", "500")]).await;
    let buyers = seed_followers(&h.db, "racy", 2_000).await;
    let late = buyers[1_950].clone();
    write_post(&h.db, "p3", "racy", true).await;
    let created =
        post_event(&h.project, "evt-add-p3", Created, "p3", None, Some(post_fields("racy", true)));

    let add_answered = AtomicBool::new(false);
    let fan_out = async {
        let res = h.send_event(&created).await;
        add_answered.store(true, Ordering::SeqCst);
        res
    };
    let unfollow = async {
        wait_until_held(&h, "p3", 0, &add_answered).await;
        store::feed::Feeds::new(&h.db).unfollow(&late, "racy").await.unwrap();
        let fanout = store::feed::Fanout::new(
            &h.db,
            domain::feed::FeedPolicy::default(),
            store::RampPolicy::default(),
        );
        fanout.remove_vendor(&late, "racy").await.unwrap();
        let written_yet = holders(&h.db, "p3").await.contains(&late);
        (add_answered.load(Ordering::SeqCst), written_yet)
    };
    let (res, (add_had_answered, written_yet)) = tokio::join!(fan_out, unfollow);
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap_or_default());
    assert!(!add_had_answered, "the unfollow must land while the fan-out is still writing");
    assert!(!written_yet, "the unfollow must land before the fan-out reaches the unfollower");

    h.drain_tasks().await;
    let left = holders(&h.db, "p3").await;
    assert!(!left.contains(&late), "the unfollower's feed still holds the post");
    assert_eq!(left.len(), 1_999, "every other follower has it");
}

/// The expiry of every feed entry of `post_id` (`expiresAt`, `ttlAt`) of the given buyers.
async fn entry_expiries(h: &Harness, post_id: &str, buyers: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for buyer in buyers {
        let doc: serde_json::Value =
            h.db.get(&paths::feed_post(buyer, post_id).unwrap()).await.unwrap().unwrap();
        let parse = |v: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap().to_rfc3339()
        };
        out.push((parse(&doc["expiresAt"]), parse(&doc["ttlAt"])));
    }
    out
}

/// Regression: changing a live post's `expiresAt` never reached its feed entries (an edit of
/// an active post did nothing), so they were shown and kept by TTL on the old expiry. The
/// update event now retimes every entry, backfilled ones included, and never recreates a
/// removed one.
#[tokio::test]
async fn a_new_expiry_of_a_live_post_reaches_every_feed_entry() {
    use gcp::eventarc::FirestoreEventKind::Updated;
    use gcp::firestore::Value as Fv;
    let h = Harness::start(&[]).await;
    let buyers = seed_followers(&h.db, "baker", 30).await;
    write_post(&h.db, "p4", "baker", true).await;
    let created =
        post_event(&h.project, "evt-add-p4", Created, "p4", None, Some(post_fields("baker", true)));
    assert_eq!(h.send_event(&created).await.status(), 204);
    crate::assert_exactly(&h.db, "p4", &buyers).await;
    // One follower unfollowed (its entry removed): the retime must not bring it back.
    store::feed::Feeds::new(&h.db).unfollow(&buyers[0], "baker").await.unwrap();
    let fanout = store::feed::Fanout::new(
        &h.db,
        domain::feed::FeedPolicy::default(),
        store::RampPolicy::default(),
    );
    fanout.remove_vendor(&buyers[0], "baker").await.unwrap();

    let instant = |t: chrono::DateTime<chrono::Utc>| {
        firestore::FirestoreInstant::from_microsecond(t.timestamp_micros()).unwrap()
    };
    // The vendor sets an expiry two hours from creation.
    let expiry = crate::at(1_800_000_000 + 7_200);
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Timed {
        vendor_id: &'static str,
        is_active: bool,
        #[serde(with = "firestore::serialize_as_timestamp")]
        created_at: firestore::FirestoreInstant,
        #[serde(with = "firestore::serialize_as_timestamp")]
        expires_at: firestore::FirestoreInstant,
        caption: &'static str,
    }
    let timed = Timed {
        vendor_id: "baker",
        is_active: true,
        created_at: instant(crate::at(1_800_000_000)),
        expires_at: instant(expiry),
        caption: "fresh bread",
    };
    h.db.set(&paths::post("p4").unwrap(), &timed).await.unwrap();
    let mut new_fields = post_fields("baker", true);
    new_fields.insert("expiresAt".to_owned(), Fv::Timestamp(expiry));
    let updated = post_event(
        &h.project,
        "evt-upd-p4",
        Updated,
        "p4",
        Some(post_fields("baker", true)),
        Some(new_fields),
    );
    let res = h.send_event(&updated).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap_or_default());
    h.drain_tasks().await;

    let want = (expiry.to_rfc3339(), expiry.to_rfc3339());
    let got = entry_expiries(&h, "p4", &buyers[1..]).await;
    assert!(got.iter().all(|e| *e == want), "entries keep the old expiry: {:?}", &got[..3]);
    assert!(!holders(&h.db, "p4").await.contains(&buyers[0]), "a removed entry is not recreated");
}
