//! What notifying costs in Firestore operations, pinned in `docs/costs.json`: one order-paid
//! notification (a buyer with one device), and a new post's page as a fixed part plus a part per
//! follower. The counts come from the runtime's per-request counter read back from `/metrics`;
//! a change that adds reads or writes fails here and has to update the pins (and the README's
//! table) on purpose.

use gcp::eventarc::FirestoreEventKind;
use testkit::costs::{Cost, minus, pinned, route_ops};

use crate::*;

async fn ops(h: &Harness, route: &str) -> Cost {
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(oidc(PUSH_SA)).send();
    route_ops(&response.await.unwrap().text().await.unwrap(), route)
}

#[tokio::test]
async fn an_order_paid_notification_has_a_pinned_cost() {
    let h = Harness::start(&[("HEARTH_METRICS_ALLOWED_EMAILS", PUSH_SA)]).await;
    h.device("buyer-1", "tok-1").await;
    let before = ops(&h, "/pubsub/order-paid").await;
    assert_eq!(h.deliver("order-paid", "m-1", order_paid("ord_1", "buyer-1")).await.status(), 204);
    let cost = minus(ops(&h, "/pubsub/order-paid").await, before);
    assert_eq!(cost, pinned("order_paid_notification"), "{cost:?}");
}

async fn post(h: &Harness, vendor: &str, followers: usize) -> Cost {
    let buyers = seed_followers(&h.db, vendor, followers).await;
    for b in &buyers {
        h.device(b, &format!("tok-{b}")).await;
    }
    let id = format!("{vendor}-post");
    write_post(&h.db, &id, vendor).await;
    let event = doc_event(
        &h.project,
        &format!("ce-{id}"),
        FirestoreEventKind::Created,
        &format!("posts/{id}"),
        None,
        Some(post_fields(vendor, true)),
    );
    let before = ops(h, "/posts").await;
    assert_eq!(h.send_event("/posts", &event).await.status(), 204);
    minus(ops(h, "/posts").await, before)
}

#[tokio::test]
async fn a_new_post_page_costs_a_fixed_part_plus_one_part_per_follower() {
    let h = Harness::start(&[("HEARTH_METRICS_ALLOWED_EMAILS", PUSH_SA)]).await;
    let ten = post(&h, "v10", 10).await;
    let thirty = post(&h, "v30", 30).await;
    let report = format!("10 followers {ten:?}, 30 followers {thirty:?}");
    let extra = minus(thirty, ten);
    assert!(extra.iter().all(|n| n % 20 == 0), "not linear in followers: {report}");
    let per_follower = extra.map(|n| n / 20);
    let fixed = minus(ten, per_follower.map(|n| n * 10));
    assert_eq!(per_follower, pinned("post_notification_per_follower"), "per follower: {report}");
    assert_eq!(fixed, pinned("post_notification_fixed"), "per page: {report}");
}
