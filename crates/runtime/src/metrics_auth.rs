//! Who may read `GET /metrics` and `GET /metrics.json`: Google-signed OIDC tokens of the service
//! accounts in `HEARTH_METRICS_ALLOWED_EMAILS`, with the audience push authentication uses
//! (`HEARTH_OIDC_AUDIENCE`, the service's own URL). Health routes stay open.
//!
//! The same rule holds on every service, public or internal: Cloud Run IAM already keeps
//! strangers off internal services, but one rule is simpler to reason about and to test, and a
//! metrics scraper has to mint an identity token for internal services anyway.
//!
//! - no `Authorization`, a malformed, forged, expired or wrong-audience token: 401;
//! - a valid Google token of a service account that is not in the list (or whose email is not
//!   verified): 403;
//! - `HEARTH_METRICS_ALLOWED_EMAILS` empty: metrics are served to nobody (403), so a deploy that
//!   forgets the variable fails closed;
//! - a key-endpoint outage: 503 (retry), never a 401.
//!
//! `BaseConfig::load` refuses a non-empty list without `HEARTH_OIDC_AUDIENCE`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gcp::callable::Code;
use gcp::error::PublicError;
use gcp::jwks::JwksCache;
use gcp::oidc::{GoogleOidcVerifier, OidcConfig};
use gcp::token::TokenError;

use crate::config::BaseConfig;
use crate::error::Error;

/// The check in front of the metrics routes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MetricsAuth {
    verifier: Option<Arc<GoogleOidcVerifier>>,
}

impl MetricsAuth {
    /// From the fixed variables (validated by `BaseConfig::load`).
    pub fn from_config(config: &BaseConfig) -> Self {
        match (&config.oidc_audience, config.metrics_allowed_emails.is_empty()) {
            (Some(audience), false) => {
                let keys = JwksCache::new(config.google_oidc_jwks_url.clone());
                let oidc = OidcConfig::new(audience.clone(), config.metrics_allowed_emails.clone());
                Self::new(GoogleOidcVerifier::new(keys, oidc))
            }
            _ => Self::nobody(),
        }
    }

    /// With an explicit verifier (tests).
    pub fn new(verifier: GoogleOidcVerifier) -> Self {
        Self { verifier: Some(Arc::new(verifier)) }
    }

    /// Metrics served to nobody.
    pub fn nobody() -> Self {
        Self { verifier: None }
    }

    /// Whether anyone may read the metrics.
    pub fn is_enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Checks the request's `Authorization` header.
    pub async fn check(&self, headers: &http::HeaderMap) -> Result<(), Error> {
        let Some(verifier) = &self.verifier else {
            return Err(Error::reject(
                Code::PermissionDenied,
                "metrics are not served to any caller on this service",
            ));
        };
        let Some(header) = headers.get(http::header::AUTHORIZATION) else {
            return Err(refused(TokenError::MissingToken));
        };
        let header = header.to_str().map_err(|_| refused(TokenError::NotBearer))?;
        verifier.verify(header).await.map(drop).map_err(refused)
    }
}

/// A valid token of the wrong caller is a 403; every other refusal a 401; a key outage a retry.
fn refused(error: TokenError) -> Error {
    if error.is_retryable() {
        return Error::retry(anyhow::Error::new(error).context("verifying a metrics reader token"));
    }
    tracing::info!(error = %error, "metrics reader refused");
    match error {
        TokenError::EmailNotAllowed | TokenError::EmailNotVerified => {
            Error::reject(Code::PermissionDenied, "caller may not read metrics")
        }
        other => Error::reject(Code::Unauthenticated, other.public_message()),
    }
}

/// Route layer of the metrics routes.
pub(crate) async fn require(
    State(auth): State<MetricsAuth>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    auth.check(request.headers()).await?;
    Ok(next.run(request).await)
}
