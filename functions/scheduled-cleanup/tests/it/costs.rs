//! What one cleanup page costs in Firestore operations, pinned: the counts come from the
//! runtime's per-request counter (`runtime::ops`, fed by `store` at the RPC layer), read back
//! from `/metrics` (`hearth_firestore_ops_total`). A change that adds reads or writes to a page
//! fails here and has to update the number (and README.md, and `docs/costs.json`) on purpose.

use crate::{harness, scheduler_token, seed};

/// `(reads, writes, deletes, query_results)` of route `/jobs/{job}` so far.
fn ops(text: &str) -> [u64; 4] {
    let mut out = [0; 4];
    for line in text.lines().filter(|l| l.starts_with("hearth_firestore_ops_total{")) {
        if !line.contains(r#"route="/jobs/{job}""#) {
            continue;
        }
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        for (i, kind) in ["read", "write", "delete", "query_result"].iter().enumerate() {
            if line.contains(&format!(r#"kind="{kind}""#)) {
                out[i] += n;
            }
        }
    }
    out
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
    let page: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    // reads, writes, deletes, query results of a page of 10: the query's 10 results, 10 deletes.
    assert_eq!(page, [10, 0, 10, 10], "one page of 10 (reads, writes, deletes, query results)");
}

#[tokio::test]
async fn one_expire_feed_items_page_costs_what_the_readme_says() {
    let h = harness(10, 1).await;
    crate::feed_items::seed_feeds(&h, 25, 2, 0).await;
    let before = ops(&h.metrics_text().await);
    let (status, body) = h.run("expire-feed-items", Some(&scheduler_token())).await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(10)), "{body}");
    let after = ops(&h.metrics_text().await);
    let page: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(page, [10, 0, 10, 10], "one page of 10 (reads, writes, deletes, query results)");
}
