//! The Identity Toolkit admin API (Firebase Auth / Identity Platform), as far as session
//! revocation needs it: `accounts:lookup` to read a user's custom claims, and `accounts:update`
//! with `validSince` (UTC seconds: refresh tokens and ID tokens issued before it stop being
//! accepted) and `customAttributes` (the custom claims, as a JSON string; `"{}"` clears them).
//!
//! In production the calls go to `https://identitytoolkit.googleapis.com` with an OAuth2 access
//! token of the service account (Application Default Credentials, scope `cloud-platform`).
//! Against the Auth emulator they go to
//! `http://{host}/identitytoolkit.googleapis.com` with `Authorization: Bearer owner`, which the
//! emulator treats as a privileged (admin) request. Nothing here reads the environment: the
//! caller says which.

use std::time::Duration;

use google_cloud_auth::credentials::{AccessTokenCredentials, Builder};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The production endpoint.
pub const PRODUCTION_BASE: &str = "https://identitytoolkit.googleapis.com";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolkitError {
    /// No credentials, or they could not produce a token (retryable: the metadata server may be
    /// briefly unavailable).
    #[error("no access token for the Identity Toolkit API: {0}")]
    Credentials(String),
    /// The request did not complete (network, timeout).
    #[error("the Identity Toolkit API is unreachable: {0}")]
    Unreachable(String),
    /// The API answered an error.
    #[error("the Identity Toolkit API answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error message (`USER_NOT_FOUND`, `INVALID_CLAIMS`, ...).
        message: String,
    },
}

impl ToolkitError {
    /// Worth retrying later (5xx, 429, network, credentials).
    pub fn is_retryable(&self) -> bool {
        match self {
            ToolkitError::Credentials(_) | ToolkitError::Unreachable(_) => true,
            ToolkitError::Api { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

impl domain::status::Retryable for ToolkitError {
    fn is_retryable(&self) -> bool {
        ToolkitError::is_retryable(self)
    }
}

#[derive(Clone)]
enum Auth {
    /// The Auth emulator: `Bearer owner`.
    Emulator,
    /// Application Default Credentials.
    Adc(AccessTokenCredentials),
}

/// A client of one project's accounts. Cheap to clone.
#[derive(Clone)]
pub struct IdentityToolkit {
    http: reqwest::Client,
    base: String,
    project: String,
    auth: Auth,
}

impl std::fmt::Debug for IdentityToolkit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityToolkit")
            .field("base", &self.base)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// What `accounts:lookup` tells about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The uid.
    pub uid: String,
    /// The custom claims (empty when none).
    pub custom_claims: Map<String, Value>,
    /// `validSince`, UTC seconds, when set.
    pub valid_since: Option<i64>,
    /// Whether the account is disabled.
    pub disabled: bool,
}

impl IdentityToolkit {
    /// The production API with Application Default Credentials.
    pub fn production(project: impl Into<String>) -> Result<Self, ToolkitError> {
        let credentials = Builder::default()
            .with_scopes([SCOPE])
            .build_access_token_credentials()
            .map_err(|e| ToolkitError::Credentials(e.to_string()))?;
        Ok(Self::with(PRODUCTION_BASE.to_owned(), project.into(), Auth::Adc(credentials)))
    }

    /// The Auth emulator at `host` (`host:port`).
    pub fn emulator(host: &str, project: impl Into<String>) -> Self {
        Self::with(
            format!("http://{host}/identitytoolkit.googleapis.com"),
            project.into(),
            Auth::Emulator,
        )
    }

    fn with(base: String, project: String, auth: Auth) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http, base, project, auth }
    }

    async fn bearer(&self) -> Result<String, ToolkitError> {
        match &self.auth {
            Auth::Emulator => Ok("owner".to_owned()),
            Auth::Adc(credentials) => credentials
                .access_token()
                .await
                .map(|t| t.token)
                .map_err(|e| ToolkitError::Credentials(e.to_string())),
        }
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, ToolkitError> {
        let url = format!("{}/v1/projects/{}/accounts:{method}", self.base, self.project);
        let response = self
            .http
            .post(url)
            .bearer_auth(self.bearer().await?)
            .json(body)
            .send()
            .await
            .map_err(|e| ToolkitError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let message = value["error"]["message"].as_str().unwrap_or("no message").to_owned();
            return Err(ToolkitError::Api { status, message });
        }
        Ok(value)
    }

    /// The account of `uid`, `None` when there is no such user.
    pub async fn lookup(&self, uid: &str) -> Result<Option<Account>, ToolkitError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct User {
            local_id: String,
            #[serde(default)]
            custom_attributes: Option<String>,
            #[serde(default)]
            valid_since: Option<String>,
            #[serde(default)]
            disabled: bool,
        }
        let answer = self.call("lookup", &json!({"localId": [uid]})).await?;
        let users: Vec<User> = serde_json::from_value(answer["users"].clone()).unwrap_or_default();
        Ok(users.into_iter().find(|u| u.local_id == uid).map(|u| Account {
            custom_claims: u
                .custom_attributes
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            valid_since: u.valid_since.and_then(|s| s.parse().ok()),
            disabled: u.disabled,
            uid: u.local_id,
        }))
    }

    /// Revokes every session of `uid` (`validSince` = `now_secs`: refresh tokens and ID tokens
    /// issued before stop being accepted) and replaces its custom claims with `claims`, in one
    /// call. `Ok(false)` when there is no such user (nothing to revoke).
    pub async fn revoke_sessions(
        &self,
        uid: &str,
        claims: &Map<String, Value>,
        now_secs: i64,
    ) -> Result<bool, ToolkitError> {
        let body = json!({
            "localId": uid,
            "validSince": now_secs.to_string(),
            "customAttributes": Value::Object(claims.clone()).to_string(),
        });
        match self.call("update", &body).await {
            Ok(_) => Ok(true),
            Err(ToolkitError::Api { message, .. }) if message.starts_with("USER_NOT_FOUND") => {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
}
