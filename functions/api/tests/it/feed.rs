//! The feed callables: merged pages with a stable cursor, follow backfill and unfollow, likes
//! and views on idempotent counters, stories.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use domain::counters::CounterField;
use domain::feed::{FeedPolicy, FeedSource, feed_item};
use runtime::Env;
use serde_json::{Value, json};
use store::feed::{Fanout, PostRecord, StoryRecord};
use store::{Db, RampPolicy, counters, paths};
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

struct Harness {
    app: TestApp,
    db: Db,
    project: String,
    _jwks: JwksServer,
}

impl Harness {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let firestore = testkit::emulators::firestore().await;
        let project = testkit::project_id();
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let mut vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let built = api::build("api", &Env::from_map(vars)).await.expect("api");
        let db = built.state.db.clone();
        Self { app: testkit::spawn_app(built.router).await, db, project, _jwks: jwks }
    }

    fn token(&self, uid: &str) -> String {
        let mut claims = tokens::firebase_id_claims(&self.project, uid);
        claims["tenant_id"] = json!(domain::tenancy::personal_tenant_id(uid));
        claims["role"] = json!("owner");
        tokens::sign(&claims, keys::primary())
    }

    /// Calls `name` as `uid`; returns the status and the JSON body.
    async fn call(&self, uid: Option<&str>, name: &str, data: Value) -> (u16, Value) {
        let mut request =
            self.app.client.post(self.app.url(&format!("/{name}"))).json(&json!({"data": data}));
        if let Some(uid) = uid {
            request = request.bearer_auth(self.token(uid));
        }
        let res = request.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Calls and expects success; returns `result`.
    async fn ok(&self, uid: &str, name: &str, data: Value) -> Value {
        let (status, body) = self.call(Some(uid), name, data).await;
        assert_eq!(status, 200, "{name}: {body}");
        body["result"].clone()
    }
}

fn minutes_ago(m: i64) -> DateTime<Utc> {
    Utc::now() - TimeDelta::minutes(m)
}

async fn post(db: &Db, id: &str, vendor: &str, active: bool, created: DateTime<Utc>) {
    store::feed::Feeds::new(db)
        .write_post(id, &PostRecord::new(vendor, active, created, &format!("post {id}")))
        .await
        .unwrap();
}

/// What feed-fanout would have written for `uid`.
async fn fanned_out(db: &Db, uid: &str, posts: &[(&str, &str, DateTime<Utc>)]) {
    let policy = FeedPolicy::default();
    let fanout = Fanout::new(db, policy, RampPolicy::default());
    let items: Vec<_> = posts
        .iter()
        .map(|(id, vendor, created)| {
            let facts = domain::feed::PostFacts {
                vendor_id: (*vendor).to_owned(),
                active: true,
                created_at: *created,
                expires_at: None,
                premium: false,
            };
            feed_item(id, &facts, &policy, FeedSource::Following)
        })
        .collect();
    fanout.write_items(uid, &items).await.unwrap();
}

fn ids(result: &Value) -> Vec<String> {
    result["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn pages_merge_high_follower_vendors_with_a_stable_cursor() {
    let h = Harness::start(&[("HEARTH_FEED_HIGH_FOLLOWERS", "1")]).await;
    let db = &h.db;
    // Precomputed entries from an ordinary vendor (fanned out).
    let mut fanned = Vec::new();
    for i in 0..5 {
        let created = minutes_ago(100 - i * 10);
        let id = format!("small-{i}");
        post(db, &id, "small", true, created).await;
        fanned.push((id, created));
    }
    let refs: Vec<(&str, &str, DateTime<Utc>)> =
        fanned.iter().map(|(id, c)| (id.as_str(), "small", *c)).collect();
    fanned_out(db, "alice", &refs).await;
    // A high-follower vendor alice follows: not fanned out, merged at read time.
    store::feed::Feeds::new(db).follow("alice", "star", minutes_ago(500)).await.unwrap();
    db.set(&paths::vendor("star").unwrap(), &json!({"name": "Star"})).await.unwrap();
    counters::Counters::new(db)
        .aggregate(&paths::vendor("star").unwrap(), CounterField::Followers)
        .await
        .unwrap();
    for i in 0..3 {
        post(db, &format!("star-{i}"), "star", true, minutes_ago(95 - i * 20)).await;
    }
    // Inactive and deleted posts never show.
    post(db, "star-hidden", "star", false, minutes_ago(1)).await;
    fanned_out(db, "alice", &[("gone", "small", minutes_ago(2))]).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let result = h.ok("alice", "getFeed", json!({"cursor": cursor, "limit": 3})).await;
        let page = ids(&result);
        assert!(page.len() <= 3);
        seen.extend(page);
        pages += 1;
        if pages == 1 {
            // A new post lands at the top of the feed between pages: no skip, no repeat.
            post(db, "fresh", "small", true, Utc::now()).await;
            fanned_out(db, "alice", &[("fresh", "small", Utc::now())]).await;
        }
        if !result["hasMore"].as_bool().unwrap() {
            assert!(result["nextCursor"].is_null());
            break;
        }
        cursor = Some(result["nextCursor"].as_str().unwrap().to_owned());
        assert!(pages < 10);
    }
    let expected =
        ["star-2", "small-4", "small-3", "star-1", "small-2", "small-1", "star-0", "small-0"];
    assert_eq!(seen, expected, "newest first, merged, no skip, no repeat");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    // The next first page starts with the new post.
    let first = h.ok("alice", "getFeed", json!({"limit": 2})).await;
    assert_eq!(ids(&first), ["fresh", "star-2"]);
    assert_eq!(first["posts"][0]["caption"], "post fresh");
    assert_eq!(first["posts"][0]["source"], "following");

    // Bad input is refused with the callable error shape.
    let (status, body) = h.call(Some("alice"), "getFeed", json!({"cursor": "garbage"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    let (status, _) = h.call(Some("alice"), "getFeed", json!({"limit": "many"})).await;
    assert_eq!(status, 400);
    let (status, _) = h.call(None, "getFeed", json!({})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_short_feed_is_backfilled_with_trending_posts() {
    let h = Harness::start(&[]).await;
    let db = &h.db;
    post(db, "hot", "v", true, minutes_ago(30)).await;
    db.set(&paths::post("liked").unwrap(), &PostRecord::new("v", true, minutes_ago(40), "liked"))
        .await
        .unwrap();
    for uid in ["x", "y"] {
        h.ok(uid, "likePost", json!({"postId": "liked"})).await;
    }
    // Trending ranks by the aggregated `likes` field (written by the cleanup job).
    for id in ["liked", "hot"] {
        counters::Counters::new(db)
            .aggregate(&paths::post(id).unwrap(), CounterField::Likes)
            .await
            .unwrap();
    }
    let result = h.ok("newcomer", "getFeed", json!(null)).await;
    let posts = result["posts"].as_array().unwrap();
    assert_eq!(ids(&result), ["liked", "hot"], "most liked first");
    assert!(posts.iter().all(|p| p["source"] == "trending"));
    assert_eq!(result["hasMore"], false);
}

#[tokio::test]
async fn follow_backfills_and_unfollow_removes() {
    let h = Harness::start(&[]).await;
    let db = &h.db;
    for i in 0..3 {
        post(db, &format!("v-{i}"), "baker", true, minutes_ago(10 + i)).await;
    }
    post(db, "v-off", "baker", false, minutes_ago(5)).await;
    let followed = h.ok("bob", "followVendor", json!({"vendorId": "baker"})).await;
    assert_eq!(followed, json!({"following": true, "backfilled": 3}));
    let again = h.ok("bob", "followVendor", json!({"vendorId": "baker"})).await;
    assert_eq!(again["following"], true);
    let vendor = paths::vendor("baker").unwrap();
    assert_eq!(
        counters::Counters::new(db).read(&vendor, CounterField::Followers).await.unwrap(),
        1
    );
    let feed = h.ok("bob", "getFeed", json!({"limit": 10})).await;
    assert_eq!(ids(&feed), ["v-0", "v-1", "v-2"]);

    let gone = h.ok("bob", "unfollowVendor", json!({"vendorId": "baker"})).await;
    assert_eq!(gone, json!({"following": false, "removed": 3}));
    h.ok("bob", "unfollowVendor", json!({"vendorId": "baker"})).await;
    assert_eq!(
        counters::Counters::new(db).read(&vendor, CounterField::Followers).await.unwrap(),
        0
    );
    assert!(store::feed::Feeds::new(db).feed_page("bob", None, 10).await.unwrap().is_empty());

    let (status, _) = h.call(Some("bob"), "followVendor", json!({"vendorId": "a/b"})).await;
    assert_eq!(status, 400);
    let (status, _) = h.call(Some("bob"), "followVendor", json!({"vendorId": "bob"})).await;
    assert_eq!(status, 400);
    let (status, _) = h.call(Some("bob"), "followVendor", json!({"vendor": "x"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn likes_and_views_count_once_and_never_go_negative() {
    let h = Harness::start(&[]).await;
    post(&h.db, "p", "v", true, minutes_ago(1)).await;
    let liked = h.ok("carol", "likePost", json!({"postId": "p"})).await;
    assert_eq!(liked, json!({"liked": true, "changed": true, "likes": 1}));
    let retried = h.ok("carol", "likePost", json!({"postId": "p"})).await;
    assert_eq!(retried, json!({"liked": true, "changed": false, "likes": 1}));
    h.ok("dave", "likePost", json!({"postId": "p"})).await;
    let unliked = h.ok("carol", "unlikePost", json!({"postId": "p"})).await;
    assert_eq!(unliked, json!({"liked": false, "changed": true, "likes": 1}));
    let twice = h.ok("carol", "unlikePost", json!({"postId": "p"})).await;
    assert_eq!(twice["likes"], 1);
    let relike = h.ok("carol", "likePost", json!({"postId": "p"})).await;
    assert_eq!(relike["likes"], 2);
    let never = h.ok("erin", "unlikePost", json!({"postId": "p"})).await;
    assert_eq!(never["likes"], 2);

    assert_eq!(h.ok("carol", "recordView", json!({"postId": "p"})).await, json!({"counted": true}));
    assert_eq!(
        h.ok("carol", "recordView", json!({"postId": "p"})).await,
        json!({"counted": false})
    );
    let views = counters::Counters::new(&h.db)
        .read(&paths::post("p").unwrap(), CounterField::Views)
        .await
        .unwrap();
    assert_eq!(views, 1);

    let (status, body) = h.call(Some("carol"), "likePost", json!({"postId": "nope"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    let (status, _) = h.call(Some("carol"), "likePost", json!({"postId": ""})).await;
    assert_eq!(status, 400);
    let (status, _) = h.call(None, "likePost", json!({"postId": "p"})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn stories_of_followed_vendors_only_unexpired() {
    let h = Harness::start(&[("HEARTH_FEED_STORIES_CACHE_SECS", "0")]).await;
    let db = &h.db;
    for vendor in ["a", "b"] {
        store::feed::Feeds::new(db).follow("fran", vendor, Utc::now()).await.unwrap();
    }
    let write = |id: &str, record: StoryRecord| {
        let path = paths::story(id).unwrap();
        let db = db.clone();
        async move { db.set(&path, &record).await.unwrap() }
    };
    write("a1", StoryRecord::new("a", minutes_ago(60), "https://cdn/a1.jpg")).await;
    write("a2", StoryRecord::new("a", minutes_ago(10), "https://cdn/a2.jpg")).await;
    write("old", StoryRecord::new("a", minutes_ago(25 * 60), "https://cdn/old.jpg")).await;
    write("b1", StoryRecord::new("b", minutes_ago(5), "https://cdn/b1.jpg")).await;
    write("c1", StoryRecord::new("c", minutes_ago(5), "https://cdn/c1.jpg")).await;
    let result = h.ok("fran", "getStories", json!(null)).await;
    let groups = result["storyGroups"].as_array().unwrap();
    let mut got: Vec<(String, Vec<String>)> = groups
        .iter()
        .map(|g| {
            let stories = g["stories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect();
            (g["vendorId"].as_str().unwrap().to_owned(), stories)
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("a".to_owned(), vec!["a1".to_owned(), "a2".to_owned()]),
            ("b".to_owned(), vec!["b1".to_owned()])
        ]
    );
    let nobody = h.ok("gus", "getStories", json!(null)).await;
    assert_eq!(nobody, json!({"storyGroups": []}));
}

/// Every key of every object in `value`, recursively.
fn keys_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys_of(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys_of(v, out)),
        _ => {}
    }
}

/// Regression: `getFeed` and `getStories` answered with the stored documents as the firestore
/// crate decodes them, which adds `_firestore_created`, `_firestore_updated` and
/// `_firestore_full_id` (the document's full path, with the project id). Answers are now
/// built from explicit response types: only the fields named there, no project id.
#[tokio::test]
async fn feed_answers_carry_no_internal_fields_or_project_id() {
    let h = Harness::start(&[("HEARTH_FEED_STORIES_CACHE_SECS", "0")]).await;
    let db = &h.db;
    post(db, "p1", "baker", true, minutes_ago(3)).await;
    h.ok("ivy", "followVendor", json!({"vendorId": "baker"})).await;
    let story = StoryRecord::new("baker", minutes_ago(5), "https://cdn/s.jpg");
    db.set(&paths::story("s1").unwrap(), &story).await.unwrap();
    for (name, result) in [
        ("getFeed", h.ok("ivy", "getFeed", json!({"limit": 5})).await),
        ("getStories", h.ok("ivy", "getStories", json!(null)).await),
    ] {
        let text = result.to_string();
        assert!(!text.contains(&h.project), "{name} leaks the project id: {text}");
        let mut keys = Vec::new();
        keys_of(&result, &mut keys);
        assert!(
            keys.iter().all(|k| !k.starts_with('_')),
            "{name} answers with internal fields: {text}"
        );
    }
    let feed = h.ok("ivy", "getFeed", json!({"limit": 5})).await;
    assert_eq!(ids(&feed), ["p1"]);
    let p = &feed["posts"][0];
    assert_eq!(p["vendorId"], "baker");
    assert_eq!(p["caption"], "post p1");
    assert_eq!(p["source"], "following");
    assert!(p["createdAt"].is_string() && p["score"].is_i64(), "{p}");
    let stories = h.ok("ivy", "getStories", json!(null)).await;
    assert_eq!(stories["storyGroups"][0]["stories"][0]["mediaUrl"], "https://cdn/s.jpg");
}
