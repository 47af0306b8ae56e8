//! `firestore.rules` evaluated for real: a Firestore emulator started with the repository's
//! rules, seeded through the admin path (`Bearer owner`), then probed over REST with unsigned
//! ID tokens carrying chosen claims (as the Firebase emulators accept them). Every rule is shown
//! both allowing what it should and denying what it must.

use serde_json::{Value, json};
use testkit::rules::{commit_body, emulator};

struct Db {
    host: &'static str,
    project: String,
    http: reqwest::Client,
}

/// Who makes a request.
#[derive(Clone)]
enum As {
    Admin,
    Anonymous,
    User { uid: &'static str, tenant: &'static str, role: &'static str },
}

impl As {
    fn user(uid: &'static str, tenant: &'static str, role: &'static str) -> As {
        As::User { uid, tenant, role }
    }
}

impl Db {
    async fn new() -> Db {
        Db {
            host: emulator().await,
            project: testkit::project_id(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    fn bearer(&self, who: &As) -> Option<String> {
        match who {
            As::Admin => Some("owner".to_owned()),
            As::Anonymous => None,
            As::User { uid, tenant, role } => {
                let mut claims = testkit::tokens::firebase_id_claims(&self.project, uid);
                claims["tenant_id"] = json!(tenant);
                claims["role"] = json!(role);
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

    async fn send(&self, who: &As, req: reqwest::RequestBuilder) -> (u16, String) {
        let req = match self.bearer(who) {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn get(&self, who: &As, path: &str) -> u16 {
        self.send(who, self.http.get(self.doc_url(path))).await.0
    }

    async fn delete(&self, who: &As, path: &str) -> u16 {
        self.send(who, self.http.delete(self.doc_url(path))).await.0
    }

    /// A commit with one write: `update` of the given fields (mask = those fields when
    /// `merge`), optional server-timestamp transforms.
    async fn write(
        &self,
        who: &As,
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
        assert_eq!(self.write(&As::Admin, path, data, false, &[]).await, 200, "seeding {path}");
    }

    /// The documents of one provisioned user in tenant `t1`, plus a second tenant `t2`.
    async fn seeded() -> Db {
        let db = Db::new().await;
        db.seed(
            "tenants/t1",
            json!({"name": "Tenant one", "owner_uid": "alice", "plan": "free", "status": "active"}),
        )
        .await;
        db.seed(
            "tenants/t2",
            json!({"name": "Tenant two", "owner_uid": "carol", "plan": "free", "status": "active"}),
        )
        .await;
        db.seed("tenants/t1/users/alice", json!({"role": "owner", "email": "alice@example.com"}))
            .await;
        db.seed("tenants/t1/users/bob", json!({"role": "member", "email": "bob@example.com"}))
            .await;
        db.seed("tenants/t2/users/carol", json!({"role": "owner"})).await;
        db.seed(
            "users/alice",
            json!({"email": "alice@example.com", "tenant_id": "t1", "onboarded": true}),
        )
        .await;
        db.seed(
            "users/alice/secrets/alpaca",
            json!({"configured": false, "base_url": "https://paper-api.alpaca.markets"}),
        )
        .await;
        db.seed("users/alice/alpacaAccounts/snapshot", json!({"configured": false, "equity": "0"}))
            .await;
        db.seed(
            "users/alice/status/trading",
            json!({"enabled": false, "mode": "safe", "reason": "New user"}),
        )
        .await;
        db.seed(
            "users/alice/config/preferences",
            json!({"theme": "dark", "risk_tolerance": "moderate", "default_allocation": 0.1, "max_positions": 5}),
        )
        .await;
        db.seed("users/alice/shadowTradeHistory/s1", json!({"uid": "alice", "status": "OPEN"}))
            .await;
        db.seed("tenants/t1/ledger_trades/l1", json!({"uid": "alice", "symbol": "AAPL"})).await;
        db
    }
}

const ALICE: As = As::User { uid: "alice", tenant: "t1", role: "owner" };
const BOB: As = As::User { uid: "bob", tenant: "t1", role: "member" };
const CAROL: As = As::User { uid: "carol", tenant: "t2", role: "owner" };

#[tokio::test]
async fn owners_read_their_own_user_subtree_and_nobody_elses() {
    let db = Db::seeded().await;
    for path in [
        "users/alice",
        "users/alice/alpacaAccounts/snapshot",
        "users/alice/status/trading",
        "users/alice/config/preferences",
        "users/alice/shadowTradeHistory/s1",
    ] {
        assert_eq!(db.get(&ALICE, path).await, 200, "alice reads {path}");
        assert_eq!(db.get(&BOB, path).await, 403, "bob reads {path}");
        assert_eq!(db.get(&As::Anonymous, path).await, 403, "anonymous reads {path}");
    }
}

#[tokio::test]
async fn secrets_are_never_readable_or_writable_by_clients() {
    let db = Db::seeded().await;
    assert_eq!(db.get(&ALICE, "users/alice/secrets/alpaca").await, 403);
    let write = db
        .write(&ALICE, "users/alice/secrets/alpaca", json!({"configured": true}), true, &[])
        .await;
    assert_eq!(write, 403);
    assert_eq!(db.get(&As::Admin, "users/alice/secrets/alpaca").await, 200, "the server still can");
}

#[tokio::test]
async fn tenant_members_read_their_tenant_only() {
    let db = Db::seeded().await;
    assert_eq!(db.get(&ALICE, "tenants/t1").await, 200);
    assert_eq!(db.get(&BOB, "tenants/t1/users/alice").await, 200);
    assert_eq!(db.get(&ALICE, "tenants/t2").await, 403, "cross-tenant read");
    assert_eq!(db.get(&CAROL, "tenants/t1/users/alice").await, 403, "cross-tenant membership read");
    assert_eq!(
        db.get(&CAROL, "tenants/t1/ledger_trades/l1").await,
        403,
        "cross-tenant ledger read"
    );
    let forged_tenant = As::user("carol", "t1", "owner");
    assert_eq!(
        db.write(&forged_tenant, "tenants/t1", json!({"plan": "enterprise"}), true, &[]).await,
        403,
        "tenant documents are server-written"
    );
}

#[tokio::test]
async fn trading_leaves_safe_mode_only_by_its_owner_with_allowed_fields() {
    let db = Db::seeded().await;
    let path = "users/alice/status/trading";
    let enable = json!({"enabled": true, "mode": "paper", "reason": "ready"});
    assert_eq!(db.write(&BOB, path, enable.clone(), true, &[]).await, 403, "someone else");
    let unsafe_safe = json!({"enabled": true, "mode": "safe", "reason": "x"});
    assert_eq!(
        db.write(&ALICE, path, unsafe_safe, true, &[]).await,
        403,
        "safe mode must stay disabled"
    );
    let extra = json!({"enabled": true, "mode": "paper", "reason": "x", "limit": 1_000_000});
    assert_eq!(
        db.write(&ALICE, path, extra, true, &[]).await,
        403,
        "fields outside the allowed set"
    );
    let bad_mode = json!({"enabled": true, "mode": "yolo", "reason": "x"});
    assert_eq!(db.write(&ALICE, path, bad_mode, true, &[]).await, 403, "unknown mode");
    assert_eq!(
        db.write(&ALICE, path, enable, true, &["updated_at"]).await,
        200,
        "the owner switches to paper"
    );
    assert_eq!(db.delete(&ALICE, path).await, 403);
}

#[tokio::test]
async fn preferences_accept_only_valid_values() {
    let db = Db::seeded().await;
    let path = "users/alice/config/preferences";
    let ok = json!({"theme": "light", "risk_tolerance": "aggressive", "default_allocation": 0.25, "max_positions": 10});
    assert_eq!(db.write(&ALICE, path, ok, true, &[]).await, 200);
    let too_much = json!({"theme": "light", "risk_tolerance": "aggressive", "default_allocation": 1.5, "max_positions": 10});
    assert_eq!(db.write(&ALICE, path, too_much, true, &[]).await, 403);
    let bad_theme = json!({"theme": "neon", "risk_tolerance": "moderate", "default_allocation": 0.1, "max_positions": 5});
    assert_eq!(db.write(&ALICE, path, bad_theme, true, &[]).await, 403);
}

#[tokio::test]
async fn the_ledger_is_append_only_with_validated_creates() {
    let db = Db::seeded().await;
    let trade = json!({"uid": "bob", "strategy_id": "s1", "symbol": "AAPL", "side": "buy", "qty": 3, "price": 101.5});
    assert_eq!(
        db.write(&BOB, "tenants/t1/ledger_trades/b1", trade.clone(), false, &["ts"]).await,
        200
    );
    assert_eq!(db.get(&ALICE, "tenants/t1/ledger_trades/b1").await, 200, "tenant members read it");
    assert_eq!(
        db.write(&BOB, "tenants/t1/ledger_trades/b1", json!({"qty": 300}), true, &[]).await,
        403,
        "no updates"
    );
    assert_eq!(db.delete(&BOB, "tenants/t1/ledger_trades/b1").await, 403, "no deletes");
    let mut as_alice = trade.clone();
    as_alice["uid"] = json!("alice");
    assert_eq!(
        db.write(&BOB, "tenants/t1/ledger_trades/b2", as_alice, false, &["ts"]).await,
        403,
        "uid spoofing"
    );
    let mut bad_side = trade.clone();
    bad_side["side"] = json!("short");
    assert_eq!(db.write(&BOB, "tenants/t1/ledger_trades/b3", bad_side, false, &["ts"]).await, 403);
    assert_eq!(
        db.write(&BOB, "tenants/t1/ledger_trades/b4", trade.clone(), false, &[]).await,
        403,
        "ts must be server time"
    );
    assert_eq!(
        db.write(&CAROL, "tenants/t1/ledger_trades/c1", trade, false, &["ts"]).await,
        403,
        "other tenant"
    );
}

#[tokio::test]
async fn shadow_trades_are_never_deleted() {
    let db = Db::seeded().await;
    let path = "users/alice/shadowTradeHistory/s1";
    assert_eq!(
        db.write(&ALICE, path, json!({"uid": "alice", "status": "CLOSED"}), false, &[]).await,
        200
    );
    assert_eq!(db.delete(&ALICE, path).await, 403);
    assert_eq!(
        db.write(&ALICE, "users/alice/shadowTradeHistory/s2", json!({"uid": "bob"}), false, &[])
            .await,
        403
    );
}

#[tokio::test]
async fn a_forged_role_claim_grants_nothing_without_a_matching_membership() {
    let db = Db::seeded().await;
    let strategy = json!({"name": "momentum"});
    let forged_admin = As::user("bob", "t1", "admin"); // membership says member
    assert_eq!(
        db.write(&forged_admin, "tenants/t1/strategies/x", strategy.clone(), false, &[]).await,
        403
    );
    assert_eq!(db.write(&BOB, "tenants/t1/strategies/x", strategy.clone(), false, &[]).await, 403);
    // Not even the tenant's owner writes a strategy directly: only the api's saveStrategy does,
    // after validating it.
    assert_eq!(
        db.write(&ALICE, "tenants/t1/strategies/x", strategy.clone(), false, &[]).await,
        403
    );
    db.seed("tenants/t1/strategies/x", strategy.clone()).await;
    let removed = As::user("dave", "t1", "owner"); // no membership document at all
    assert_eq!(db.write(&removed, "tenants/t1/strategies/y", strategy, false, &[]).await, 403);
    assert_eq!(db.get(&BOB, "tenants/t1/strategies/x").await, 200, "members read strategies");
}

#[tokio::test]
async fn unknown_collections_are_server_only() {
    let db = Db::seeded().await;
    db.seed("idempotency/k1", json!({"state": "done"})).await;
    assert_eq!(db.get(&ALICE, "idempotency/k1").await, 403);
    assert_eq!(db.write(&ALICE, "dead_letters/x", json!({"a": 1}), false, &[]).await, 403);
}

#[tokio::test]
async fn a_removed_member_or_a_suspended_tenant_loses_access_whatever_the_token_says() {
    let db = Db::seeded().await;
    let trade = json!({
        "uid": "bob", "strategy_id": "s1", "symbol": "AAPL", "side": "buy", "qty": 1, "price": 10
    });
    db.seed("tenants/t1/strategies/s1", json!({"name": "momentum"})).await;
    // Bob's ID token still says t1 (claims change only when the token is refreshed), but his
    // membership was deleted.
    assert_eq!(db.get(&BOB, "tenants/t1").await, 200, "a member reads his tenant");
    assert_eq!(db.delete(&As::Admin, "tenants/t1/users/bob").await, 200);
    for path in [
        "tenants/t1",
        "tenants/t1/users/alice",
        "tenants/t1/ledger_trades/l1",
        "tenants/t1/strategies/s1",
    ] {
        assert_eq!(db.get(&BOB, path).await, 403, "removed member reads {path}");
    }
    assert_eq!(
        db.write(&BOB, "tenants/t1/ledger_trades/r1", trade, false, &["ts"]).await,
        403,
        "removed member appends a trade"
    );

    // A suspended tenant: even its owner, with a valid membership, is locked out.
    assert_eq!(db.get(&ALICE, "tenants/t1/strategies/s1").await, 200);
    db.seed(
        "tenants/t1",
        json!({"name": "Tenant one", "owner_uid": "alice", "plan": "free", "status": "suspended"}),
    )
    .await;
    let alice_trade = json!({
        "uid": "alice", "strategy_id": "s1", "symbol": "AAPL", "side": "buy", "qty": 1, "price": 10
    });
    for path in [
        "tenants/t1",
        "tenants/t1/users/alice",
        "tenants/t1/ledger_trades/l1",
        "tenants/t1/strategies/s1",
    ] {
        assert_eq!(db.get(&ALICE, path).await, 403, "suspended tenant: {path}");
    }
    assert_eq!(
        db.write(&ALICE, "tenants/t1/ledger_trades/a1", alice_trade, false, &["ts"]).await,
        403
    );
    assert_eq!(
        db.write(&ALICE, "tenants/t1/strategies/s2", json!({"name": "x"}), false, &[]).await,
        403
    );
    // Another tenant is unaffected.
    assert_eq!(db.get(&CAROL, "tenants/t2").await, 200);
}
