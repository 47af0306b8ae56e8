//! Each event kind reaches the right users, once: order-paid and order-refunded the buyer,
//! stream-alerts the operators, a new post the vendor's opted-in followers page by page, a new
//! follower the vendor (a burst collapsed), a trade signal the strategy's owner; opt-outs, quiet hours (deferred, then sent by the
//! job), dead tokens pruned, 429 retried after Retry-After, redeliveries sending nothing twice,
//! and reads counted once.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::notify::{NotificationKind, collapse_key, notification_id};
use gcp::eventarc::FirestoreEventKind;
use serde_json::json;
use store::notify::PushState;

use crate::*;

#[tokio::test]
async fn an_order_paid_reaches_its_buyer_once_in_the_inbox_and_by_push() {
    let h = Harness::start(&[]).await;
    h.device("buyer-1", "tok-buyer-1").await;
    let res = h.deliver("order-paid", "m-1", order_paid("ord_1", "buyer-1")).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());

    let pushed = h.fcm.accepted_for("tok-buyer-1");
    assert_eq!(pushed.len(), 1);
    let msg = &pushed[0];
    assert_eq!(msg["notification"]["title"], "Payment received");
    assert_eq!(msg["data"]["orderId"], "ord_1");
    assert_eq!(msg["data"]["kind"], "order_paid");
    assert_eq!(msg["android"]["collapse_key"], "order_paid:ord_1");
    assert_eq!(msg["android"]["priority"], "HIGH");

    let id = notification_id(NotificationKind::OrderPaid, "ord_1");
    let entry = h.repo().entry("buyer-1", &id).await.unwrap().expect("inbox entry");
    assert_eq!(entry.push, PushState::Sent);
    assert_eq!(entry.body, "Your order ord_1 is paid (KES 1250.50).");
    assert!(entry.ttl_at > Utc::now() + chrono::Duration::days(29));
    assert_eq!(h.repo().unread("buyer-1").await.unwrap(), 1);

    // The same delivery again, and the same fact published again under another message id:
    // nothing more is sent or written.
    assert_eq!(h.deliver("order-paid", "m-1", order_paid("ord_1", "buyer-1")).await.status(), 204);
    assert_eq!(h.deliver("order-paid", "m-2", order_paid("ord_1", "buyer-1")).await.status(), 204);
    assert_eq!(h.fcm.accepted_count(), 1);
    assert_eq!(h.repo().inbox_ids("buyer-1", 10).await.unwrap(), vec![id]);
    assert_eq!(h.repo().unread("buyer-1").await.unwrap(), 1);
    // Nobody else heard of it.
    assert!(h.repo().inbox_ids("buyer-2", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refund_reaches_the_buyer_and_a_stream_alert_the_operators() {
    let h = Harness::start(&[]).await;
    h.device("buyer-1", "tok-b1").await;
    h.device("op-1", "tok-op1").await;
    let refund = json!({
        "v": 1, "order_id": "ord_9", "uid": "buyer-1", "vendor_ids": ["v1"], "refund_id": "re_1",
        "amount_minor": 500, "refunded_total_minor": 500, "currency": "usd", "fully_refunded": false
    });
    assert_eq!(h.deliver("order-refunded", "m-r", refund).await.status(), 204);
    let pushed = h.fcm.accepted_for("tok-b1");
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0]["notification"]["title"], "Partial refund");
    let id = notification_id(NotificationKind::OrderRefunded, "re_1");
    assert!(h.repo().entry("buyer-1", &id).await.unwrap().is_some());

    let alert = json!({
        "v": 1, "stream_id": "EUR_USD_H1", "instrument": "EUR_USD", "granularity": "H1",
        "priority": "critical", "kind": "silent", "last_candle_at": null,
        "detected_at": "2026-01-10T12:00:00Z"
    });
    assert_eq!(h.deliver("stream-alerts", "m-a", alert).await.status(), 204);
    // Both operators have the entry (op-2 has no device: inbox only); the buyer does not.
    for op in ["op-1", "op-2"] {
        let ids = h.repo().inbox_ids(op, 10).await.unwrap();
        assert_eq!(ids.len(), 1, "{op}");
        assert!(ids[0].starts_with("stream_alert_"));
    }
    assert_eq!(h.fcm.accepted_for("tok-op1").len(), 1);
    assert_eq!(h.repo().inbox_ids("buyer-1", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_new_post_reaches_opted_in_followers_page_by_page_and_once() {
    let h = Harness::start(&[("HEARTH_NOTIFY_PAGE_SIZE", "10")]).await;
    let buyers = seed_followers(&h.db, "v1", 25).await;
    for b in &buyers[..20] {
        h.device(b, &format!("tok-{b}")).await;
    }
    // buyers[0] opted out of new posts; buyers[1] has quiet hours all day long (never
    // 00:00-23:59 exclusive of the last minute); buyers[2] turned pushes off.
    h.prefs(&buyers[0], json!({"optOut": ["new_post"]})).await;
    h.prefs(
        &buyers[1],
        json!({"quietHours": {"start": "00:00", "end": "23:59"}, "timeZone": "Africa/Nairobi"}),
    )
    .await;
    h.prefs(&buyers[2], json!({"pushOff": true})).await;
    write_post(&h.db, "p1", "v1").await;
    let event = doc_event(
        &h.project,
        "ce-1",
        FirestoreEventKind::Created,
        "posts/p1",
        None,
        Some(post_fields("v1", true)),
    );
    let res = h.send_event("/posts", &event).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let tasks = h.drain_tasks().await;
    assert_eq!(tasks.len(), 2, "pages 2 and 3 ran as tasks");

    let id = notification_id(NotificationKind::NewPost, "p1");
    for (i, b) in buyers.iter().enumerate() {
        let entry = h.repo().entry(b, &id).await.unwrap();
        if i == 0 {
            assert!(entry.is_none(), "opted out");
            continue;
        }
        let entry = entry.unwrap_or_else(|| panic!("{b} has no entry"));
        let pushes = h.fcm.accepted_for(&format!("tok-{b}")).len();
        match i {
            // Quiet until 23:59 Nairobi: deferred, not sent, not dropped.
            1 => {
                assert_eq!(pushes, 0);
                assert_eq!(entry.push, PushState::Pending);
                assert!(entry.push_at.unwrap() > Utc::now() - chrono::Duration::minutes(1));
            }
            2 => assert_eq!((pushes, entry.push), (0, PushState::None)),
            3..20 => assert_eq!((pushes, entry.push), (1, PushState::Sent), "{b}"),
            // No device.
            _ => assert_eq!((pushes, entry.push), (0, PushState::None), "{b}"),
        }
    }
    assert_eq!(h.fcm.accepted_count(), 17);

    // The post event and every task again: nothing is sent or written twice.
    assert_eq!(h.send_event("/posts", &event).await.status(), 204);
    for (message_id, data) in &tasks {
        let body = push_envelope(&h.project, "notify-tasks", message_id, data);
        assert_eq!(h.push("/pubsub/notify-tasks", body).await.status(), 204);
    }
    // A second chain (another event id for the same post) meets the first one's pages.
    let again = doc_event(
        &h.project,
        "ce-2",
        FirestoreEventKind::Created,
        "posts/p1",
        None,
        Some(post_fields("v1", true)),
    );
    assert_eq!(h.send_event("/posts", &again).await.status(), 204);
    h.drain_tasks().await;
    assert_eq!(h.fcm.accepted_count(), 17);
    assert_eq!(h.repo().unread(&buyers[5]).await.unwrap(), 1);

    // The quiet hours "end": the job sends the deferred push once.
    h.repo().set_push_at(&buyers[1], &id, Utc::now() - chrono::Duration::seconds(1)).await.unwrap();
    let report = h.run_job().await;
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(h.fcm.accepted_for(&format!("tok-{}", buyers[1])).len(), 1);
    let report = h.run_job().await;
    assert_eq!(report["due"], 0, "{report}");
    assert_eq!(h.repo().entry(&buyers[1], &id).await.unwrap().unwrap().push, PushState::Sent);
}

#[tokio::test]
async fn an_edit_or_an_inactive_post_notifies_nobody() {
    let h = Harness::start(&[]).await;
    let buyers = seed_followers(&h.db, "v2", 3).await;
    write_post(&h.db, "p2", "v2").await;
    let edit = doc_event(
        &h.project,
        "ce-e",
        FirestoreEventKind::Updated,
        "posts/p2",
        Some(post_fields("v2", true)),
        Some(post_fields("v2", true)),
    );
    assert_eq!(h.send_event("/posts", &edit).await.status(), 204);
    let hidden = doc_event(
        &h.project,
        "ce-h",
        FirestoreEventKind::Created,
        "posts/p3",
        None,
        Some(post_fields("v2", false)),
    );
    assert_eq!(h.send_event("/posts", &hidden).await.status(), 204);
    for b in &buyers {
        assert!(h.repo().inbox_ids(b, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_burst_of_follows_is_one_notification_and_one_push() {
    let h = Harness::start(&[]).await;
    h.device("vend-1", "tok-vend").await;
    for (n, buyer) in ["b1", "b2", "b3"].iter().enumerate() {
        let path = format!("followers/vend-1:{buyer}");
        let event = doc_event(
            &h.project,
            &format!("ce-f{n}"),
            FirestoreEventKind::Created,
            &path,
            None,
            Some(follow_fields("vend-1", buyer)),
        );
        let res = h.send_event("/followers", &event).await;
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
        // Redelivered: nothing more.
        assert_eq!(h.send_event("/followers", &event).await.status(), 204);
    }
    let ids = h.repo().inbox_ids("vend-1", 10).await.unwrap();
    // Three follows in one window (unless the test straddles a 15-minute boundary).
    assert!(ids.len() <= 2, "{ids:?}");
    let entry = h.repo().entry("vend-1", &ids[ids.len() - 1]).await.unwrap().unwrap();
    assert_eq!(entry.kind, NotificationKind::NewFollower);
    let actors: usize = {
        let mut n = 0;
        for id in &ids {
            n += h.repo().entry("vend-1", id).await.unwrap().unwrap().actors.len();
        }
        n
    };
    assert_eq!(actors, 3);
    assert_eq!(h.fcm.accepted_for("tok-vend").len(), ids.len());
    assert_eq!(h.repo().unread("vend-1").await.unwrap(), ids.len() as u64);
}

#[tokio::test]
async fn dead_tokens_are_pruned_and_a_live_one_still_gets_the_push() {
    let h = Harness::start(&[]).await;
    h.device("buyer-1", "tok-dead").await;
    h.device("buyer-1", "invalid-token").await;
    h.device("buyer-1", "tok-live").await;
    h.fcm.unregister("tok-dead");
    assert_eq!(h.deliver("order-paid", "m-1", order_paid("ord_1", "buyer-1")).await.status(), 204);
    let left: Vec<String> =
        h.repo().devices("buyer-1").await.unwrap().into_iter().map(|d| d.token).collect();
    assert_eq!(left, ["tok-live"]);
    assert_eq!(h.fcm.accepted_for("tok-live").len(), 1);
    let id = notification_id(NotificationKind::OrderPaid, "ord_1");
    assert_eq!(h.repo().entry("buyer-1", &id).await.unwrap().unwrap().push, PushState::Sent);

    // Only dead tokens: the push is dropped, the inbox entry stays.
    h.device("buyer-2", "tok-dead-2").await;
    h.fcm.unregister("tok-dead-2");
    assert_eq!(h.deliver("order-paid", "m-2", order_paid("ord_2", "buyer-2")).await.status(), 204);
    assert!(h.repo().devices("buyer-2").await.unwrap().is_empty());
    let id = notification_id(NotificationKind::OrderPaid, "ord_2");
    assert_eq!(h.repo().entry("buyer-2", &id).await.unwrap().unwrap().push, PushState::Dropped);
}

#[tokio::test]
async fn quota_answers_are_retried_after_their_retry_after() {
    let h = Harness::start(&[]).await;
    h.device("buyer-1", "tok-1").await;
    h.fcm.throttle_next(2, 1);
    let started = Instant::now();
    assert_eq!(h.deliver("order-paid", "m-1", order_paid("ord_1", "buyer-1")).await.status(), 204);
    assert!(started.elapsed() >= Duration::from_secs(2), "waited {:?}", started.elapsed());
    assert_eq!(h.fcm.calls(), 3);
    assert_eq!(h.fcm.accepted_for("tok-1").len(), 1);

    // FCM down for longer than the client's retries: left pending for the job, not lost.
    h.fcm.fail_next(&[503, 503, 503, 503]);
    assert_eq!(h.deliver("order-paid", "m-2", order_paid("ord_2", "buyer-1")).await.status(), 204);
    let id = notification_id(NotificationKind::OrderPaid, "ord_2");
    let entry = h.repo().entry("buyer-1", &id).await.unwrap().unwrap();
    assert_eq!(entry.push, PushState::Pending);
    h.repo().set_push_at("buyer-1", &id, Utc::now() - chrono::Duration::seconds(1)).await.unwrap();
    let report = h.run_job().await;
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(h.fcm.accepted_for("tok-1").len(), 2);
}

#[tokio::test]
async fn a_read_is_counted_once() {
    let h = Harness::start(&[]).await;
    assert_eq!(h.deliver("order-paid", "m-1", order_paid("ord_1", "buyer-1")).await.status(), 204);
    assert_eq!(h.deliver("order-paid", "m-2", order_paid("ord_2", "buyer-1")).await.status(), 204);
    assert_eq!(h.repo().unread("buyer-1").await.unwrap(), 2);
    let id = notification_id(NotificationKind::OrderPaid, "ord_1");
    // Nothing marked: the job counts nothing.
    assert_eq!(h.run_job().await["reads_counted"], 0);
    assert_eq!(h.repo().unread("buyer-1").await.unwrap(), 2);
    h.repo().mark_read("buyer-1", &id, Utc::now()).await.unwrap();
    let entry = h.repo().entry("buyer-1", &id).await.unwrap();
    let marked = h.repo().reads_to_count(10).await.unwrap();
    assert_eq!(marked.len(), 1, "{marked:?} {entry:?}");
    assert_eq!(h.run_job().await["reads_counted"], 1);
    // Counted once, however often the job runs.
    assert_eq!(h.run_job().await["reads_counted"], 0);
    assert_eq!(h.repo().unread("buyer-1").await.unwrap(), 1);
}

#[tokio::test]
async fn a_trade_signal_reaches_its_user_once_and_an_opt_out_holds() {
    let h = Harness::start(&[]).await;
    h.device("trader-1", "tok-trader").await;
    let signal = |id: &str, uid: &str, action: &str, reason: &str| {
        doc_event(
            &h.project,
            &format!("ce-{uid}-{id}"),
            FirestoreEventKind::Created,
            &format!("users/{uid}/signals/{id}"),
            None,
            Some(signal_fields(uid, "t1", action, reason)),
        )
    };
    let open = signal("t1-open", "trader-1", "open_long", "vol_scaled_return");
    let res = h.send_event("/signals", &open).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    // Redelivered, and the same signal under another event id: nothing more.
    assert_eq!(h.send_event("/signals", &open).await.status(), 204);
    let mut again = open.clone();
    again.id = "ce-other".to_owned();
    assert_eq!(h.send_event("/signals", &again).await.status(), 204);
    let pushed = h.fcm.accepted_for("tok-trader");
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0]["notification"]["title"], "Trade opened");
    assert_eq!(pushed[0]["data"]["tradeId"], "t1");
    assert_eq!(pushed[0]["data"]["kind"], "trade_signal");

    // The close: its own entry and push, with the open's collapse key (the device keeps one).
    let close = signal("t1-close", "trader-1", "close", "take_profit");
    assert_eq!(h.send_event("/signals", &close).await.status(), 204);
    let pushed = h.fcm.accepted_for("tok-trader");
    assert_eq!(pushed.len(), 2);
    assert_eq!(
        pushed[1]["android"]["collapse_key"],
        collapse_key(NotificationKind::TradeSignal, "t1")
    );
    let id = notification_id(NotificationKind::TradeSignal, "t1-close");
    let entry = h.repo().entry("trader-1", &id).await.unwrap().unwrap();
    assert_eq!(entry.kind, NotificationKind::TradeSignal);
    assert_eq!(entry.title, "Trade closed");
    assert_eq!(entry.body, "Strategy momo closed its shadow trade at the profit-take at 1.105.");
    assert_eq!(h.repo().unread("trader-1").await.unwrap(), 2);

    // Opted out of trade signals: no entry, no push.
    h.device("trader-2", "tok-trader-2").await;
    h.prefs("trader-2", json!({"optOut": ["trade_signal"]})).await;
    let open = signal("t1-open", "trader-2", "open_short", "label");
    assert_eq!(h.send_event("/signals", &open).await.status(), 204);
    assert!(h.repo().inbox_ids("trader-2", 10).await.unwrap().is_empty());
    assert!(h.fcm.accepted_for("tok-trader-2").is_empty());
}
