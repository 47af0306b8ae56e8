//! `registerDevice` / `unregisterDevice`: tokens per user, refreshed, capped, and the attacks
//! on them (no token, malformed and oversized data, unknown fields, another user's devices).

use std::collections::HashMap;

use runtime::Env;
use serde_json::{Value, json};
use store::Db;
use store::notify::Notifications;
use testkit::jwks::JwksServer;
use testkit::{TestApp, keys, tokens};

struct Harness {
    app: TestApp,
    db: Db,
    project: String,
    _jwks: JwksServer,
}

impl Harness {
    async fn start() -> Self {
        let firestore = testkit::emulators::firestore().await;
        let project = testkit::project_id();
        let jwks = JwksServer::start(&[keys::primary()], 300).await;
        let jwks_url = jwks.url();
        let vars: HashMap<String, String> = [
            ("GOOGLE_CLOUD_PROJECT", project.as_str()),
            ("FIRESTORE_EMULATOR_HOST", firestore),
            ("HEARTH_SECURETOKEN_JWKS_URL", jwks_url.as_str()),
            ("HEARTH_LOG_FORMAT", "pretty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let built = api::build("api", &Env::from_map(vars)).await.expect("api");
        let db = built.state.db.clone();
        Self { app: testkit::spawn_app(built.router).await, db, project, _jwks: jwks }
    }

    async fn call(&self, uid: Option<&str>, name: &str, data: Value) -> (u16, Value) {
        let mut request =
            self.app.client.post(self.app.url(&format!("/{name}"))).json(&json!({"data": data}));
        if let Some(uid) = uid {
            let mut claims = tokens::firebase_id_claims(&self.project, uid);
            claims["tenant_id"] = json!(domain::tenancy::personal_tenant_id(uid));
            claims["role"] = json!("owner");
            request = request.bearer_auth(tokens::sign(&claims, keys::primary()));
        }
        let res = request.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn tokens(&self, uid: &str) -> Vec<String> {
        Notifications::new(&self.db)
            .devices(uid)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.token)
            .collect()
    }
}

fn register(device: &str, token: &str) -> Value {
    json!({"deviceId": device, "token": token, "platform": "android"})
}

#[tokio::test]
async fn devices_are_registered_refreshed_capped_and_removed() {
    let h = Harness::start().await;
    let (status, body) = h.call(Some("u1"), "registerDevice", register("phone", "tok-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["devices"], 1);
    // The same call again: nothing more. A refreshed token replaces the old one.
    assert_eq!(
        h.call(Some("u1"), "registerDevice", register("phone", "tok-1")).await.1["result"]["devices"],
        1
    );
    h.call(Some("u1"), "registerDevice", register("phone", "tok-1b")).await;
    assert_eq!(h.tokens("u1").await, ["tok-1b"]);
    // At most ten: the eleventh device pushes out the least recently seen.
    for n in 0..10 {
        let (status, _) = h
            .call(Some("u1"), "registerDevice", register(&format!("d{n}"), &format!("t{n}")))
            .await;
        assert_eq!(status, 200);
    }
    let tokens = h.tokens("u1").await;
    assert_eq!(tokens.len(), 10);
    assert!(!tokens.contains(&"tok-1b".to_owned()), "{tokens:?}");
    let (status, body) = h.call(Some("u1"), "unregisterDevice", json!({"deviceId": "d9"})).await;
    assert_eq!((status, body["result"]["devices"].clone()), (200, json!(9)));
    assert!(!h.tokens("u1").await.contains(&"t9".to_owned()));
}

#[tokio::test]
async fn device_calls_refuse_strangers_and_bad_data() {
    let h = Harness::start().await;
    assert_eq!(h.call(None, "registerDevice", register("phone", "tok-1")).await.0, 401);
    for bad in [
        json!({"deviceId": "phone", "token": "", "platform": "android"}),
        json!({"deviceId": "phone", "token": "has space", "platform": "android"}),
        json!({"deviceId": "phone", "token": "x".repeat(5000), "platform": "android"}),
        json!({"deviceId": "", "token": "tok", "platform": "android"}),
        json!({"deviceId": "phone", "token": "tok", "platform": "blackberry"}),
        json!({"deviceId": "phone", "token": "tok", "platform": "android", "uid": "u2"}),
        json!("not an object"),
    ] {
        let (status, body) = h.call(Some("u1"), "registerDevice", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // Nobody reaches another user's devices: the uid is the caller's, never the data's.
    h.call(Some("u2"), "registerDevice", register("phone", "tok-u2")).await;
    h.call(Some("u1"), "unregisterDevice", json!({"deviceId": "phone"})).await;
    assert_eq!(h.tokens("u2").await, ["tok-u2"]);
    assert!(h.tokens("u1").await.is_empty());
}
