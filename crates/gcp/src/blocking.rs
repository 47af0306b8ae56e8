//! Identity Platform blocking functions (beforeCreate / beforeSignIn): the request
//! `{"data":{"jwt":"..."}}` verified into a typed [`BlockingEvent`] (contracts 1.1-1.3), and the
//! answers: [`BlockingResponse`] (`userRecord` + `updateMask`, contracts 1.4) and the error body
//! of 1.5 (through [`PublicError::to_error_body`] or [`crate::callable::ErrorBody`]).
//!
//! Verification follows the Admin SDK's `_verifyAuthBlockingToken`, stricter where it can be:
//! RS256 with `kid` against the securetoken keys, issuer
//! `https://securetoken.google.com/<project>`, the **exact** configured audience (the hook's
//! public URL, `HEARTH_BLOCKING_AUDIENCE`), `sub` a non-empty string of at most 128 characters
//! (except for beforeSendEmail/beforeSendSms, which have no user), `exp`/`iat` with leeway. In
//! Auth emulator mode unsigned tokens are accepted too, with the same claim checks.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::callable::Code;
use crate::error::PublicError;
use crate::firebase::securetoken_issuer;
use crate::jwks::JwksCache;
use crate::token::{self, Checks, DEFAULT_LEEWAY, TokenError};

/// Largest blocking request body accepted (the JWT is at most [`token::MAX_TOKEN_BYTES`]).
pub const MAX_BODY_BYTES: usize = token::MAX_TOKEN_BYTES + 1024;

/// Claim names the SDKs refuse in custom and session claims.
pub const RESERVED_CLAIMS: [&str; 15] = [
    "acr",
    "amr",
    "at_hash",
    "aud",
    "auth_time",
    "azp",
    "cnf",
    "c_hash",
    "exp",
    "iat",
    "iss",
    "jti",
    "nbf",
    "nonce",
    "firebase",
];

/// Limit on the UTF-8 JSON serialization of custom claims, session claims, and both merged.
pub const MAX_CLAIMS_BYTES: usize = 1000;

/// What a blocking JWT must say to be accepted.
#[derive(Debug, Clone)]
pub struct BlockingConfig {
    pub project_id: String,
    /// The exact `aud`: the hook's public URL (`HEARTH_BLOCKING_AUDIENCE`).
    pub audience: String,
    /// Accept unsigned tokens: only when `FIREBASE_AUTH_EMULATOR_HOST` is set.
    pub auth_emulator: bool,
    pub leeway: Duration,
}

impl BlockingConfig {
    pub fn new(
        project_id: impl Into<String>,
        audience: impl Into<String>,
        auth_emulator: bool,
    ) -> Self {
        Self {
            project_id: project_id.into(),
            audience: audience.into(),
            auth_emulator,
            leeway: DEFAULT_LEEWAY,
        }
    }

    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }
}

/// The kinds of blocking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockingEventType {
    #[serde(rename = "beforeCreate")]
    BeforeCreate,
    #[serde(rename = "beforeSignIn")]
    BeforeSignIn,
    #[serde(rename = "beforeSendEmail")]
    BeforeSendEmail,
    #[serde(rename = "beforeSendSms")]
    BeforeSendSms,
}

impl BlockingEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockingEventType::BeforeCreate => "beforeCreate",
            BlockingEventType::BeforeSignIn => "beforeSignIn",
            BlockingEventType::BeforeSendEmail => "beforeSendEmail",
            BlockingEventType::BeforeSendSms => "beforeSendSms",
        }
    }

    /// Whether the event concerns a user (and so carries `sub` and `user_record`).
    pub fn has_user(self) -> bool {
        matches!(self, BlockingEventType::BeforeCreate | BlockingEventType::BeforeSignIn)
    }
}

impl fmt::Display for BlockingEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret string (OAuth tokens, password hashes): serialized as-is, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Redacted(String);

impl Redacted {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The verified payload of a blocking JWT (contracts 1.2), in its wire shape (snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockingEvent {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The uid; absent for beforeSendEmail/beforeSendSms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub event_id: String,
    pub event_type: BlockingEventType,
    pub ip_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_second_factor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_record: Option<UserRecord>,
    /// The IdP profile; a JSON text on the wire, parsed here.
    #[serde(default, with = "json_text", skip_serializing_if = "Option::is_none")]
    pub raw_user_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_attributes: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_id_token: Option<Redacted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_access_token: Option<Redacted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_refresh_token: Option<Redacted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_token_secret: Option<Redacted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_expires_in: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recaptcha_score: Option<f64>,
    /// `EMAIL_SIGN_IN` | `PASSWORD_RESET` (beforeSendEmail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_type: Option<String>,
    /// `SIGNIN` | `MULTI_FACTOR_ENROLLMENT` | `MULTI_FACTOR_SIGN_IN` (beforeSendSms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_type: Option<String>,
}

impl BlockingEvent {
    /// The uid of the user signing up or in (`sub`, else `user_record.uid`).
    pub fn uid(&self) -> Option<&str> {
        self.sub.as_deref().or_else(|| self.user_record.as_ref().map(|u| u.uid.as_str()))
    }

    /// Refuses an event of another type than the endpoint handles.
    pub fn expect_type(self, expected: BlockingEventType) -> Result<Self, BlockingError> {
        if self.event_type == expected {
            Ok(self)
        } else {
            Err(BlockingError::UnexpectedEventType { expected, got: self.event_type })
        }
    }
}

/// `user_record` of a blocking JWT. Falsey fields are omitted on the wire (defaults here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<UserMetadata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_data: Vec<UserInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_factor: Option<MultiFactor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_claims: Option<Map<String, Value>>,
    /// Seconds since the epoch on the wire.
    #[serde(default, with = "epoch_seconds", skip_serializing_if = "Option::is_none")]
    pub tokens_valid_after_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<Redacted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_salt: Option<Redacted>,
}

/// `user_record.metadata`: **milliseconds** since the epoch on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMetadata {
    #[serde(default, with = "epoch_millis", skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<DateTime<Utc>>,
    #[serde(default, with = "epoch_millis", skip_serializing_if = "Option::is_none")]
    pub last_sign_in_time: Option<DateTime<Utc>>,
}

/// One entry of `user_record.provider_data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub uid: String,
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

/// `user_record.multi_factor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiFactor {
    #[serde(default)]
    pub enrolled_factors: Vec<EnrolledFactor>,
}

/// One second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledFactor {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_time: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

/// A time as an integer (or a numeric string) count of `UNIT`s since the epoch.
fn epoch_from_value<E: serde::de::Error>(
    value: Option<Value>,
    per_second: i64,
) -> Result<Option<DateTime<Utc>>, E> {
    let count = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e17).map(|f| f.trunc() as i64)
        }),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| E::custom("expected a number of seconds or milliseconds since the epoch"))?;
    let time = if per_second == 1000 {
        DateTime::<Utc>::from_timestamp_millis(count)
    } else {
        DateTime::<Utc>::from_timestamp(count, 0)
    };
    time.map(Some).ok_or_else(|| E::custom("timestamp out of range"))
}

mod epoch_millis {
    //! `Option<DateTime<Utc>>` as milliseconds since the epoch.
    use super::{DateTime, Deserialize, Deserializer, Serializer, Utc, Value, epoch_from_value};

    pub(super) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(t) => s.serialize_i64(t.timestamp_millis()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        epoch_from_value(Option::<Value>::deserialize(d)?, 1000)
    }
}

mod epoch_seconds {
    //! `Option<DateTime<Utc>>` as seconds since the epoch.
    use super::{DateTime, Deserialize, Deserializer, Serializer, Utc, Value, epoch_from_value};

    pub(super) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(t) => s.serialize_i64(t.timestamp()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        epoch_from_value(Option::<Value>::deserialize(d)?, 1)
    }
}

mod json_text {
    //! `Option<Value>` carried as a JSON text string.
    use super::{Deserialize, Deserializer, Serializer, Value};

    pub(super) fn serialize<S: Serializer>(value: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) if text.trim().is_empty() => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// Why a blocking request was refused.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    #[error("blocking request body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("blocking request body is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("blocking request body is not {{\"data\":{{\"jwt\":\"...\"}}}}")]
    MissingJwt,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("blocking token claims do not have the expected shape")]
    InvalidClaims(#[source] serde_json::Error),
    #[error("expected a {expected} event, got {got}")]
    UnexpectedEventType { expected: BlockingEventType, got: BlockingEventType },
}

impl PublicError for BlockingError {
    fn code(&self) -> Code {
        match self {
            BlockingError::Token(e) => e.code(),
            BlockingError::InvalidClaims(_) => Code::Unauthenticated,
            BlockingError::TooLarge | BlockingError::NotJson(_) | BlockingError::MissingJwt => {
                Code::InvalidArgument
            }
            BlockingError::UnexpectedEventType { .. } => Code::InvalidArgument,
        }
    }

    fn public_message(&self) -> String {
        match self {
            BlockingError::Token(e) => e.public_message(),
            BlockingError::InvalidClaims(_) => "invalid token".to_owned(),
            BlockingError::UnexpectedEventType { .. } => {
                "unexpected blocking event type".to_owned()
            }
            _ => "bad request".to_owned(),
        }
    }
}

impl domain::status::Retryable for BlockingError {
    fn is_retryable(&self) -> bool {
        PublicError::is_retryable(self)
    }
}

#[derive(Deserialize)]
struct RequestBody {
    data: RequestData,
}

#[derive(Deserialize)]
struct RequestData {
    jwt: String,
}

/// Verifies blocking requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlockingVerifier {
    keys: JwksCache,
    config: BlockingConfig,
    issuer: String,
}

impl BlockingVerifier {
    /// `keys` should point at [`crate::jwks::SECURETOKEN_JWKS_URL`] (or the x509 URL).
    pub fn new(keys: JwksCache, config: BlockingConfig) -> Self {
        let issuer = securetoken_issuer(&config.project_id);
        Self { keys, config, issuer }
    }

    /// Verifies a request body `{"data":{"jwt":"..."}}`.
    pub async fn verify(&self, body: &[u8]) -> Result<BlockingEvent, BlockingError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(BlockingError::TooLarge);
        }
        let value: Value = serde_json::from_slice(body).map_err(BlockingError::NotJson)?;
        let request: RequestBody =
            serde_json::from_value(value).map_err(|_| BlockingError::MissingJwt)?;
        self.verify_jwt(&request.data.jwt).await
    }

    /// Verifies the JWT of a blocking request.
    pub async fn verify_jwt(&self, jwt: &str) -> Result<BlockingEvent, BlockingError> {
        let checks = Checks {
            issuers: &[self.issuer.as_str()],
            audience: &self.config.audience,
            leeway: self.config.leeway,
            allow_unsigned: self.config.auth_emulator,
        };
        let verified = token::verify(jwt, &self.keys, &checks).await?;
        let claims = verified.claims;
        let event_type = claims
            .get("event_type")
            .cloned()
            .map(serde_json::from_value::<BlockingEventType>)
            .ok_or(TokenError::MissingClaim("event_type"))?
            .map_err(|_| TokenError::InvalidClaim("event_type"))?;
        if event_type.has_user() {
            token::check_subject(&claims)?;
        }
        serde_json::from_value(Value::Object(claims)).map_err(BlockingError::InvalidClaims)
    }
}

/// reCAPTCHA verdict override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecaptchaAction {
    Allow,
    Block,
}

/// Why a blocking response could not be built: a bug in the hook (answered `INTERNAL`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("claim name {0:?} is reserved")]
    ReservedClaim(String),
    #[error("custom claims serialize to {0} bytes (limit {MAX_CLAIMS_BYTES})")]
    CustomClaimsTooLarge(usize),
    #[error("session claims serialize to {0} bytes (limit {MAX_CLAIMS_BYTES})")]
    SessionClaimsTooLarge(usize),
    #[error("custom and session claims together serialize to {0} bytes (limit {MAX_CLAIMS_BYTES})")]
    MergedClaimsTooLarge(usize),
    #[error("{field} cannot be set in a {event_type} response")]
    FieldNotAllowed { field: &'static str, event_type: BlockingEventType },
}

impl PublicError for ResponseError {
    fn code(&self) -> Code {
        Code::Internal
    }

    fn public_message(&self) -> String {
        "An unexpected error occurred.".to_owned()
    }
}

/// Checks custom and session claims as the SDKs do: no reserved names; each set, and both
/// merged (session over custom), at most [`MAX_CLAIMS_BYTES`] of UTF-8 JSON.
pub fn validate_claims(
    custom: Option<&Map<String, Value>>,
    session: Option<&Map<String, Value>>,
) -> Result<(), ResponseError> {
    for name in custom.into_iter().chain(session).flat_map(Map::keys) {
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(ResponseError::ReservedClaim(name.clone()));
        }
    }
    let size = |claims: &Map<String, Value>| Value::Object(claims.clone()).to_string().len();
    if let Some(custom) = custom {
        let n = size(custom);
        if n > MAX_CLAIMS_BYTES {
            return Err(ResponseError::CustomClaimsTooLarge(n));
        }
    }
    if let Some(session) = session {
        let n = size(session);
        if n > MAX_CLAIMS_BYTES {
            return Err(ResponseError::SessionClaimsTooLarge(n));
        }
    }
    if let (Some(custom), Some(session)) = (custom, session) {
        let mut merged = custom.clone();
        merged.extend(session.iter().map(|(k, v)| (k.clone(), v.clone())));
        let n = size(&merged);
        if n > MAX_CLAIMS_BYTES {
            return Err(ResponseError::MergedClaimsTooLarge(n));
        }
    }
    Ok(())
}

/// What a blocking function changes; unset fields are left alone. Build the wire body with
/// [`BlockingResponse::to_json`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockingResponse {
    pub display_name: Option<String>,
    pub disabled: Option<bool>,
    pub email_verified: Option<bool>,
    /// Sent as `photoURL` (the SDK spelling; the emulator reads `photoUrl`, contracts 1.6).
    pub photo_url: Option<String>,
    pub custom_claims: Option<Map<String, Value>>,
    /// beforeSignIn only.
    pub session_claims: Option<Map<String, Value>>,
    pub recaptcha_action_override: Option<RecaptchaAction>,
}

impl BlockingResponse {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn custom_claims(mut self, claims: Map<String, Value>) -> Self {
        self.custom_claims = Some(claims);
        self
    }

    #[must_use]
    pub fn session_claims(mut self, claims: Map<String, Value>) -> Self {
        self.session_claims = Some(claims);
        self
    }

    #[must_use]
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    #[must_use]
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }

    #[must_use]
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = Some(verified);
        self
    }

    #[must_use]
    pub fn photo_url(mut self, url: impl Into<String>) -> Self {
        self.photo_url = Some(url.into());
        self
    }

    #[must_use]
    pub fn recaptcha_action_override(mut self, action: RecaptchaAction) -> Self {
        self.recaptcha_action_override = Some(action);
        self
    }

    /// The 200 body for an event of `event_type`: `{"userRecord":{...,"updateMask":"a,b"}}` with
    /// exactly the set fields (plus `recaptchaActionOverride` at top level), or `{}`.
    pub fn to_json(&self, event_type: BlockingEventType) -> Result<Value, ResponseError> {
        let mut record = Map::new();
        let mut mask: Vec<&'static str> = Vec::new();
        let mut set = |field: &'static str, value: Value| {
            record.insert(field.to_owned(), value);
            mask.push(field);
        };
        if let Some(v) = &self.display_name {
            set("displayName", Value::String(v.clone()));
        }
        if let Some(v) = self.disabled {
            set("disabled", Value::Bool(v));
        }
        if let Some(v) = self.email_verified {
            set("emailVerified", Value::Bool(v));
        }
        if let Some(v) = &self.photo_url {
            set("photoURL", Value::String(v.clone()));
        }
        if let Some(v) = &self.custom_claims {
            set("customClaims", Value::Object(v.clone()));
        }
        if let Some(v) = &self.session_claims {
            set("sessionClaims", Value::Object(v.clone()));
        }
        if let Some(field) = mask.first()
            && !event_type.has_user()
        {
            return Err(ResponseError::FieldNotAllowed { field, event_type });
        }
        if self.session_claims.is_some() && event_type != BlockingEventType::BeforeSignIn {
            return Err(ResponseError::FieldNotAllowed { field: "sessionClaims", event_type });
        }
        validate_claims(self.custom_claims.as_ref(), self.session_claims.as_ref())?;

        let mut body = Map::new();
        if !mask.is_empty() {
            record.insert("updateMask".to_owned(), Value::String(mask.join(",")));
            body.insert("userRecord".to_owned(), Value::Object(record));
        }
        if let Some(action) = self.recaptcha_action_override {
            body.insert(
                "recaptchaActionOverride".to_owned(),
                serde_json::to_value(action).unwrap_or(Value::Null),
            );
        }
        Ok(Value::Object(body))
    }
}

/// A parsed `userRecord` of a response body, for tests and the local stack (the Auth emulator's
/// side of the exchange).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseUserRecord {
    pub update_mask: String,
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn nothing_set_is_an_empty_object() {
        for t in [
            BlockingEventType::BeforeCreate,
            BlockingEventType::BeforeSignIn,
            BlockingEventType::BeforeSendEmail,
        ] {
            assert_eq!(BlockingResponse::new().to_json(t).unwrap(), json!({}));
        }
    }

    #[test]
    fn update_mask_lists_exactly_the_set_fields() {
        let body = BlockingResponse::new()
            .custom_claims(claims(json!({"tenant_id": "t1", "role": "owner"})))
            .display_name("Ada")
            .to_json(BlockingEventType::BeforeCreate)
            .unwrap();
        assert_eq!(
            body,
            json!({"userRecord": {"displayName": "Ada", "customClaims": {"tenant_id": "t1", "role": "owner"},
                   "updateMask": "displayName,customClaims"}})
        );
        let body = BlockingResponse::new()
            .disabled(false)
            .email_verified(true)
            .photo_url("https://p")
            .session_claims(claims(json!({"s": 1})))
            .recaptcha_action_override(RecaptchaAction::Allow)
            .to_json(BlockingEventType::BeforeSignIn)
            .unwrap();
        assert_eq!(
            body["userRecord"]["updateMask"],
            "disabled,emailVerified,photoURL,sessionClaims"
        );
        assert_eq!(body["recaptchaActionOverride"], "ALLOW");
        let parsed: ResponseUserRecord =
            serde_json::from_value(body["userRecord"].clone()).unwrap();
        assert_eq!(parsed.fields.len(), 4);
    }

    #[test]
    fn session_claims_only_before_sign_in() {
        let r = BlockingResponse::new().session_claims(claims(json!({"s": 1})));
        assert_eq!(
            r.to_json(BlockingEventType::BeforeCreate),
            Err(ResponseError::FieldNotAllowed {
                field: "sessionClaims",
                event_type: BlockingEventType::BeforeCreate
            })
        );
        assert!(r.to_json(BlockingEventType::BeforeSignIn).is_ok());
        let r = BlockingResponse::new().display_name("x");
        assert!(r.to_json(BlockingEventType::BeforeSendEmail).is_err());
        let r = BlockingResponse::new().recaptcha_action_override(RecaptchaAction::Block);
        assert_eq!(
            r.to_json(BlockingEventType::BeforeSendEmail).unwrap(),
            json!({"recaptchaActionOverride": "BLOCK"})
        );
    }

    #[test]
    fn reserved_claim_names_are_refused() {
        for name in RESERVED_CLAIMS {
            let c = claims(json!({ name: 1 }));
            assert_eq!(
                validate_claims(Some(&c), None),
                Err(ResponseError::ReservedClaim(name.to_owned()))
            );
            assert_eq!(
                validate_claims(None, Some(&c)),
                Err(ResponseError::ReservedClaim(name.to_owned()))
            );
        }
        assert!(
            validate_claims(Some(&claims(json!({"role": "x", "tenant_id": "t"}))), None).is_ok()
        );
    }

    #[test]
    fn claim_size_limit_counts_utf8_bytes() {
        // {"k":"<v>"} is 8 bytes + v.
        let fits = claims(json!({"k": "a".repeat(992)}));
        assert!(validate_claims(Some(&fits), None).is_ok());
        let over = claims(json!({"k": "a".repeat(993)}));
        assert_eq!(
            validate_claims(Some(&over), None),
            Err(ResponseError::CustomClaimsTooLarge(1001))
        );
        // 331 three-byte characters: 331 chars but 993 bytes.
        let wide = claims(json!({"k": "€".repeat(331)}));
        assert_eq!(
            validate_claims(Some(&wide), None),
            Err(ResponseError::CustomClaimsTooLarge(1001))
        );
        assert_eq!(
            validate_claims(None, Some(&wide)),
            Err(ResponseError::SessionClaimsTooLarge(1001))
        );
        let half = claims(json!({"a": "a".repeat(600)}));
        let other = claims(json!({"b": "b".repeat(600)}));
        assert!(matches!(
            validate_claims(Some(&half), Some(&other)),
            Err(ResponseError::MergedClaimsTooLarge(_))
        ));
        // Merging overrides the same key, so the merged set stays small.
        assert!(validate_claims(Some(&half), Some(&claims(json!({"a": "b".repeat(600)})))).is_ok());
    }

    #[test]
    fn wire_times_are_millis_in_metadata_and_seconds_for_tokens_valid_after() {
        let rec: UserRecord = serde_json::from_value(json!({
            "uid": "u1", "metadata": {"creation_time": 1_700_000_000_123_i64, "last_sign_in_time": "1700000001000"},
            "tokens_valid_after_time": 1_700_000_000
        }))
        .unwrap();
        let meta = rec.metadata.as_ref().unwrap();
        assert_eq!(meta.creation_time.unwrap().timestamp_millis(), 1_700_000_000_123);
        assert_eq!(meta.last_sign_in_time.unwrap().timestamp(), 1_700_000_001);
        assert_eq!(rec.tokens_valid_after_time.unwrap().timestamp(), 1_700_000_000);
        let back = serde_json::to_value(&rec).unwrap();
        assert_eq!(back["metadata"]["last_sign_in_time"], json!(1_700_000_001_000_i64));
        assert!(!rec.email_verified && !rec.disabled);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let r = Redacted::new("ya29.secret");
        assert_eq!(format!("{r:?}"), "[redacted]");
        assert_eq!(serde_json::to_value(&r).unwrap(), json!("ya29.secret"));
    }
}
