//! The JWT core shared by the Google OIDC, blocking-function and Firebase ID token verifiers,
//! and [`TokenError`], the one error type of token verification.
//!
//! The algorithm is pinned to RS256: the header's `alg` is only compared against it, never used
//! to choose how to verify (so `HS256` signed with the public key, `RS384`, `ES256` and friends
//! are refused before any key is looked at). `kid` is required. Unsigned tokens (`alg: none`,
//! empty signature) pass only when the caller allows them (Firebase Auth emulator mode, as the
//! Admin SDKs do); their claims are checked all the same.
//!
//! Claim checks, in order: `iss` in the allowed set, `aud` a string equal to the expected one,
//! `exp` not past (with leeway), `iat` not in the future (with leeway), `nbf` (if present) not
//! in the future (with leeway). The verifiers add their own checks on top.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::callable::Code;
use crate::error::PublicError;
use crate::jwks::{JwksCache, JwksError};

/// Default clock-skew allowance on `exp`, `iat`, `nbf` and `auth_time`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Longest token accepted (blocking JWTs carry the user record and IdP profile).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a token was refused. Every variant answers `UNAUTHENTICATED` except
/// [`TokenError::KeysUnavailable`], which is transient (`UNAVAILABLE`: the sender retries).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    MissingToken,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsigned token (alg none) outside Auth emulator mode")]
    UnsignedNotAllowed,
    #[error("unsupported token algorithm {0:?} (only RS256)")]
    UnsupportedAlgorithm(String),
    #[error("token header has no kid")]
    MissingKid,
    #[error("token kid does not match any known signing key")]
    UnknownKid,
    #[error("signing keys are unavailable")]
    KeysUnavailable(#[source] JwksError),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not the expected one")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is issued in the future")]
    IssuedInFuture,
    #[error("token is not yet valid (nbf)")]
    NotYetValid,
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("token claim `{0}` has the wrong type or value")]
    InvalidClaim(&'static str),
    #[error("token claims do not have the expected shape: {0}")]
    InvalidClaims(#[source] serde_json::Error),
    #[error("token subject must be a non-empty string of at most 128 characters")]
    InvalidSubject,
    #[error("token auth_time is in the future")]
    AuthTimeInFuture,
    #[error("token caller email is not allowed")]
    EmailNotAllowed,
    #[error("token caller email is not verified")]
    EmailNotVerified,
}

impl PublicError for TokenError {
    fn code(&self) -> Code {
        match self {
            TokenError::KeysUnavailable(_) => Code::Unavailable,
            _ => Code::Unauthenticated,
        }
    }

    fn public_message(&self) -> String {
        match self {
            TokenError::MissingToken | TokenError::NotBearer => "missing or malformed bearer token",
            TokenError::Expired => "token has expired",
            TokenError::KeysUnavailable(_) => {
                "token verification is temporarily unavailable; retry later"
            }
            TokenError::EmailNotAllowed | TokenError::EmailNotVerified => "caller is not allowed",
            _ => "invalid token",
        }
        .to_owned()
    }
}

impl domain::status::Retryable for TokenError {
    fn is_retryable(&self) -> bool {
        PublicError::is_retryable(self)
    }
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer_token(authorization: &str) -> Result<&str, TokenError> {
    let value = authorization.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::MissingToken);
    }
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::MissingToken);
    }
    Ok(token)
}

/// What the core checks on every token.
#[derive(Debug, Clone)]
pub(crate) struct Checks<'a> {
    pub(crate) issuers: &'a [&'a str],
    pub(crate) audience: &'a str,
    pub(crate) leeway: Duration,
    pub(crate) allow_unsigned: bool,
}

/// A token whose signature (or emulator exemption) and standard claims passed.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: Map<String, Value>,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The `iss` claim of a compact JWS, read WITHOUT verifying anything: only for routing a bearer
/// token to the verifier that owns its issuer (Google OIDC vs Firebase). Never trust it.
pub fn unverified_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let claims: Map<String, Value> = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Verifies structure, algorithm, signature and the standard claims of a compact JWS.
pub(crate) async fn verify(
    token: &str,
    keys: &JwksCache,
    checks: &Checks<'_>,
) -> Result<Verified, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("a JWT has three dot-separated parts"));
    };
    let header_bytes =
        B64.decode(header_b64).map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| TokenError::Malformed("header is not a JSON object"))?;
    let alg = header.alg.ok_or(TokenError::Malformed("header has no alg"))?;

    if alg == "none" {
        if !checks.allow_unsigned {
            return Err(TokenError::UnsignedNotAllowed);
        }
        if !signature_b64.is_empty() {
            return Err(TokenError::Malformed("an unsigned token has an empty signature"));
        }
        tracing::debug!("accepting an unsigned token (Auth emulator mode)");
    } else {
        if alg != "RS256" {
            return Err(TokenError::UnsupportedAlgorithm(alg));
        }
        let kid = header.kid.filter(|kid| !kid.is_empty()).ok_or(TokenError::MissingKid)?;
        let key = keys.key(&kid).await.map_err(|error| match error {
            JwksError::UnknownKid => TokenError::UnknownKid,
            other => TokenError::KeysUnavailable(other),
        })?;
        let signed_part = &token[..header_b64.len() + 1 + payload_b64.len()];
        let valid = jsonwebtoken::crypto::verify(
            signature_b64,
            signed_part.as_bytes(),
            &key,
            Algorithm::RS256,
        )
        .map_err(|_| TokenError::BadSignature)?;
        if !valid {
            return Err(TokenError::BadSignature);
        }
    }

    let payload =
        B64.decode(payload_b64).map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("payload is not a JSON object"))?;
    check_standard_claims(&claims, checks, chrono::Utc::now().timestamp())?;
    Ok(Verified { claims })
}

fn check_standard_claims(
    claims: &Map<String, Value>,
    checks: &Checks<'_>,
    now: i64,
) -> Result<(), TokenError> {
    let leeway = leeway_secs(checks.leeway);
    let iss = claims.get("iss").ok_or(TokenError::MissingClaim("iss"))?;
    if !iss.as_str().is_some_and(|iss| checks.issuers.contains(&iss)) {
        return Err(TokenError::WrongIssuer);
    }
    let aud = claims.get("aud").ok_or(TokenError::MissingClaim("aud"))?;
    if aud.as_str() != Some(checks.audience) {
        return Err(TokenError::WrongAudience);
    }
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now > exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    let iat = numeric_date(claims, "iat")?.ok_or(TokenError::MissingClaim("iat"))?;
    if iat > now.saturating_add(leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// A NumericDate claim (seconds; fractional values are truncated), if present.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f.trunc() as i64)
            })
            .map(Some)
            .ok_or(TokenError::InvalidClaim(name)),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

/// `sub` must be a non-empty string of at most 128 characters (Admin SDK rule).
pub(crate) fn check_subject(claims: &Map<String, Value>) -> Result<(), TokenError> {
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.chars().count() <= 128 => Ok(()),
        _ => Err(TokenError::InvalidSubject),
    }
}

/// Leeway in whole seconds.
pub(crate) fn leeway_secs(leeway: Duration) -> i64 {
    i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checks() -> Checks<'static> {
        Checks {
            issuers: &["https://accounts.google.com"],
            audience: "https://svc",
            leeway: Duration::from_secs(30),
            allow_unsigned: false,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn unverified_issuer_reads_iss_of_any_well_formed_token_only() {
        let b64 = |v: &Value| B64.encode(v.to_string());
        let token = format!("{}.{}.sig", b64(&json!({"alg": "RS256"})), b64(&json!({"iss": "x"})));
        assert_eq!(unverified_issuer(&token).as_deref(), Some("x"));
        assert_eq!(unverified_issuer("not-a-token"), None);
        assert_eq!(unverified_issuer("a.!!!.c"), None);
        let no_iss = format!("{}.{}.sig", b64(&json!({"alg": "RS256"})), b64(&json!({"sub": "x"})));
        assert_eq!(unverified_issuer(&no_iss), None);
    }

    #[test]
    fn bearer_header_values() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("bearer  abc ").unwrap(), "abc");
        assert!(matches!(bearer_token(""), Err(TokenError::MissingToken)));
        assert!(matches!(bearer_token("Bearer "), Err(TokenError::MissingToken)));
        assert!(matches!(bearer_token("Basic abc"), Err(TokenError::NotBearer)));
        assert!(matches!(bearer_token("abc"), Err(TokenError::NotBearer)));
    }

    #[test]
    fn time_claims_respect_the_leeway() {
        let now = 1_700_000_000;
        let base = |exp: i64, iat: i64| {
            claims(
                json!({"iss": "https://accounts.google.com", "aud": "https://svc", "exp": exp, "iat": iat}),
            )
        };
        assert!(check_standard_claims(&base(now + 10, now), &checks(), now).is_ok());
        assert!(check_standard_claims(&base(now - 29, now - 100), &checks(), now).is_ok());
        assert!(matches!(
            check_standard_claims(&base(now - 31, now - 100), &checks(), now),
            Err(TokenError::Expired)
        ));
        assert!(check_standard_claims(&base(now + 100, now + 29), &checks(), now).is_ok());
        assert!(matches!(
            check_standard_claims(&base(now + 100, now + 31), &checks(), now),
            Err(TokenError::IssuedInFuture)
        ));
        let mut c = base(now + 100, now);
        c.insert("nbf".into(), json!(now + 31));
        assert!(matches!(check_standard_claims(&c, &checks(), now), Err(TokenError::NotYetValid)));
        c.insert("nbf".into(), json!("soon"));
        assert!(matches!(
            check_standard_claims(&c, &checks(), now),
            Err(TokenError::InvalidClaim("nbf"))
        ));
        let c =
            claims(json!({"iss": "https://accounts.google.com", "aud": "https://svc", "iat": now}));
        assert!(matches!(
            check_standard_claims(&c, &checks(), now),
            Err(TokenError::MissingClaim("exp"))
        ));
    }

    #[test]
    fn audience_must_be_the_exact_string() {
        let now = 1_700_000_000;
        for aud in
            [json!("https://svc/"), json!(["https://svc"]), json!("https://svc.evil"), Value::Null]
        {
            let c = claims(
                json!({"iss": "https://accounts.google.com", "aud": aud, "exp": now + 10, "iat": now}),
            );
            assert!(
                matches!(check_standard_claims(&c, &checks(), now), Err(TokenError::WrongAudience)),
                "{aud}"
            );
        }
    }

    #[test]
    fn subjects() {
        assert!(check_subject(&claims(json!({"sub": "u1"}))).is_ok());
        assert!(check_subject(&claims(json!({"sub": "é".repeat(128)}))).is_ok());
        assert!(check_subject(&claims(json!({"sub": "a".repeat(129)}))).is_err());
        assert!(check_subject(&claims(json!({"sub": ""}))).is_err());
        assert!(check_subject(&claims(json!({"sub": 5}))).is_err());
        assert!(check_subject(&claims(json!({}))).is_err());
    }
}
