//! The signing-key cache shared by every token verifier: [`JwksCache`].
//!
//! It fetches a key document over HTTP and keeps the public keys by `kid`:
//! - both formats Google serves are understood: a JWK set (`{"keys":[{"kty":"RSA","kid":..,
//!   "n":..,"e":..}]}`, e.g. `oauth2/v3/certs`, `service_accounts/v1/jwk/securetoken@...`) and
//!   the x509 PEM map (`{"<kid>":"-----BEGIN CERTIFICATE-----..."}`, e.g.
//!   `robot/v1/metadata/x509/securetoken@...`); the format is recognised from the document;
//! - keys live as long as the response's `Cache-Control: max-age` says (default 1 h, at most
//!   24 h), like the Admin SDK's `UrlKeyFetcher`;
//! - an unknown `kid` in a fresh set causes one refetch (Google publishes new keys before it
//!   signs with them, so this only matters around rotation), but at most once per cooldown for
//!   that `kid` and never more often than a global floor, so tokens with forged random `kid`s
//!   cannot make us hammer the key endpoint;
//! - refreshes are single-flight: one fetch at a time; callers that queued behind a fetch use
//!   its result instead of fetching again (50 concurrent verifications on a cold cache = 1 fetch);
//! - if a refresh fails while the cached keys are still within their max-age, they keep being
//!   served; once they have expired and the endpoint is failing, verification fails with a
//!   retryable error (fail closed), and further fetches wait out a short back-off.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use parking_lot::RwLock;
use serde::Deserialize;

/// Google's JWK set for Google-signed OIDC ID tokens (Pub/Sub push, Scheduler, Eventarc).
pub const GOOGLE_OIDC_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The JWK set of the securetoken service account: blocking JWTs and Firebase ID tokens.
pub const SECURETOKEN_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
/// The same keys as [`SECURETOKEN_JWKS_URL`] in the x509 PEM map format the Admin SDK uses.
pub const SECURETOKEN_X509_URL: &str =
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com";

/// Smallest RSA modulus accepted from a JWK set (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// How many unknown kids are remembered for the per-kid cooldown before old entries are pruned.
const MAX_REMEMBERED_UNKNOWN_KIDS: usize = 1024;

/// Tuning of a [`JwksCache`]. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// Lifetime of a key set whose response has no `Cache-Control: max-age`.
    pub default_max_age: Duration,
    /// Upper bound on any lifetime, whatever `max-age` says.
    pub max_max_age: Duration,
    /// An unknown `kid` triggers a refetch at most once per this interval.
    pub unknown_kid_cooldown: Duration,
    /// Refetches caused by unknown kids (any kid) are at least this far apart.
    pub min_forced_refresh_interval: Duration,
    /// After a failed fetch, callers with no usable keys fail fast for this long.
    pub failure_backoff: Duration,
    /// Timeout of one fetch.
    pub request_timeout: Duration,
    /// Largest key document accepted.
    pub max_document_bytes: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            default_max_age: Duration::from_secs(3600),
            max_max_age: Duration::from_secs(24 * 3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            min_forced_refresh_interval: Duration::from_secs(5),
            failure_backoff: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            max_document_bytes: 1024 * 1024,
        }
    }
}

/// Why no key could be produced. Public answers never include the detail.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The key set (freshly fetched if needed) has no key with this `kid`.
    #[error("no signing key with the token's kid")]
    UnknownKid,
    /// The HTTP request failed (connection, timeout, body).
    #[error("fetching the signing keys failed")]
    Fetch(#[source] reqwest::Error),
    /// The key endpoint answered with a non-success status.
    #[error("the key endpoint answered HTTP {0}")]
    Status(u16),
    /// The key endpoint answered with a document larger than allowed.
    #[error("the key document is larger than {0} bytes")]
    TooLarge(usize),
    /// The document is neither a JWK set nor an x509 PEM map.
    #[error("the key document is not a JWK set or an x509 certificate map: {0}")]
    InvalidDocument(String),
    /// The document parsed but holds no usable RSA signing key.
    #[error("the key document holds no usable RSA signing key")]
    NoUsableKeys,
    /// A fetch failed moments ago and there are no valid cached keys: fail fast.
    #[error("signing keys are unavailable (a recent fetch failed)")]
    RecentFailure,
}

impl JwksError {
    /// True when the failure is on the key endpoint's side (retry later), false for an
    /// unknown `kid` (the token is at fault).
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, JwksError::UnknownKid)
    }
}

/// A cache of public signing keys fetched from one URL. Cheap to clone (shared state).
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.read();
        f.debug_struct("JwksCache")
            .field("url", &self.inner.url)
            .field("cached_kids", &state.keys.as_ref().map(|k| k.keys.len()))
            .field("fetch_attempts", &state.attempts)
            .finish_non_exhaustive()
    }
}

struct Inner {
    url: String,
    client: reqwest::Client,
    options: JwksOptions,
    state: RwLock<State>,
    /// Held for the duration of a fetch: the single-flight gate.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: Option<KeySet>,
    /// Fetch attempts so far (success or failure): lets queued callers see that a fetch
    /// happened while they waited.
    attempts: u64,
    last_failure: Option<Instant>,
    last_forced: Option<Instant>,
    unknown_kids: HashMap<String, Instant>,
}

struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    expires_at: Instant,
}

enum Lookup {
    Found(Arc<DecodingKey>),
    /// Fresh set without this kid; `attempts` as seen.
    Missing(u64),
    /// No set, or an expired one.
    Stale(u64),
}

impl JwksCache {
    /// A cache for `url` with a default HTTP client and default options.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_options(url, default_client(), JwksOptions::default())
    }

    /// A cache with an explicit client (shared connection pool) and options.
    pub fn with_options(
        url: impl Into<String>,
        client: reqwest::Client,
        options: JwksOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: url.into(),
                client,
                options,
                state: RwLock::new(State::default()),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The URL keys are fetched from.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Fetches now unless a fetch is in flight (then uses its result). Useful to warm the
    /// cache at startup; verification calls [`JwksCache::key`], which fetches when needed.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let seen = self.inner.state.read().attempts;
        self.refresh_after(seen).await
    }

    /// The key for `kid`, fetching or refetching as described in the module docs.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        let seen = match self.lookup(kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Stale(seen) => {
                self.refresh_after(seen).await?;
                // That fetch (ours or the one we queued behind) is the refetch: a kid it did not
                // bring is unknown.
                return match self.lookup(kid) {
                    Lookup::Found(key) => Ok(key),
                    Lookup::Missing(_) => Err(JwksError::UnknownKid),
                    Lookup::Stale(_) => Err(JwksError::RecentFailure),
                };
            }
            Lookup::Missing(seen) => seen,
        };
        {
            // Under the gate: a fetch in flight (say, for a rotation a concurrent request saw
            // first) completes before we decide, and its result counts as our refetch.
            let _gate = self.inner.refresh.lock().await;
            let unchanged = self.inner.state.read().attempts == seen;
            if unchanged
                && self.may_force_refresh(kid)
                && let Err(error) = self.fetch_and_store().await
            {
                // The cached keys are still valid and keep being served; this kid is unknown.
                tracing::warn!(url = %self.inner.url, error = %error, "refetching signing keys for an unknown kid failed");
            }
        }
        match self.lookup(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::Missing(_) | Lookup::Stale(_) => Err(JwksError::UnknownKid),
        }
    }

    fn lookup(&self, kid: &str) -> Lookup {
        let state = self.inner.state.read();
        match &state.keys {
            Some(set) if set.expires_at > Instant::now() => match set.keys.get(kid) {
                Some(key) => Lookup::Found(Arc::clone(key)),
                None => Lookup::Missing(state.attempts),
            },
            _ => Lookup::Stale(state.attempts),
        }
    }

    /// Records an unknown-kid refetch if the per-kid cooldown and the global floor allow it.
    fn may_force_refresh(&self, kid: &str) -> bool {
        let options = &self.inner.options;
        let now = Instant::now();
        let mut state = self.inner.state.write();
        if state
            .unknown_kids
            .get(kid)
            .is_some_and(|at| now.duration_since(*at) < options.unknown_kid_cooldown)
        {
            return false;
        }
        if state
            .last_forced
            .is_some_and(|at| now.duration_since(at) < options.min_forced_refresh_interval)
        {
            return false;
        }
        if state.unknown_kids.len() >= MAX_REMEMBERED_UNKNOWN_KIDS {
            let cooldown = options.unknown_kid_cooldown;
            state.unknown_kids.retain(|_, at| now.duration_since(*at) < cooldown);
            if state.unknown_kids.len() >= MAX_REMEMBERED_UNKNOWN_KIDS {
                state.unknown_kids.clear();
            }
        }
        state.unknown_kids.insert(kid.to_owned(), now);
        state.last_forced = Some(now);
        true
    }

    /// Fetches unless a fetch completed since `seen` attempts (single flight).
    async fn refresh_after(&self, seen: u64) -> Result<(), JwksError> {
        let _gate = self.inner.refresh.lock().await;
        {
            let state = self.inner.state.read();
            if state.attempts != seen {
                // Someone fetched while we waited: use their result.
                return if state.last_failure.is_some() && !has_valid_keys(&state) {
                    Err(JwksError::RecentFailure)
                } else {
                    Ok(())
                };
            }
            if !has_valid_keys(&state)
                && state
                    .last_failure
                    .is_some_and(|at| at.elapsed() < self.inner.options.failure_backoff)
            {
                return Err(JwksError::RecentFailure);
            }
        }
        self.fetch_and_store().await
    }

    /// Fetches and stores the result; the caller holds the refresh gate.
    async fn fetch_and_store(&self) -> Result<(), JwksError> {
        let result = self.fetch().await;
        let mut state = self.inner.state.write();
        state.attempts += 1;
        match result {
            Ok(set) => {
                tracing::debug!(url = %self.inner.url, keys = set.keys.len(), "fetched signing keys");
                state.keys = Some(set);
                state.last_failure = None;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(url = %self.inner.url, error = %error, "fetching signing keys failed");
                state.last_failure = Some(Instant::now());
                Err(error)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let options = &self.inner.options;
        let mut response = self
            .inner
            .client
            .get(&self.inner.url)
            .header(http::header::ACCEPT, "application/json")
            .timeout(options.request_timeout)
            .send()
            .await
            .map_err(JwksError::Fetch)?;
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError::Status(status.as_u16()));
        }
        let max_age = response
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(parse_max_age)
            .unwrap_or(options.default_max_age)
            .min(options.max_max_age);
        if response.content_length().is_some_and(|len| len > options.max_document_bytes as u64) {
            return Err(JwksError::TooLarge(options.max_document_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(JwksError::Fetch)? {
            if body.len() + chunk.len() > options.max_document_bytes {
                return Err(JwksError::TooLarge(options.max_document_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_key_document(&body)?;
        Ok(KeySet { keys, expires_at: Instant::now() + max_age })
    }
}

fn has_valid_keys(state: &State) -> bool {
    state.keys.as_ref().is_some_and(|set| set.expires_at > Instant::now())
}

fn default_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `max-age=N` from one `Cache-Control` value (directive names are case-insensitive).
fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, arg) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        arg.trim().trim_matches('"').parse::<u64>().ok().map(Duration::from_secs)
    })
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Parses a JWK set or an x509 PEM map into RSA verification keys by kid. Entries that are not
/// RSA signing keys for RS256 (EC keys, encryption keys, other algorithms) are skipped.
fn parse_key_document(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, JwksError> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| JwksError::InvalidDocument(e.to_string()))?;
    let serde_json::Value::Object(map) = &document else {
        return Err(JwksError::InvalidDocument("not a JSON object".to_owned()));
    };
    let mut keys = HashMap::new();
    if map.contains_key("keys") {
        let set: JwkSet = serde_json::from_value(document.clone())
            .map_err(|e| JwksError::InvalidDocument(e.to_string()))?;
        for entry in set.keys {
            let Ok(jwk) = serde_json::from_value::<RsaJwk>(entry) else { continue };
            if let Some((kid, key)) = rsa_jwk_key(jwk) {
                keys.insert(kid, Arc::new(key));
            }
        }
    } else {
        for (kid, value) in map {
            let Some(pem) =
                value.as_str().filter(|pem| pem.contains("-----BEGIN CERTIFICATE-----"))
            else {
                return Err(JwksError::InvalidDocument(
                    "a value of the x509 map is not a certificate".to_owned(),
                ));
            };
            match DecodingKey::from_rsa_pem(pem.as_bytes()) {
                Ok(key) => {
                    keys.insert(kid.clone(), Arc::new(key));
                }
                Err(error) => {
                    tracing::debug!(%kid, %error, "skipping an unusable x509 certificate");
                }
            }
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(keys)
}

fn rsa_jwk_key(jwk: RsaJwk) -> Option<(String, DecodingKey)> {
    use base64::Engine as _;
    if jwk.kty != "RSA" || jwk.alg.as_deref().is_some_and(|alg| alg != "RS256") {
        return None;
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = jwk.kid.filter(|kid| !kid.is_empty())?;
    let (n, e) = (jwk.n?, jwk.e?);
    let modulus =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')).ok()?;
    let significant = modulus.iter().skip_while(|b| **b == 0).count();
    if significant < MIN_RSA_MODULUS_BYTES {
        tracing::debug!(%kid, "skipping an RSA key shorter than 2048 bits");
        return None;
    }
    let key =
        DecodingKey::from_rsa_components(n.trim_end_matches('='), e.trim_end_matches('=')).ok()?;
    Some((kid, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            parse_max_age("public, max-age=19302, must-revalidate"),
            Some(Duration::from_secs(19302))
        );
        assert_eq!(parse_max_age("MAX-AGE=5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_max_age("no-cache"), None);
        assert_eq!(parse_max_age("s-maxage=10"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }

    #[test]
    fn documents_that_are_not_key_sets_are_refused() {
        assert!(matches!(parse_key_document(b"[]"), Err(JwksError::InvalidDocument(_))));
        assert!(matches!(parse_key_document(b"{"), Err(JwksError::InvalidDocument(_))));
        assert!(matches!(parse_key_document(br#"{"keys":[]}"#), Err(JwksError::NoUsableKeys)));
        assert!(matches!(
            parse_key_document(br#"{"k1":"not a cert"}"#),
            Err(JwksError::InvalidDocument(_))
        ));
        // A short RSA key and an EC key are skipped.
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "short", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}
        ]});
        assert!(matches!(
            parse_key_document(doc.to_string().as_bytes()),
            Err(JwksError::NoUsableKeys)
        ));
    }
}
