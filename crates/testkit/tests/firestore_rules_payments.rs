//! `firestore.rules` for the payments collections, evaluated by a Firestore emulator started
//! with the repository's rules (same approach and helpers as `firestore_rules.rs`): buyers read
//! their own orders, payments and reservations (documents and `uid`-constrained queries); every
//! client write is refused; the server path still writes.

use serde_json::{Value, json};
use testkit::rules::{commit_body, emulator};

/// Who makes a request.
#[derive(Clone, Copy)]
enum As {
    Admin,
    Anonymous,
    User(&'static str),
}

const ADA: As = As::User("ada");
const BOB: As = As::User("bob");

struct Db {
    host: &'static str,
    project: String,
    http: reqwest::Client,
}

impl Db {
    async fn seeded() -> Db {
        let db = Db {
            host: emulator().await,
            project: testkit::project_id(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        for (collection, id, uid) in [
            ("orders", "o-ada", "ada"),
            ("orders", "o-bob", "bob"),
            ("payments", "p-ada", "ada"),
            ("payments", "p-bob", "bob"),
            ("reservations", "r-ada", "ada"),
            ("reservations", "r-bob", "bob"),
        ] {
            let status = db
                .write(
                    As::Admin,
                    &format!("{collection}/{id}"),
                    json!({"uid": uid, "status": "held", "amount_minor": 1000}),
                )
                .await;
            assert_eq!(status, 200, "seeding {collection}/{id}");
        }
        db
    }

    fn bearer(&self, who: As) -> Option<String> {
        match who {
            As::Admin => Some("owner".to_owned()),
            As::Anonymous => None,
            As::User(uid) => {
                let mut claims = testkit::tokens::firebase_id_claims(&self.project, uid);
                claims["tenant_id"] = json!(format!("personal-{uid}"));
                claims["role"] = json!("owner");
                Some(testkit::tokens::unsigned(&claims))
            }
        }
    }

    fn root(&self) -> String {
        format!("http://{}/v1/projects/{}/databases/(default)/documents", self.host, self.project)
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
        self.send(who, self.http.get(format!("{}/{path}", self.root()))).await.0
    }

    async fn delete(&self, who: As, path: &str) -> u16 {
        self.send(who, self.http.delete(format!("{}/{path}", self.root()))).await.0
    }

    /// One `update` write (replace) in a commit.
    async fn write(&self, who: As, path: &str, data: Value) -> u16 {
        let name = format!("projects/{}/databases/(default)/documents/{path}", self.project);
        let body = commit_body(&name, &data, false, &[]);
        let url = format!("{}:commit", self.root());
        let (status, body) = self.send(who, self.http.post(url).json(&body)).await;
        assert!(status == 200 || status == 403, "unexpected {status}: {body}");
        status
    }

    /// `collection` where `uid == uid` (or everything when `None`).
    async fn query(&self, who: As, collection: &str, uid: Option<&str>) -> u16 {
        let mut query = json!({"from": [{"collectionId": collection}]});
        if let Some(uid) = uid {
            query["where"] = json!({"fieldFilter": {
                "field": {"fieldPath": "uid"}, "op": "EQUAL", "value": {"stringValue": uid}}});
        }
        let url = format!("{}:runQuery", self.root());
        self.send(who, self.http.post(url).json(&json!({"structuredQuery": query}))).await.0
    }
}

const COLLECTIONS: [&str; 3] = ["orders", "payments", "reservations"];

fn own(collection: &str, uid: &str) -> String {
    let prefix = &collection[..1];
    format!("{collection}/{prefix}-{uid}")
}

#[tokio::test]
async fn buyers_read_their_own_orders_payments_and_reservations_only() {
    let db = Db::seeded().await;
    for collection in COLLECTIONS {
        assert_eq!(db.get(ADA, &own(collection, "ada")).await, 200, "ada reads her {collection}");
        assert_eq!(db.get(ADA, &own(collection, "bob")).await, 403, "ada reads bob's {collection}");
        assert_eq!(db.get(BOB, &own(collection, "bob")).await, 200);
        assert_eq!(db.get(As::Anonymous, &own(collection, "ada")).await, 403);
    }
}

#[tokio::test]
async fn queries_must_be_constrained_to_the_caller() {
    let db = Db::seeded().await;
    for collection in COLLECTIONS {
        assert_eq!(db.query(ADA, collection, Some("ada")).await, 200, "{collection} of ada");
        assert_eq!(db.query(ADA, collection, Some("bob")).await, 403, "{collection} of bob");
        assert_eq!(db.query(ADA, collection, None).await, 403, "all {collection}");
        assert_eq!(db.query(As::Anonymous, collection, Some("ada")).await, 403);
    }
}

#[tokio::test]
async fn clients_never_write_them_and_the_server_does() {
    let db = Db::seeded().await;
    for collection in COLLECTIONS {
        let path = own(collection, "ada");
        let paid = json!({"uid": "ada", "status": "paid", "amount_minor": 0});
        assert_eq!(db.write(ADA, &path, paid.clone()).await, 403, "ada updates her {collection}");
        assert_eq!(db.delete(ADA, &path).await, 403, "ada deletes her {collection}");
        let created = format!("{collection}/new-by-ada");
        assert_eq!(db.write(ADA, &created, paid.clone()).await, 403, "ada creates a {collection}");
        assert_eq!(db.write(As::Admin, &path, paid).await, 200, "the server path writes");
    }
}
