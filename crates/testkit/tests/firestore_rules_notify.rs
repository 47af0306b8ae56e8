//! The notifications' part of `firestore.rules` evaluated for real (helpers copied from
//! `firestore_rules_feed.rs`): the in-app inbox (its owner reads it and marks entries read,
//! once, nothing else), the unread counter's shards, and the notification preferences.

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

const ENTRY: &str = "users/alice/notifications/order_paid_1";

async fn seeded() -> Db {
    let db = Db::new().await;
    db.seed(
        ENTRY,
        json!({"kind": "order_paid", "title": "Payment received", "body": "b", "unread": true,
               "readAt": null, "push": "sent", "ttlAt": ts(24 * 30), "createdAt": ts(0)}),
    )
    .await;
    db.seed("users/alice/shards/unread_0", json!({"count": 1, "dirty": true})).await;
    db.seed(
        "users/alice/config/preferences",
        json!({"theme": "dark", "risk_tolerance": "moderate", "default_allocation": 0.1, "max_positions": 5}),
    )
    .await;
    db.seed("users/alice/config/devices", json!({"devices": []})).await;
    db
}

#[tokio::test]
async fn the_owner_reads_the_inbox_and_nobody_else_does() {
    let db = seeded().await;
    assert_eq!(db.get(ALICE, ENTRY).await, 200);
    assert_eq!(db.get(BOB, ENTRY).await, 403);
    assert_eq!(db.get(As::Anonymous, ENTRY).await, 403);
    assert_eq!(db.get(ALICE, "users/alice/shards/unread_0").await, 200);
    assert_eq!(db.get(BOB, "users/alice/shards/unread_0").await, 403);
    // Devices: the owner may see their own registrations, nobody else.
    assert_eq!(db.get(ALICE, "users/alice/config/devices").await, 200);
    assert_eq!(db.get(BOB, "users/alice/config/devices").await, 403);
}

#[tokio::test]
async fn the_owner_marks_an_entry_read_once_and_changes_nothing_else() {
    let db = seeded().await;
    // Another field, another time than the request's, or someone else: refused.
    assert_eq!(db.write(ALICE, ENTRY, json!({"unread": false}), true, &[]).await, 403);
    assert_eq!(db.write(ALICE, ENTRY, json!({"title": "x"}), true, &["readAt"]).await, 403);
    assert_eq!(db.write(ALICE, ENTRY, json!({"readAt": ts(-1)}), true, &[]).await, 403);
    assert_eq!(db.write(BOB, ENTRY, json!({}), true, &["readAt"]).await, 403);
    // The owner, `readAt` = request time: allowed, once.
    assert_eq!(db.write(ALICE, ENTRY, json!({}), true, &["readAt"]).await, 200);
    assert_eq!(db.write(ALICE, ENTRY, json!({}), true, &["readAt"]).await, 403);
}

#[tokio::test]
async fn clients_never_create_or_delete_entries_or_touch_the_counter() {
    let db = seeded().await;
    let forged =
        json!({"kind": "order_paid", "title": "Refund approved, click here", "unread": true});
    assert_eq!(
        db.write(ALICE, "users/alice/notifications/forged", forged.clone(), false, &[]).await,
        403
    );
    assert_eq!(db.write(BOB, "users/alice/notifications/forged", forged, false, &[]).await, 403);
    assert_eq!(db.delete(ALICE, ENTRY).await, 403);
    assert_eq!(
        db.write(ALICE, "users/alice/shards/unread_0", json!({"count": 0}), false, &[]).await,
        403
    );
    assert_eq!(
        db.write(ALICE, "users/alice/config/devices", json!({"devices": []}), false, &[]).await,
        403
    );
    // Other shards under the user are not the unread counter's.
    db.seed("users/alice/shards/other_0", json!({"count": 1})).await;
    assert_eq!(db.get(ALICE, "users/alice/shards/other_0").await, 403);
}

#[tokio::test]
async fn notification_preferences_accept_only_valid_values() {
    let db = seeded().await;
    let path = "users/alice/config/preferences";
    let good = json!({"notifications": {"optOut": ["new_post"], "pushOff": false,
        "quietHours": {"start": "22:00", "end": "07:00"}, "timeZone": "Africa/Nairobi"}});
    assert_eq!(db.write(ALICE, path, good.clone(), true, &[]).await, 200);
    assert_eq!(db.write(BOB, path, good, true, &[]).await, 403);
    // Every kind the notifier sends can be turned off (`domain::notify::NotificationKind`).
    let every = json!({"notifications": {"optOut": ["order_paid", "order_refunded", "new_post",
        "new_follower", "stream_alert", "trade_signal"]}});
    assert_eq!(db.write(ALICE, path, every, true, &[]).await, 200);
    for bad in [
        json!({"notifications": {"optOut": ["everything"]}}),
        json!({"notifications": {"pushOff": "yes"}}),
        json!({"notifications": {"quietHours": {"start": "25:00", "end": "07:00"}}}),
        json!({"notifications": {"quietHours": {"start": "22:00", "end": "07:00", "x": 1}}}),
        json!({"notifications": {"timeZone": "x".repeat(100)}}),
        json!({"notifications": {"operators": ["alice"]}}),
        json!({"notifications": "off"}),
    ] {
        assert_eq!(db.write(ALICE, path, bad.clone(), true, &[]).await, 403, "{bad}");
    }
}
