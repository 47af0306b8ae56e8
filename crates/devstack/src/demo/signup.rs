//! Stage 1: sign-up and onboarding. Sign-up through the Auth emulator -> the blocking hook
//! assigns tenant and role claims -> sign-in passes the beforeSignIn hook -> devstack pushes the
//! `user-signups` message to onboarding -> all seven documents exist with exactly the planned
//! fields. Also the sign-up the later stages use for their second user (the vendor).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::onboarding::{ALPACA_PAPER_BASE_URL, DocKind};
use gcp::firestore::Value as DocValue;
use serde_json::{Value, json};

use super::{Ctx, DemoReport, read_doc};

/// A user signed up (and in) through the Auth emulator.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub uid: String,
    pub email: String,
    /// The ID token of the latest sign-in (unsigned: the Auth emulator's).
    pub id_token: String,
}

/// What one field must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Is(DocValue),
    /// A server timestamp.
    Timestamp,
    /// A map whose own fields are checked the same way.
    Map(Vec<(&'static str, Expect)>),
    /// An array holding exactly these strings, in any order.
    StringSet(Vec<String>),
}

fn s(v: &str) -> Expect {
    Expect::Is(DocValue::String(v.to_owned()))
}

fn b(v: bool) -> Expect {
    Expect::Is(DocValue::Boolean(v))
}

/// Checks that `actual` has exactly the expected fields with the expected values.
pub fn check_fields(
    actual: &BTreeMap<String, DocValue>,
    expected: &[(&str, Expect)],
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, want) in expected {
        let got = actual.get(*name);
        let ok = match (want, got) {
            (_, None) => {
                problems.push(format!("`{name}` is missing"));
                continue;
            }
            (Expect::Is(v), Some(g)) => v == g,
            (Expect::Timestamp, Some(g)) => matches!(g, DocValue::Timestamp(_)),
            (Expect::Map(fields), Some(DocValue::Map(m))) => match check_fields(m, fields) {
                Ok(()) => true,
                Err(e) => {
                    problems.push(format!("`{name}`: {e}"));
                    continue;
                }
            },
            (Expect::StringSet(want), Some(DocValue::Array(items))) => {
                let mut got: Vec<String> = items
                    .iter()
                    .filter_map(
                        |i| if let DocValue::String(s) = i { Some(s.clone()) } else { None },
                    )
                    .collect();
                let mut want = want.clone();
                got.sort();
                want.sort();
                got == want && items.len() == want.len()
            }
            (_, Some(_)) => false,
        };
        if !ok {
            problems.push(format!("`{name}` is {got:?}, expected {want:?}"));
        }
    }
    for name in actual.keys() {
        if !expected.iter().any(|(n, _)| n == name) {
            problems.push(format!("unexpected field `{name}`"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// A document kind, its path, and its exact fields.
pub type ExpectedDoc = (DocKind, String, Vec<(&'static str, Expect)>);

/// The seven documents of a new personal-tenant user, with their exact fields
/// (`domain::onboarding::plan` seen from the outside).
pub fn expected_documents(uid: &str, email: &str, tenant_id: &str) -> Vec<ExpectedDoc> {
    let local = email.split('@').next().unwrap_or_default();
    let all_kinds: Vec<String> = DocKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
    let path = |kind| {
        let req = domain::onboarding::ProvisionRequest {
            uid: uid.to_owned(),
            email: Some(email.to_owned()),
            tenant_id: tenant_id.to_owned(),
            role: domain::tenancy::Role::Owner,
            tenant_is_new: true,
        };
        store::onboarding::doc_path(kind, &req).map(|p| p.relative()).unwrap_or_default()
    };
    vec![
        (
            DocKind::Tenant,
            path(DocKind::Tenant),
            vec![
                ("name", s(&format!("{local}'s workspace"))),
                ("owner_uid", s(uid)),
                ("plan", s("free")),
                ("status", s("active")),
                ("created_at", Expect::Timestamp),
            ],
        ),
        (
            DocKind::Membership,
            path(DocKind::Membership),
            vec![
                ("role", s("owner")),
                ("email", s(email)),
                ("onboarded", b(true)),
                ("joined_at", Expect::Timestamp),
            ],
        ),
        (
            DocKind::UserRoot,
            path(DocKind::UserRoot),
            vec![
                ("email", s(email)),
                ("tenant_id", s(tenant_id)),
                ("onboarded", b(true)),
                ("created_at", Expect::Timestamp),
                (
                    "onboarding",
                    Expect::Map(vec![
                        ("state", s("complete")),
                        (
                            "plan_version",
                            Expect::Is(DocValue::Integer(i64::from(
                                domain::onboarding::PLAN_VERSION,
                            ))),
                        ),
                        ("created", Expect::StringSet(all_kinds)),
                        ("completed_at", Expect::Timestamp),
                    ]),
                ),
            ],
        ),
        (
            DocKind::AlpacaSecrets,
            path(DocKind::AlpacaSecrets),
            vec![
                ("configured", b(false)),
                ("base_url", s(ALPACA_PAPER_BASE_URL)),
                ("created_at", Expect::Timestamp),
            ],
        ),
        (
            DocKind::AccountSnapshot,
            path(DocKind::AccountSnapshot),
            vec![("configured", b(false)), ("equity", s("0")), ("updated_at", Expect::Timestamp)],
        ),
        (
            DocKind::TradingStatus,
            path(DocKind::TradingStatus),
            vec![
                ("enabled", b(false)),
                ("mode", s("safe")),
                ("reason", s("New user onboarding - enable trading in Settings")),
                ("updated_at", Expect::Timestamp),
            ],
        ),
        (
            DocKind::Preferences,
            path(DocKind::Preferences),
            vec![
                ("theme", s("dark")),
                ("risk_tolerance", s("moderate")),
                ("default_allocation", Expect::Is(DocValue::Double(0.1))),
                ("max_positions", Expect::Is(DocValue::Integer(5))),
                ("updated_at", Expect::Timestamp),
            ],
        ),
    ]
}

/// The claims part of a JWT, unverified (the Auth emulator's ID tokens are unsigned).
pub fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

async fn identity_call(ctx: &Ctx, method: &str, body: &Value) -> Result<Value, String> {
    let url = format!(
        "http://{}/identitytoolkit.googleapis.com/v1/accounts:{method}?key=devstack",
        ctx.target.emulators.auth
    );
    let response = ctx
        .http
        .post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("Auth emulator unreachable: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))
}

fn check_claims(token: &str, tenant_id: &str) -> Result<String, String> {
    let claims = jwt_claims(token).ok_or("the ID token does not decode")?;
    let (tenant, role) = (&claims["tenant_id"], &claims["role"]);
    if tenant == tenant_id && role == "owner" {
        Ok(format!("tenant_id={tenant_id}, role=owner"))
    } else {
        Err(format!(
            "claims tenant_id={tenant}, role={role}; expected tenant_id={tenant_id}, role=owner"
        ))
    }
}

/// Signs up a new user `email` through the Auth emulator (the Auth emulator calls the
/// beforeCreate hook first), recorded as `step`.
pub async fn sign_up(
    ctx: &Ctx,
    report: &mut DemoReport,
    step: &str,
    email: &str,
    password: &str,
) -> Option<SignedUp> {
    let t = Instant::now();
    let signup = identity_call(
        ctx,
        "signUp",
        &json!({"email": email, "password": password, "returnSecureToken": true}),
    )
    .await;
    let (uid, id_token) = match &signup {
        Ok(v) => (
            v["localId"].as_str().unwrap_or_default().to_owned(),
            v["idToken"].as_str().unwrap_or_default().to_owned(),
        ),
        Err(_) => (String::new(), String::new()),
    };
    let ok = report.record(
        step,
        t,
        signup.and_then(|_| {
            if uid.is_empty() || id_token.is_empty() {
                Err("no localId or idToken in the answer".to_owned())
            } else {
                Ok(format!("uid {uid}, {email}"))
            }
        }),
    );
    ok.then(|| SignedUp { uid, email: email.to_owned(), id_token })
}

/// Runs the stage; returns the signed-in, provisioned user, or `None` when the later stages
/// cannot run (no user, or no ID token).
pub async fn run(ctx: &Ctx, report: &mut DemoReport) -> Option<SignedUp> {
    let email = format!("demo-{}@example.com", ctx.suffix);
    let password = format!("pw-{}-Demo!", ctx.suffix);

    // 1. Sign up: the Auth emulator calls beforeCreate on the hook before creating the user.
    let user = sign_up(
        ctx,
        report,
        "sign up through the Auth emulator (beforeCreate hook)",
        &email,
        &password,
    )
    .await?;
    let uid = user.uid.clone();
    let id_token = user.id_token.clone();
    let tenant_id = domain::tenancy::personal_tenant_id(&uid);

    // 2. The hook's claims are in the ID token.
    let t = Instant::now();
    report.record(
        "the ID token carries the hook's tenant and role claims",
        t,
        check_claims(&id_token, &tenant_id),
    );

    // 3. Sign in: beforeSignIn lets the member in and keeps the claims.
    let t = Instant::now();
    let signin = identity_call(
        ctx,
        "signInWithPassword",
        &json!({"email": email, "password": password, "returnSecureToken": true}),
    )
    .await;
    let signed_in_token = signin
        .as_ref()
        .ok()
        .and_then(|v| v["idToken"].as_str())
        .map(str::to_owned)
        .unwrap_or(id_token);
    report.record(
        "sign in (beforeSignIn hook) keeps the claims",
        t,
        signin.and_then(|v| check_claims(v["idToken"].as_str().unwrap_or_default(), &tenant_id)),
    );

    // 4. devstack pushes the user-signups message to onboarding, which provisions seven documents.
    let db = &ctx.db;
    let expected = expected_documents(&uid, &email, &tenant_id);
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut found: BTreeMap<DocKind, BTreeMap<String, DocValue>> = BTreeMap::new();
    let mut last_error = None;
    while found.len() < expected.len() && Instant::now() < deadline {
        for (kind, path, _) in &expected {
            if found.contains_key(kind) {
                continue;
            }
            match read_doc(db, path).await {
                Ok(Some(fields)) => {
                    found.insert(*kind, fields);
                }
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
        }
        // The user root is written last in the same commit; wait for its onboarding state.
        if found.len() < expected.len() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let missing: Vec<&str> = expected
        .iter()
        .filter(|(k, _, _)| !found.contains_key(k))
        .map(|(k, _, _)| k.as_str())
        .collect();
    report.record(
        "user-signups delivered to onboarding: all seven documents exist",
        t,
        if missing.is_empty() {
            Ok(format!("{} documents", found.len()))
        } else {
            Err(format!(
                "missing after 45 s: {}{}",
                missing.join(", "),
                last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default()
            ))
        },
    );
    for (kind, path, fields) in &expected {
        let t = Instant::now();
        let result = match found.get(kind) {
            None => Err("not provisioned".to_owned()),
            Some(actual) => {
                check_fields(actual, fields).map(|()| format!("{} fields as planned", fields.len()))
            }
        };
        report.record(&format!("{path} has exactly the planned fields"), t, result);
    }
    Some(SignedUp { id_token: signed_in_token, ..user })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_checks_are_exact() {
        let actual: BTreeMap<String, DocValue> = [
            ("a".to_owned(), DocValue::String("x".into())),
            ("t".to_owned(), DocValue::Timestamp(chrono::Utc::now())),
            (
                "m".to_owned(),
                DocValue::Map([("n".to_owned(), DocValue::Integer(1))].into_iter().collect()),
            ),
            (
                "l".to_owned(),
                DocValue::Array(vec![DocValue::String("q".into()), DocValue::String("p".into())]),
            ),
        ]
        .into_iter()
        .collect();
        let good = vec![
            ("a", s("x")),
            ("t", Expect::Timestamp),
            ("m", Expect::Map(vec![("n", Expect::Is(DocValue::Integer(1)))])),
            ("l", Expect::StringSet(vec!["p".into(), "q".into()])),
        ];
        assert_eq!(check_fields(&actual, &good), Ok(()));
        let wrong = vec![
            ("a", s("y")),
            ("t", s("now")),
            ("m", Expect::Map(vec![])),
            ("l", Expect::StringSet(vec!["p".into()])),
            ("z", b(true)),
        ];
        let err = check_fields(&actual, &wrong).unwrap_err();
        for needle in ["`a` is", "`t` is", "unexpected field `n`", "`l` is", "`z` is missing"] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
        let err = check_fields(&actual, &good[..3]).unwrap_err();
        assert!(err.contains("unexpected field `l`"), "{err}");
    }

    #[test]
    fn expected_documents_cover_every_planned_kind_at_store_paths() {
        let docs = expected_documents("u1", "ann@example.com", "personal-x");
        let kinds: Vec<DocKind> = docs.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(kinds, DocKind::ALL);
        assert_eq!(docs[0].1, "tenants/personal-x");
        assert_eq!(docs[1].1, "tenants/personal-x/users/u1");
        assert_eq!(docs[6].1, "users/u1/config/preferences");
        // The planned values are the domain's.
        let planned = domain::onboarding::plan(&domain::onboarding::ProvisionRequest {
            uid: "u1".into(),
            email: Some("ann@example.com".into()),
            tenant_id: "personal-x".into(),
            role: domain::tenancy::Role::Owner,
            tenant_is_new: true,
        });
        assert_eq!(planned[0].fields["name"], "ann's workspace");
    }

    #[test]
    fn jwt_claims_decode_the_payload() {
        let token = testkit::tokens::unsigned(&json!({"tenant_id": "t", "role": "owner"}));
        assert_eq!(jwt_claims(&token).unwrap()["role"], "owner");
        assert_eq!(check_claims(&token, "t"), Ok("tenant_id=t, role=owner".into()));
        assert!(check_claims(&token, "other").is_err());
        assert!(jwt_claims("garbage").is_none());
    }
}
