//! What one cleanup page costs in Firestore operations, pinned: the counts come from the
//! runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer), read back
//! from `/metrics` (`hearth_firestore_ops_total`). A change that adds reads or writes to a page
//! fails here and has to update `docs/costs.json` (and the README's table) on purpose.

use testkit::costs::{Cost, minus, pinned, route_ops};

use crate::{harness, scheduler_token, seed};

/// `[reads, writes, deletes, query results, round trips]` of route `/jobs/{job}` so far.
fn ops(text: &str) -> Cost {
    route_ops(text, "/jobs/{job}")
}

#[tokio::test]
async fn one_prune_idempotency_page_costs_what_the_readme_says() {
    // One page of 10 per run, 25 expired records: the run is exactly one full page.
    let h = harness(10, 1).await;
    seed(&h, 25, 2).await;
    let before = ops(&h.metrics_text().await);
    let (status, body) = h.run("prune-idempotency", Some(&scheduler_token())).await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(10)), "{body}");
    let after = ops(&h.metrics_text().await);
    let page = minus(after, before);
    // reads, writes, deletes, query results of a page of 10: the query's 10 results, 10 deletes.
    assert_eq!(page, pinned("cleanup_prune_idempotency_page_10"), "one page of 10");
}

#[tokio::test]
async fn one_expire_feed_items_page_costs_what_the_readme_says() {
    let h = harness(10, 1).await;
    crate::feed_items::seed_feeds(&h, 25, 2, 0).await;
    let before = ops(&h.metrics_text().await);
    let (status, body) = h.run("expire-feed-items", Some(&scheduler_token())).await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(10)), "{body}");
    let after = ops(&h.metrics_text().await);
    let page = minus(after, before);
    assert_eq!(page, pinned("cleanup_expire_feed_items_page_10"), "one page of 10");
}

#[tokio::test]
async fn one_expire_reservations_page_costs_what_the_readme_says() {
    // Two expired holds of 2 units (each from one shard of 20: one shard to return to), one
    // page of 2 per run.
    let h = harness(2, 1).await;
    crate::reservations::seed(&h, 2, 1).await;
    let before = ops(&h.metrics_text().await);
    let (status, body) = h.run("expire-reservations", Some(&scheduler_token())).await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(2)), "{body}");
    let page = minus(ops(&h.metrics_text().await), before);
    assert_eq!(page, pinned("cleanup_expire_reservations_page_2"), "one page of 2");
}

#[tokio::test]
async fn one_aggregate_counters_page_costs_what_the_readme_says() {
    // Two posts liked once each (one dirty shard each), one page of 2 per run.
    let h = harness(2, 1).await;
    let db = crate::counters::db(&h);
    for id in ["p0", "p1"] {
        crate::counters::liked_post(&db, id, 1).await;
    }
    let before = ops(&h.metrics_text().await);
    let (status, body) = h.run("aggregate-counters", Some(&scheduler_token())).await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(2)), "{body}");
    let page = minus(ops(&h.metrics_text().await), before);
    assert_eq!(page, pinned("cleanup_aggregate_counters_page_2"), "one page of 2");
}
