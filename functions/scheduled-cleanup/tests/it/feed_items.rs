//! `expire-feed-items`: feed entries (`feeds/{uid}/posts/{postId}`) past `ttlAt` (their
//! `expiresAt`, as `store::feed` writes both) go, live ones stay, and the vendors' own
//! `posts/{postId}` (same collection group, also carrying an `expiresAt`) are never touched,
//! however many of them sort before the feed entries.

use super::*;

impl Harness {
    async fn put(&self, path: &str, fields: Value) {
        let res = self
            .http
            .patch(format!("{}/{path}", self.docs_url()))
            .bearer_auth("owner")
            .json(&json!({ "fields": fields }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }

    /// The ids of the documents of collection group `posts` under `prefix` ("feeds" or "posts").
    async fn posts_under(&self, prefix: &str) -> Vec<String> {
        let res: Value = self
            .http
            .post(format!("{}:runQuery", self.docs_url()))
            .bearer_auth("owner")
            .json(&json!({"structuredQuery": {"from": [{"collectionId": "posts", "allDescendants": true}]}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let root = format!("projects/{}/databases/(default)/documents/{prefix}/", self.project);
        let mut names: Vec<String> = res
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["document"]["name"].as_str())
            .filter_map(|n| n.strip_prefix(&root))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }
}

fn time(t: DateTime<Utc>) -> Value {
    json!({ "timestampValue": t.to_rfc3339() })
}

/// `expired` feed entries that expired minutes ago and `live` ones expiring in a day, spread
/// over 3 users; and `vendor_posts` vendor posts whose `expiresAt` is long past (sorting before
/// every feed entry).
pub(crate) async fn seed_feeds(h: &Harness, expired: usize, live: usize, vendor_posts: usize) {
    let now = Utc::now();
    for i in 0..vendor_posts {
        let at = now - chrono::Duration::days(30) + chrono::Duration::seconds(i as i64);
        h.put(
            &format!("posts/vp-{i:03}"),
            json!({"vendorId": {"stringValue": "v1"}, "isActive": {"booleanValue": true},
                   "createdAt": time(at), "expiresAt": time(at)}),
        )
        .await;
    }
    for i in 0..expired + live {
        let expires = if i < expired {
            now - chrono::Duration::minutes(5 + i as i64)
        } else {
            now + chrono::Duration::days(1)
        };
        let kind = if i < expired { "old" } else { "new" };
        h.put(
            &format!("feeds/u{}/posts/{kind}-{i:03}", i % 3),
            json!({"postId": {"stringValue": format!("{kind}-{i:03}")},
                   "vendorId": {"stringValue": "v1"}, "createdAt": time(now),
                   "expiresAt": time(expires), "ttlAt": time(expires),
                   "score": {"integerValue": "1"},
                   "source": {"stringValue": "following"}}),
        )
        .await;
    }
}

#[tokio::test]
async fn expired_entries_go_live_ones_and_vendor_posts_stay() {
    // Page of 4 and 9 expired vendor posts ahead: the sweep must page past them.
    let h = harness(4, 100).await;
    seed_feeds(&h, 10, 4, 9).await;
    let (status, body) = h.run("expire-feed-items", Some(&scheduler_token())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"], "expire-feed-items");
    assert_eq!(body["changed"], 10, "{body}");
    assert_eq!(body["remaining"], false, "{body}");
    let left = h.posts_under("feeds").await;
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.iter().all(|n| n.contains("/posts/new-")), "only live entries left: {left:?}");
    assert_eq!(h.posts_under("posts").await.len(), 9, "vendor posts are never deleted");
    let (_, again) = h.run("expire-feed-items", Some(&scheduler_token())).await;
    assert_eq!(again["changed"], 0, "{again}");

    // The run is in the function's metrics.
    let text = h.metrics_text().await;
    for line in [
        r#"hearth_job_documents_total{job="expire-feed-items",outcome="changed"} 10"#,
        r#"hearth_job_runs_total{job="expire-feed-items",remaining="false"} 2"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[tokio::test]
async fn two_concurrent_runs_delete_and_count_each_entry_once() {
    let h = harness(5, 100).await;
    seed_feeds(&h, 30, 3, 4).await;
    assert_eq!(h.run_twice_at_once("expire-feed-items").await, 30);
    assert_eq!(h.posts_under("feeds").await.len(), 3);
    assert_eq!(h.posts_under("posts").await.len(), 4);
}

#[tokio::test]
async fn an_interrupted_run_finishes_on_the_next() {
    let h = harness(6, 1).await;
    seed_feeds(&h, 20, 2, 3).await;
    let token = scheduler_token();
    let (_, first) = h.run("expire-feed-items", Some(&token)).await;
    assert_eq!(first["remaining"], true, "{first}");
    let mut total = first["changed"].as_u64().unwrap();
    // One page a run: 20 entries take at most 9 runs.
    for _ in 0..8 {
        let (_, next) = h.run("expire-feed-items", Some(&token)).await;
        total += next["changed"].as_u64().unwrap();
    }
    assert_eq!(total, 20);
    assert_eq!(h.posts_under("feeds").await.len(), 2);
    assert_eq!(h.posts_under("posts").await.len(), 3);
}

/// Regression: the sweep used to query `expiresAt` over the whole collection group, so expired
/// vendor posts filled its pages; with more of them than a run's page budget (30,000 at the
/// defaults; 2 pages of 3 here) no run ever reached a feed entry. It now queries `ttlAt`, which
/// only feed entries carry.
#[tokio::test]
async fn a_feed_entry_behind_more_expired_vendor_posts_than_a_run_reads_is_deleted() {
    let h = harness(3, 2).await;
    seed_feeds(&h, 1, 1, 12).await;
    let token = scheduler_token();
    for _ in 0..3 {
        let (status, body) = h.run("expire-feed-items", Some(&token)).await;
        assert_eq!(status, 200, "{body}");
    }
    let left = h.posts_under("feeds").await;
    assert_eq!(left.len(), 1, "the expired entry is gone after three runs: {left:?}");
    assert!(left[0].contains("/posts/new-"), "{left:?}");
    assert_eq!(h.posts_under("posts").await.len(), 12, "vendor posts are never deleted");
}
