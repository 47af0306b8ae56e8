//! Firebase ID tokens presented by clients of the API (callables): verified into a
//! [`FirebaseUser`].
//!
//! Checks (Admin SDK `verifyIdToken`): RS256 with `kid` against the securetoken keys, issuer
//! `https://securetoken.google.com/<project>`, audience = project id, `sub` (the uid) a non-empty
//! string of at most 128 characters, `exp`/`iat` with leeway, `auth_time` present and not in the
//! future (with leeway). In Auth emulator mode unsigned tokens (`alg: none`) are accepted too,
//! with the same claim checks; RS256 tokens are still fully verified.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jwks::JwksCache;
use crate::token::{self, Checks, DEFAULT_LEEWAY, TokenError};

/// Claims of an ID token that are not custom claims.
const STANDARD_CLAIMS: [&str; 16] = [
    "iss",
    "aud",
    "sub",
    "iat",
    "exp",
    "nbf",
    "jti",
    "auth_time",
    "user_id",
    "email",
    "email_verified",
    "phone_number",
    "name",
    "picture",
    "firebase",
    "uid",
];

/// The issuer of securetoken-signed tokens for `project_id`.
pub fn securetoken_issuer(project_id: &str) -> String {
    format!("https://securetoken.google.com/{project_id}")
}

/// What an ID token must say to be accepted.
#[derive(Debug, Clone)]
pub struct IdTokenConfig {
    pub project_id: String,
    /// Accept unsigned tokens: only when `FIREBASE_AUTH_EMULATOR_HOST` is set (the runtime
    /// decides; nothing here reads the environment).
    pub auth_emulator: bool,
    pub leeway: Duration,
}

impl IdTokenConfig {
    pub fn new(project_id: impl Into<String>, auth_emulator: bool) -> Self {
        Self { project_id: project_id.into(), auth_emulator, leeway: DEFAULT_LEEWAY }
    }

    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// The caller of a client API request, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirebaseUser {
    pub uid: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone_number: Option<String>,
    pub name: Option<String>,
    /// `firebase.sign_in_provider`, e.g. `password`, `google.com`, `custom`, `anonymous`.
    pub sign_in_provider: Option<String>,
    /// `firebase.tenant`: the Identity Platform tenant (multi-tenancy), not our own tenant claim.
    pub firebase_tenant: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Custom claims (set by the blocking hook or the Admin SDK), e.g. `tenant_id`, `role`.
    pub claims: BTreeMap<String, Value>,
}

impl FirebaseUser {
    /// A custom claim as a string, e.g. `user.claim_str("role")`.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

#[derive(Deserialize)]
struct FirebaseSection {
    sign_in_provider: Option<String>,
    tenant: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    phone_number: Option<String>,
    name: Option<String>,
    firebase: Option<FirebaseSection>,
}

/// Verifies Firebase ID tokens. Cheap to clone.
#[derive(Debug, Clone)]
pub struct IdTokenVerifier {
    keys: JwksCache,
    config: IdTokenConfig,
    issuer: String,
}

impl IdTokenVerifier {
    /// `keys` should point at [`crate::jwks::SECURETOKEN_JWKS_URL`] in production.
    pub fn new(keys: JwksCache, config: IdTokenConfig) -> Self {
        let issuer = securetoken_issuer(&config.project_id);
        Self { keys, config, issuer }
    }

    /// Verifies the value of an `Authorization` header (`Bearer <token>`).
    pub async fn verify(&self, authorization: &str) -> Result<FirebaseUser, TokenError> {
        self.verify_token(token::bearer_token(authorization)?).await
    }

    /// Verifies a bare compact token.
    pub async fn verify_token(&self, token: &str) -> Result<FirebaseUser, TokenError> {
        let checks = Checks {
            issuers: &[self.issuer.as_str()],
            audience: &self.config.project_id,
            leeway: self.config.leeway,
            allow_unsigned: self.config.auth_emulator,
        };
        let verified = token::verify(token, &self.keys, &checks).await?;
        user_from_claims(verified.claims, self.config.leeway)
    }
}

fn user_from_claims(
    claims: Map<String, Value>,
    leeway: Duration,
) -> Result<FirebaseUser, TokenError> {
    token::check_subject(&claims)?;
    let auth_time =
        token::numeric_date(&claims, "auth_time")?.ok_or(TokenError::MissingClaim("auth_time"))?;
    if auth_time > Utc::now().timestamp().saturating_add(token::leeway_secs(leeway)) {
        return Err(TokenError::AuthTimeInFuture);
    }
    let iat = token::numeric_date(&claims, "iat")?.ok_or(TokenError::MissingClaim("iat"))?;
    let exp = token::numeric_date(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    let seconds =
        |s: i64, name| DateTime::<Utc>::from_timestamp(s, 0).ok_or(TokenError::InvalidClaim(name));
    let (auth_time, issued_at, expires_at) =
        (seconds(auth_time, "auth_time")?, seconds(iat, "iat")?, seconds(exp, "exp")?);

    let custom: BTreeMap<String, Value> = claims
        .iter()
        .filter(|(k, _)| !STANDARD_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let typed: IdClaims =
        serde_json::from_value(Value::Object(claims)).map_err(TokenError::InvalidClaims)?;
    let (sign_in_provider, firebase_tenant) =
        typed.firebase.map(|f| (f.sign_in_provider, f.tenant)).unwrap_or_default();
    Ok(FirebaseUser {
        uid: typed.sub,
        email: typed.email,
        email_verified: typed.email_verified,
        phone_number: typed.phone_number,
        name: typed.name,
        sign_in_provider,
        firebase_tenant,
        auth_time,
        issued_at,
        expires_at,
        claims: custom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn custom_claims_are_the_non_standard_ones() {
        let now = Utc::now().timestamp();
        let claims = json!({
            "iss": "https://securetoken.google.com/p", "aud": "p", "sub": "u1", "user_id": "u1",
            "iat": now, "exp": now + 3600, "auth_time": now - 10, "email": "a@b.c", "email_verified": true,
            "firebase": {"sign_in_provider": "password", "identities": {}},
            "tenant_id": "t1", "role": "owner"
        });
        let user = user_from_claims(claims.as_object().unwrap().clone(), DEFAULT_LEEWAY).unwrap();
        assert_eq!(user.uid, "u1");
        assert_eq!(user.sign_in_provider.as_deref(), Some("password"));
        assert_eq!(user.claim_str("tenant_id"), Some("t1"));
        assert_eq!(user.claim_str("role"), Some("owner"));
        assert_eq!(user.claims.len(), 2);
    }

    #[test]
    fn auth_time_is_required_and_not_in_the_future() {
        let now = Utc::now().timestamp();
        let base = json!({"sub": "u1", "iat": now, "exp": now + 3600});
        let mut c = base.as_object().unwrap().clone();
        assert!(matches!(
            user_from_claims(c.clone(), DEFAULT_LEEWAY),
            Err(TokenError::MissingClaim("auth_time"))
        ));
        c.insert("auth_time".into(), json!(now + 120));
        assert!(matches!(user_from_claims(c, DEFAULT_LEEWAY), Err(TokenError::AuthTimeInFuture)));
    }
}
