//! Google-signed OIDC ID tokens: the `Authorization: Bearer` of Pub/Sub push, Cloud Scheduler
//! and Eventarc deliveries (contracts 0 and 2.5).
//!
//! Checks: RS256 with `kid` against Google's keys, issuer `accounts.google.com` or
//! `https://accounts.google.com`, the exact configured audience, `email` in the allowed list
//! with `email_verified == true`, `exp`/`iat` with leeway. Unsigned tokens are never accepted
//! here, not even in emulator mode (the Pub/Sub emulator sends no token at all; skipping push
//! auth locally is the runtime's decision, not a verifier mode).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jwks::JwksCache;
use crate::token::{self, Checks, DEFAULT_LEEWAY, TokenError};

/// The issuers Google uses for its ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];

/// What a Google OIDC token must say to be accepted.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The exact `aud` (the subscription's / job's `oidcToken.audience`).
    pub audience: String,
    /// Service accounts allowed to call (compared ASCII case-insensitively). Empty: nobody.
    pub allowed_emails: Vec<String>,
    /// Clock-skew allowance on `exp` and `iat`.
    pub leeway: Duration,
}

impl OidcConfig {
    pub fn new(
        audience: impl Into<String>,
        allowed_emails: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            audience: audience.into(),
            allowed_emails: allowed_emails.into_iter().map(Into::into).collect(),
            leeway: DEFAULT_LEEWAY,
        }
    }

    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// The verified claims of a Google OIDC token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoogleClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

/// Verifies Google OIDC bearer tokens. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GoogleOidcVerifier {
    keys: JwksCache,
    config: OidcConfig,
}

impl GoogleOidcVerifier {
    /// `keys` should point at [`crate::jwks::GOOGLE_OIDC_JWKS_URL`] in production.
    pub fn new(keys: JwksCache, config: OidcConfig) -> Self {
        Self { keys, config }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Verifies the value of an `Authorization` header (`Bearer <token>`).
    pub async fn verify(&self, authorization: &str) -> Result<GoogleClaims, TokenError> {
        self.verify_token(token::bearer_token(authorization)?).await
    }

    /// Verifies a bare compact token.
    pub async fn verify_token(&self, token: &str) -> Result<GoogleClaims, TokenError> {
        let checks = Checks {
            issuers: &GOOGLE_ISSUERS,
            audience: &self.config.audience,
            leeway: self.config.leeway,
            allow_unsigned: false,
        };
        let verified = token::verify(token, &self.keys, &checks).await?;
        let claims = verified.claims;
        let email = claims
            .get("email")
            .ok_or(TokenError::MissingClaim("email"))?
            .as_str()
            .ok_or(TokenError::InvalidClaim("email"))?;
        if !self.config.allowed_emails.iter().any(|allowed| allowed.eq_ignore_ascii_case(email)) {
            return Err(TokenError::EmailNotAllowed);
        }
        if claims.get("email_verified") != Some(&serde_json::Value::Bool(true)) {
            return Err(TokenError::EmailNotVerified);
        }
        serde_json::from_value(serde_json::Value::Object(claims)).map_err(TokenError::InvalidClaims)
    }
}
