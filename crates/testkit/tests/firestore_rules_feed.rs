//! The feed's part of `firestore.rules` evaluated for real (helpers copied from
//! `firestore_rules.rs`): a Firestore emulator started with the repository's rules, seeded
//! through the admin path (`Bearer owner`), probed over REST with unsigned ID tokens. Each rule
//! is shown allowing what it should and denying what it must.

use serde_json::{Value, json};
use testkit::rules::{commit_body, emulator};

struct Db {
    host: &'static str,
    project: String,
    http: reqwest::Client,
}

/// Who makes a request.
#[derive(Clone, Copy)]
enum As {
    Admin,
    Anonymous,
    User(&'static str),
}

fn ts(offset_hours: i64) -> Value {
    let t = chrono::Utc::now() + chrono::TimeDelta::hours(offset_hours);
    json!({"$ts": t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)})
}

impl Db {
    async fn new() -> Db {
        Db {
            host: emulator().await,
            project: testkit::project_id(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn bearer(&self, who: As) -> Option<String> {
        match who {
            As::Admin => Some("owner".to_owned()),
            As::Anonymous => None,
            As::User(uid) => {
                let mut claims = testkit::tokens::firebase_id_claims(&self.project, uid);
                claims["tenant_id"] = json!(format!("t-{uid}"));
                claims["role"] = json!("owner");
                Some(testkit::tokens::unsigned(&claims))
            }
        }
    }

    fn doc_url(&self, path: &str) -> String {
        format!(
            "http://{}/v1/projects/{}/databases/(default)/documents/{path}",
            self.host, self.project
        )
    }

    fn name(&self, path: &str) -> String {
        format!("projects/{}/databases/(default)/documents/{path}", self.project)
    }

    async fn send(&self, who: As, req: reqwest::RequestBuilder) -> (u16, String) {
        let req = match self.bearer(who) {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn get(&self, who: As, path: &str) -> u16 {
        self.send(who, self.http.get(self.doc_url(path))).await.0
    }

    async fn delete(&self, who: As, path: &str) -> u16 {
        self.send(who, self.http.delete(self.doc_url(path))).await.0
    }

    /// A commit with one write of `data` (merged into the fields named when `merge`), with
    /// `server_time` fields set to the request time.
    async fn write(
        &self,
        who: As,
        path: &str,
        data: Value,
        merge: bool,
        server_time: &[&str],
    ) -> u16 {
        let body = commit_body(&self.name(path), &data, merge, server_time);
        let url = format!(
            "http://{}/v1/projects/{}/databases/(default)/documents:commit",
            self.host, self.project
        );
        let (status, body) = self.send(who, self.http.post(url).json(&body)).await;
        assert!(status == 200 || status == 403, "unexpected {status}: {body}");
        status
    }

    async fn seed(&self, path: &str, data: Value) {
        assert_eq!(self.write(As::Admin, path, data, false, &[]).await, 200, "seeding {path}");
    }
}

const ALICE: As = As::User("alice");
const BOB: As = As::User("bob");
const VENDOR: As = As::User("v1");
const OTHER_VENDOR: As = As::User("v2");

#[tokio::test]
async fn a_user_reads_only_their_own_feed_and_nobody_writes_feeds() {
    let db = Db::new().await;
    let entry = json!({"postId": "p1", "vendorId": "v1", "score": 1, "source": "following"});
    db.seed("feeds/alice/posts/p1", entry.clone()).await;
    assert_eq!(db.get(ALICE, "feeds/alice/posts/p1").await, 200);
    assert_eq!(db.get(BOB, "feeds/alice/posts/p1").await, 403);
    assert_eq!(db.get(As::Anonymous, "feeds/alice/posts/p1").await, 403);
    assert_eq!(db.write(ALICE, "feeds/alice/posts/p2", entry.clone(), false, &[]).await, 403);
    assert_eq!(db.write(BOB, "feeds/alice/posts/p2", entry, false, &[]).await, 403);
    assert_eq!(db.delete(ALICE, "feeds/alice/posts/p1").await, 403);
}

#[tokio::test]
async fn vendors_write_their_own_posts_and_nothing_the_server_owns() {
    let db = Db::new().await;
    let post = json!({"vendorId": "v1", "isActive": true, "caption": "bread"});
    assert_eq!(db.write(VENDOR, "posts/p1", post.clone(), false, &["createdAt"]).await, 200);
    // Someone else's vendorId, a client-chosen creation time, server-owned fields.
    assert_eq!(db.write(OTHER_VENDOR, "posts/p2", post.clone(), false, &["createdAt"]).await, 403);
    let mut backdated = post.clone();
    backdated["createdAt"] = ts(-48);
    assert_eq!(db.write(VENDOR, "posts/p3", backdated, false, &[]).await, 403);
    for (field, value) in [("likes", json!(1000)), ("isPremium", json!(true)), ("views", json!(5))]
    {
        let mut p = post.clone();
        p[field] = value;
        assert_eq!(db.write(VENDOR, "posts/p4", p, false, &["createdAt"]).await, 403, "{field}");
    }
    // Edits: own post, allowed fields only.
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"caption": "rye"}), true, &[]).await, 200);
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"isActive": false}), true, &[]).await, 200);
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"likes": 9}), true, &[]).await, 403);
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"vendorId": "v2"}), true, &[]).await, 403);
    assert_eq!(db.write(OTHER_VENDOR, "posts/p1", json!({"caption": "x"}), true, &[]).await, 403);
    // An inactive post is visible to its vendor only; an active one to anyone signed in.
    assert_eq!(db.get(VENDOR, "posts/p1").await, 200);
    assert_eq!(db.get(ALICE, "posts/p1").await, 403);
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"isActive": true}), true, &[]).await, 200);
    assert_eq!(db.get(ALICE, "posts/p1").await, 200);
    assert_eq!(db.get(As::Anonymous, "posts/p1").await, 403);
    assert_eq!(db.delete(OTHER_VENDOR, "posts/p1").await, 403);
    assert_eq!(db.delete(VENDOR, "posts/p1").await, 200);
}

#[tokio::test]
async fn counters_likes_views_and_follows_are_server_only() {
    let db = Db::new().await;
    db.seed("posts/p1", json!({"vendorId": "v1", "isActive": true})).await;
    db.seed("posts/p1/shards/likes_3", json!({"count": 4})).await;
    db.seed("posts/p1/likes/alice", json!({"uid": "alice"})).await;
    db.seed("followers/v1:alice", json!({"vendorId": "v1", "buyerId": "alice"})).await;
    db.seed("vendors/v1/shards/followers_0", json!({"count": 1})).await;

    assert_eq!(db.get(ALICE, "posts/p1/shards/likes_3").await, 403);
    assert_eq!(
        db.write(ALICE, "posts/p1/shards/likes_3", json!({"count": 99}), false, &[]).await,
        403
    );
    assert_eq!(
        db.write(VENDOR, "posts/p1/shards/likes_0", json!({"count": 99}), false, &[]).await,
        403
    );
    assert_eq!(db.get(ALICE, "posts/p1/likes/alice").await, 200);
    assert_eq!(db.get(BOB, "posts/p1/likes/alice").await, 403);
    assert_eq!(db.write(BOB, "posts/p1/likes/bob", json!({"uid": "bob"}), false, &[]).await, 403);
    assert_eq!(
        db.write(ALICE, "posts/p1/views/alice", json!({"uid": "alice"}), false, &[]).await,
        403
    );
    assert_eq!(db.get(ALICE, "followers/v1:alice").await, 200);
    assert_eq!(db.get(BOB, "followers/v1:alice").await, 403);
    let follow = json!({"vendorId": "v1", "buyerId": "bob"});
    assert_eq!(db.write(BOB, "followers/v1:bob", follow, false, &[]).await, 403);
    assert_eq!(db.get(VENDOR, "vendors/v1/shards/followers_0").await, 403);
    assert_eq!(
        db.write(VENDOR, "vendors/v1/shards/followers_0", json!({"count": 1000}), false, &[]).await,
        403
    );
}

#[tokio::test]
async fn stories_are_written_by_their_vendor_for_at_most_a_day() {
    let db = Db::new().await;
    let story = |hours: i64| json!({"vendorId": "v1", "expiresAt": ts(hours), "mediaUrl": "https://cdn/s.jpg"});
    assert_eq!(db.write(VENDOR, "stories/s1", story(23), false, &["createdAt"]).await, 200);
    assert_eq!(db.write(VENDOR, "stories/s2", story(72), false, &["createdAt"]).await, 403);
    assert_eq!(db.write(OTHER_VENDOR, "stories/s3", story(1), false, &["createdAt"]).await, 403);
    assert_eq!(db.get(ALICE, "stories/s1").await, 200);
    assert_eq!(db.get(As::Anonymous, "stories/s1").await, 403);
    assert_eq!(db.write(VENDOR, "stories/s1", json!({"mediaUrl": "x"}), true, &[]).await, 403);
    assert_eq!(db.delete(OTHER_VENDOR, "stories/s1").await, 403);
    assert_eq!(db.delete(VENDOR, "stories/s1").await, 200);
}

/// Regression: the update rule validated the whole post with `hasOnly`, so once the
/// `aggregate-counters` job had written `likes`, `views` and `shares` onto a post, every vendor
/// edit was denied, even taking it down. Edits are now checked on the keys they change; the
/// counters stay server-only.
#[tokio::test]
async fn vendors_edit_posts_that_carry_aggregated_counters_but_never_the_counters() {
    let db = Db::new().await;
    let aggregated = json!({"vendorId": "v1", "isActive": true, "createdAt": ts(-1),
        "caption": "bread", "likes": 12, "views": 40, "shares": 3});
    db.seed("posts/p1", aggregated).await;
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"isActive": false}), true, &[]).await, 200);
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"caption": "rye"}), true, &[]).await, 200);
    assert_eq!(db.write(VENDOR, "posts/p1", json!({"expiresAt": ts(24)}), true, &[]).await, 200);
    // The counters, server-owned fields and invalid values stay refused.
    for (field, value) in [
        ("likes", json!(1000)),
        ("views", json!(0)),
        ("shares", json!(7)),
        ("isPremium", json!(true)),
        ("vendorId", json!("v2")),
        ("createdAt", ts(-48)),
        ("isActive", json!("yes")),
        ("caption", json!("x".repeat(2201))),
        ("expiresAt", json!("tomorrow")),
    ] {
        let status = db.write(VENDOR, "posts/p1", json!({ field: value }), true, &[]).await;
        assert_eq!(status, 403, "{field}");
    }
    assert_eq!(db.write(OTHER_VENDOR, "posts/p1", json!({"caption": "x"}), true, &[]).await, 403);
    assert_eq!(db.write(As::Anonymous, "posts/p1", json!({"caption": "x"}), true, &[]).await, 403);
}
