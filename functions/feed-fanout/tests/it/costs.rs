//! What fanning a post out costs in Firestore operations, pinned as a fixed part per event and a
//! part per follower: the counts come from the runtime's per-request counter (`runtime::ops`,
//! fed by `store` at the RPC layer, including the follower reads of the read-ahead task), read
//! back from `/metrics` (`hearth_firestore_ops_total`). A change that adds reads or writes fails
//! here and has to update `docs/costs.json` (and the README's table) on purpose.

use gcp::eventarc::FirestoreEventKind;
use testkit::costs::{Cost, minus, pinned, route_ops};

use crate::{Harness, PUSH_SA, oidc, post_event, post_fields, seed_followers, write_post};

/// `[reads, writes, deletes, query results, round trips]` of the Eventarc route so far.
async fn ops(h: &Harness) -> Cost {
    let response = h.app.client.get(h.app.url("/metrics")).bearer_auth(oidc(PUSH_SA)).send();
    route_ops(&response.await.unwrap().text().await.unwrap(), "/")
}

/// The cost of the "created" event of a new post by a vendor with `followers` followers.
async fn fan_out(h: &Harness, vendor: &str, followers: usize) -> Cost {
    let post = format!("{vendor}-post");
    seed_followers(&h.db, vendor, followers).await;
    write_post(&h.db, &post, vendor, true).await;
    let event = post_event(
        &h.project,
        &format!("ce-{post}"),
        FirestoreEventKind::Created,
        &post,
        None,
        Some(post_fields(vendor, true)),
    );
    let before = ops(h).await;
    assert_eq!(h.send_event(&event).await.status(), 204);
    minus(ops(h).await, before)
}

#[tokio::test]
async fn fanning_a_post_out_costs_a_fixed_part_plus_one_part_per_follower() {
    let h = Harness::start(&[("HEARTH_METRICS_ALLOWED_EMAILS", PUSH_SA)]).await;
    let ten = fan_out(&h, "v10", 10).await;
    let thirty = fan_out(&h, "v30", 30).await;
    let report = format!("10 followers {ten:?}, 30 followers {thirty:?}");
    let extra = minus(thirty, ten);
    assert!(extra.iter().all(|n| n % 20 == 0), "not linear in followers: {report}");
    let per_follower = extra.map(|n| n / 20);
    let fixed = minus(ten, per_follower.map(|n| n * 10));
    assert_eq!(per_follower, pinned("post_fanout_per_follower"), "per follower: {report}");
    assert_eq!(fixed, pinned("post_fanout_fixed"), "per event: {report}");
}
