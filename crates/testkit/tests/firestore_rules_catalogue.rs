//! `firestore.rules` for the catalogue, evaluated by a Firestore emulator started with the
//! repository's rules (same approach and helpers as `firestore_rules_payments.rs`): anyone reads
//! active products and vendor profiles; drafts, archived products, stock and handle claims stay
//! server-only; every client write is refused, vendors' included.

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
const VERA: As = As::User("vera");

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
        for (path, data) in [
            ("products/live", json!({"vendor_id": "vera", "status": "active", "price_minor": 100})),
            ("products/draft", json!({"vendor_id": "vera", "status": "draft", "price_minor": 100})),
            (
                "products/gone",
                json!({"vendor_id": "vera", "status": "archived", "price_minor": 100}),
            ),
            ("products/live/stock/all", json!({"shards": 1, "total": 5})),
            ("vendors/vera", json!({"name": "Vera", "handle": "vera"})),
            ("vendor_handles/vera", json!({"vendor_id": "vera"})),
        ] {
            assert_eq!(db.write(As::Admin, path, data).await, 200, "seeding {path}");
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

    /// `products` where `status == status` (or everything when `None`).
    async fn query(&self, who: As, status: Option<&str>) -> u16 {
        let mut query = json!({"from": [{"collectionId": "products"}]});
        if let Some(status) = status {
            query["where"] = json!({"fieldFilter": {
                "field": {"fieldPath": "status"}, "op": "EQUAL", "value": {"stringValue": status}}});
        }
        let url = format!("{}:runQuery", self.root());
        self.send(who, self.http.post(url).json(&json!({"structuredQuery": query}))).await.0
    }
}

#[tokio::test]
async fn anyone_reads_active_products_and_nothing_else_of_the_catalogue() {
    let db = Db::seeded().await;
    for who in [As::Anonymous, ADA, VERA] {
        assert_eq!(db.get(who, "products/live").await, 200);
        assert_eq!(db.get(who, "products/draft").await, 403, "a draft");
        assert_eq!(db.get(who, "products/gone").await, 403, "an archived product");
        assert_eq!(db.get(who, "products/live/stock/all").await, 403, "stock");
        assert_eq!(db.get(who, "vendors/vera").await, 200, "vendor profiles are public");
        assert_eq!(db.get(who, "vendor_handles/vera").await, 403, "handle claims");
        assert_eq!(db.query(who, Some("active")).await, 200, "a listing of active products");
        assert_eq!(db.query(who, Some("draft")).await, 403, "a listing of drafts");
        assert_eq!(db.query(who, None).await, 403, "an unconstrained listing");
    }
}

#[tokio::test]
async fn catalogue_writes_are_server_only() {
    let db = Db::seeded().await;
    let forged = json!({"vendor_id": "vera", "status": "active", "price_minor": -1});
    for who in [ADA, VERA] {
        assert_eq!(db.write(who, "products/live", forged.clone()).await, 403, "update");
        assert_eq!(db.write(who, "products/new", forged.clone()).await, 403, "create");
        assert_eq!(db.delete(who, "products/live").await, 403, "delete");
        assert_eq!(db.write(who, "vendors/vera", json!({"name": "X"})).await, 403, "vendor");
        assert_eq!(db.write(who, "products/live/stock/all", json!({"total": 1000})).await, 403);
    }
    assert_eq!(db.write(As::Admin, "products/live", forged).await, 200, "the server path writes");
}
