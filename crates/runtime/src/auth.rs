//! Who is calling: axum extractors over the `gcp` verifiers, configured once from [`BaseConfig`].
//!
//! - [`GoogleCaller`]: a Google-signed OIDC token (Pub/Sub push, Cloud Scheduler, Eventarc),
//!   checked against `HEARTH_OIDC_AUDIENCE` and `HEARTH_OIDC_ALLOWED_EMAILS`. With
//!   `HEARTH_INSECURE_LOCAL_PUSH=1` (accepted only while `PUBSUB_EMULATOR_HOST` is set) the check
//!   is skipped and the claims are `None`.
//! - [`FirebaseCaller`]: a Firebase ID token of this project (unsigned ones only in Auth emulator
//!   mode).
//! - [`Caller`]: either of the two, chosen by the token's issuer (routes such as a repair
//!   endpoint that both operators and signed-in admins may call).
//!
//! The state of the router provides [`PushAuth`] / [`FirebaseAuth`] through `FromRef`.
//! Rejections are [`Error`]s, so they go through the one error mapping (problem+json, or the
//! callable shape on callable routes); a key-endpoint outage is a retry, never a 401.
//!
//! ```text
//! async fn push(GoogleCaller(_claims): GoogleCaller, body: Bytes) -> Result<StatusCode, Error> { ... }
//! ```

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use gcp::error::PublicError;
use gcp::firebase::{FirebaseUser, IdTokenConfig, IdTokenVerifier};
use gcp::jwks::JwksCache;
use gcp::oidc::{GoogleClaims, GoogleOidcVerifier, OidcConfig};
use gcp::token::{TokenError, bearer_token, unverified_issuer};
use http::HeaderMap;
use http::request::Parts;

use crate::config::{BaseConfig, ConfigError};
use crate::error::Error;

/// Verifies Google OIDC tokens on push, Scheduler and Eventarc routes.
#[derive(Debug, Clone)]
pub struct PushAuth {
    verifier: Option<Arc<GoogleOidcVerifier>>,
}

impl PushAuth {
    /// From the fixed variables; a missing audience or caller list is a start-up error naming
    /// the variable (unless insecure local push is on).
    pub fn from_config(config: &BaseConfig) -> Result<Self, ConfigError> {
        if config.insecure_local_push {
            tracing::warn!(
                "HEARTH_INSECURE_LOCAL_PUSH=1: push and scheduler requests are NOT authenticated"
            );
            return Ok(Self { verifier: None });
        }
        let audience = config.oidc_audience.clone().ok_or_else(|| {
            ConfigError::refused(
                "HEARTH_OIDC_AUDIENCE",
                "is required to verify push, Scheduler and Eventarc callers",
            )
        })?;
        if config.oidc_allowed_emails.is_empty() {
            return Err(ConfigError::refused(
                "HEARTH_OIDC_ALLOWED_EMAILS",
                "must list at least one caller service account",
            ));
        }
        let keys = JwksCache::new(config.google_oidc_jwks_url.clone());
        let oidc = OidcConfig::new(audience, config.oidc_allowed_emails.clone());
        Ok(Self::new(GoogleOidcVerifier::new(keys, oidc)))
    }

    /// With an explicit verifier (tests).
    pub fn new(verifier: GoogleOidcVerifier) -> Self {
        Self { verifier: Some(Arc::new(verifier)) }
    }

    /// No verification at all: only for the local stack and tests on the emulators.
    pub fn insecure_local() -> Self {
        Self { verifier: None }
    }

    /// Whether requests are verified.
    pub fn is_verifying(&self) -> bool {
        self.verifier.is_some()
    }

    /// Verifies the `Authorization` header; `Ok(None)` in insecure local mode.
    pub async fn verify(&self, headers: &HeaderMap) -> Result<Option<GoogleClaims>, Error> {
        let Some(verifier) = &self.verifier else { return Ok(None) };
        let header = authorization(headers)?;
        verifier.verify(header).await.map(Some).map_err(token_error)
    }
}

/// Verifies Firebase ID tokens of this project.
#[derive(Debug, Clone)]
pub struct FirebaseAuth {
    verifier: Arc<IdTokenVerifier>,
}

impl FirebaseAuth {
    /// From the fixed variables: `GOOGLE_CLOUD_PROJECT` is required; unsigned tokens are
    /// accepted only while `FIREBASE_AUTH_EMULATOR_HOST` is set.
    pub fn from_config(config: &BaseConfig) -> Result<Self, ConfigError> {
        let project = config.project_id.clone().ok_or_else(|| {
            ConfigError::refused("GOOGLE_CLOUD_PROJECT", "is required to verify Firebase ID tokens")
        })?;
        let keys = JwksCache::new(config.securetoken_jwks_url.clone());
        Ok(Self::new(IdTokenVerifier::new(
            keys,
            IdTokenConfig::new(project, config.auth_emulator()),
        )))
    }

    /// With an explicit verifier (tests).
    pub fn new(verifier: IdTokenVerifier) -> Self {
        Self { verifier: Arc::new(verifier) }
    }

    /// Verifies the `Authorization` header.
    pub async fn verify(&self, headers: &HeaderMap) -> Result<FirebaseUser, Error> {
        let header = authorization(headers)?;
        let user = self.verifier.verify(header).await.map_err(token_error)?;
        if let Some(tenant) = user.claim_str("tenant_id") {
            crate::ops::note_tenant(tenant);
        }
        Ok(user)
    }
}

/// A verified Google service-account caller (`None` claims in insecure local mode).
#[derive(Debug, Clone)]
pub struct GoogleCaller(pub Option<GoogleClaims>);

impl<S> FromRequestParts<S> for GoogleCaller
where
    S: Send + Sync,
    PushAuth: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        PushAuth::from_ref(state).verify(&parts.headers).await.map(GoogleCaller)
    }
}

/// A verified, signed-in Firebase user.
#[derive(Debug, Clone)]
pub struct FirebaseCaller(pub FirebaseUser);

impl<S> FromRequestParts<S> for FirebaseCaller
where
    S: Send + Sync,
    FirebaseAuth: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        FirebaseAuth::from_ref(state).verify(&parts.headers).await.map(FirebaseCaller)
    }
}

/// Either a Google service account (an operator, Scheduler, Pub/Sub) or a Firebase user,
/// routed by the token's issuer and then fully verified by the matching verifier.
#[derive(Debug, Clone)]
pub enum Caller {
    Google(Option<GoogleClaims>),
    Firebase(FirebaseUser),
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    PushAuth: FromRef<S>,
    FirebaseAuth: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let is_firebase = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| bearer_token(v).ok())
            .and_then(unverified_issuer)
            .is_some_and(|iss| iss.starts_with("https://securetoken.google.com/"));
        if is_firebase {
            FirebaseAuth::from_ref(state).verify(&parts.headers).await.map(Caller::Firebase)
        } else {
            PushAuth::from_ref(state).verify(&parts.headers).await.map(Caller::Google)
        }
    }
}

fn authorization(headers: &HeaderMap) -> Result<&str, Error> {
    match headers.get(http::header::AUTHORIZATION) {
        None => Err(token_error(TokenError::MissingToken)),
        Some(value) => value.to_str().map_err(|_| token_error(TokenError::NotBearer)),
    }
}

/// Token failures: a key-endpoint outage is retried; everything else is a 401 whose public
/// message never says more than the gcp crate deems safe.
fn token_error(error: TokenError) -> Error {
    if error.is_retryable() {
        return Error::retry(anyhow::Error::new(error).context("verifying a bearer token"));
    }
    tracing::info!(error = %error, "bearer token refused");
    Error::reject(error.code(), error.public_message())
}
