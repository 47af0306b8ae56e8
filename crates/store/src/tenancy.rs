//! Tenancy lookups for the sign-up hook (invitations, company domains, blocked domains, tenant
//! status, memberships, user roots), with short-lived caches, and the exactly-once consumption of
//! an invitation.
//!
//! Documents (paths from [`crate::paths`]):
//!
//! | document | fields read or written here |
//! |---|---|
//! | `invitations/{email}` (lower-cased email) | `tenant_id`, `role`, `expires_at` (timestamp), `invited_by`?, `created_at`?, `consumed_by`?, `consumed_at`?, `reserved_until`? (timestamp: `consumed_by` is only a reservation until confirmed) |
//! | `tenant_domains/{domain}` (lower case) | `tenant_id`, `verified` |
//! | `config/signup` | `blocked_domains: [..]` |
//! | `tenants/{t}` | `status`: `active` \| `suspended` |
//! | `tenants/{t}/users/{uid}` (membership) | `role` |
//! | `users/{uid}` (user root) | `tenant_id`, `onboarded` |
//!
//! Caching: the blocked-domain list, company domains, tenant status, memberships and user roots
//! are kept in `moka` caches for a short time-to-live (default [`DEFAULT_CACHE_TTL`]), negative
//! answers included, so a warm instance answers a sign-in without reading Firestore. Concurrent
//! misses on one key are coalesced into one read. A zero TTL turns caching off. Invitations are
//! never cached: they change exactly when they matter (consumption) and every email is new.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::admission::RootFacts;
use domain::tenancy::{DomainClaim, Invitation, Role};
use firestore::FirestoreInstant;
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::{Error, TransactionError};
use crate::paths::{self, DocPath};

/// Default time-to-live of the tenancy caches.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Default number of entries kept per cache.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// The id of the sign-up configuration document, `config/signup`.
pub const SIGNUP_CONFIG_DOC: &str = "signup";

/// The lower-cased, trimmed email: the id of its `invitations/{email}` document.
pub fn invitation_id(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether a tenant may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Sign-ins into the tenant are blocked.
    Suspended,
    /// A status this build does not know (kept readable instead of failing every sign-in).
    #[serde(other)]
    Unknown,
}

/// A member's entry in `tenants/{t}/users/{uid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The member's role in the tenant.
    pub role: Role,
}

/// What the sign-up hook reads of `users/{uid}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRoot {
    /// The tenant the user was provisioned into.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Set by onboarding once the user's documents exist.
    #[serde(default)]
    pub onboarded: bool,
}

impl UserRoot {
    /// Whether onboarding completed for the user in `tenant_id` (the rule of
    /// [`RootFacts::onboarded_into`]).
    pub fn onboarded_into(&self, tenant_id: &str) -> bool {
        RootFacts::from(self.clone()).onboarded_into(tenant_id)
    }
}

impl From<UserRoot> for RootFacts {
    /// What the sign-in admission decision reads of the user root.
    fn from(root: UserRoot) -> Self {
        Self { tenant_id: root.tenant_id, onboarded: root.onboarded }
    }
}

/// A new invitation, as an administrator creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    /// The tenant the invited person joins.
    pub tenant_id: String,
    /// Their role there.
    pub role: Role,
    /// After this instant the invitation is ignored.
    pub expires_at: DateTime<Utc>,
    /// The uid of the inviting administrator, if known.
    pub invited_by: Option<String>,
}

/// A successful [`Tenancy::consume_invitation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// The invitation as stored (with `consumed_by` set to the consuming uid).
    pub invitation: Invitation,
    /// False when the same uid had already consumed it (an idempotent retry).
    pub first_time: bool,
}

/// Why an invitation could not be consumed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// There is no invitation for the email.
    #[error("there is no invitation for this email")]
    NotFound,
    /// Another user consumed it first.
    #[error("the invitation was already consumed by another user")]
    AlreadyConsumed {
        /// The uid that consumed it.
        by: String,
    },
    /// The invitation expired.
    #[error("the invitation expired at {expires_at}")]
    Expired {
        /// When it expired.
        expires_at: DateTime<Utc>,
    },
    /// Firestore failed (retryable or not, see [`Error::is_retryable`]).
    #[error(transparent)]
    Store(#[from] Error),
}

impl TransactionError for ConsumeError {
    fn store_error(&self) -> Option<&Error> {
        match self {
            ConsumeError::Store(error) => Some(error),
            _ => None,
        }
    }
}

/// `invitations/{email}` as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InvitationDoc {
    tenant_id: String,
    role: Role,
    #[serde(with = "firestore::serialize_as_timestamp")]
    expires_at: FirestoreInstant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invited_by: Option<String>,
    #[serde(
        default,
        with = "firestore::serialize_as_optional_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    created_at: Option<FirestoreInstant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consumed_by: Option<String>,
    #[serde(
        default,
        with = "firestore::serialize_as_optional_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    consumed_at: Option<FirestoreInstant>,
    #[serde(
        default,
        with = "firestore::serialize_as_optional_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    reserved_until: Option<FirestoreInstant>,
}

impl InvitationDoc {
    fn to_domain(&self) -> Invitation {
        Invitation {
            tenant_id: self.tenant_id.clone(),
            role: self.role,
            expires_at: to_chrono(self.expires_at),
            consumed_by: self.consumed_by.clone(),
            reserved_until: self.reserved_until.map(to_chrono),
        }
    }
}

/// `config/signup` as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SignupConfigDoc {
    #[serde(default)]
    blocked_domains: Vec<String>,
}

/// `tenants/{t}`: only the status is read here.
#[derive(Debug, Clone, Deserialize)]
struct TenantDoc {
    #[serde(default)]
    status: Option<TenantStatus>,
}

/// Cache tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an answer (found or not) is reused. Zero turns caching off.
    pub ttl: Duration,
    /// Entries kept per cache.
    pub capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { ttl: DEFAULT_CACHE_TTL, capacity: DEFAULT_CACHE_CAPACITY }
    }
}

impl CacheConfig {
    /// The default capacity with `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self { ttl, ..Self::default() }
    }
}

/// The tenancy repository on one database. Cheap to clone: clones share the caches.
#[derive(Clone)]
pub struct Tenancy {
    db: Db,
    cache: CacheConfig,
    blocked: TtlCache<(), Arc<[String]>>,
    domains: TtlCache<String, Option<DomainClaim>>,
    statuses: TtlCache<String, Option<TenantStatus>>,
    memberships: TtlCache<(String, String), Option<Membership>>,
    roots: TtlCache<String, Option<UserRoot>>,
}

impl fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenancy").field("db", &self.db).field("cache", &self.cache).finish()
    }
}

impl Tenancy {
    /// A repository with the default caches (30 s).
    pub fn new(db: &Db) -> Self {
        Self::with_cache(db, CacheConfig::default())
    }

    /// A repository with the given cache tuning.
    pub fn with_cache(db: &Db, cache: CacheConfig) -> Self {
        Self {
            db: db.clone(),
            cache,
            blocked: TtlCache::new(cache),
            domains: TtlCache::new(cache),
            statuses: TtlCache::new(cache),
            memberships: TtlCache::new(cache),
            roots: TtlCache::new(cache),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The cache tuning.
    pub fn cache_config(&self) -> CacheConfig {
        self.cache
    }

    /// Forgets every cached answer (the next lookups read Firestore).
    pub fn invalidate_all(&self) {
        self.blocked.invalidate_all();
        self.domains.invalidate_all();
        self.statuses.invalidate_all();
        self.memberships.invalidate_all();
        self.roots.invalidate_all();
    }

    // ---- reads ------------------------------------------------------------------------------

    /// The pending (or consumed) invitation for `email`, read fresh from Firestore. An email
    /// that cannot name a document (a `/` in it, ...) has no invitation.
    pub async fn invitation(&self, email: &str) -> Result<Option<Invitation>, Error> {
        let Ok(path) = paths::invitation(&invitation_id(email)) else { return Ok(None) };
        let doc: Option<InvitationDoc> = self.db.get(&path).await?;
        Ok(doc.as_ref().map(InvitationDoc::to_domain))
    }

    /// The blocked email domains of `config/signup` (lower case), cached.
    pub async fn blocked_domains(&self) -> Result<Arc<[String]>, Error> {
        self.blocked
            .get_or_load((), async {
                let path = paths::config(SIGNUP_CONFIG_DOC)?;
                let doc: Option<SignupConfigDoc> = self.db.get(&path).await?;
                let domains: Vec<String> = doc
                    .unwrap_or_default()
                    .blocked_domains
                    .iter()
                    .map(|d| d.trim().to_ascii_lowercase())
                    .filter(|d| !d.is_empty())
                    .collect();
                Ok(Arc::from(domains))
            })
            .await
    }

    /// The claim on a company email domain (`tenant_domains/{domain}`), cached. A domain that
    /// cannot name a document has no claim.
    pub async fn domain_claim(&self, domain: &str) -> Result<Option<DomainClaim>, Error> {
        let domain = domain.trim().to_ascii_lowercase();
        let Ok(path) = paths::tenant_domain(&domain) else { return Ok(None) };
        self.domains.get_or_load(domain, async { self.db.get(&path).await }).await
    }

    /// The status of `tenants/{tenant_id}` (`None` when the tenant document does not exist, has
    /// no status, or the id cannot name a document), cached.
    pub async fn tenant_status(&self, tenant_id: &str) -> Result<Option<TenantStatus>, Error> {
        let Ok(path) = paths::tenant(tenant_id) else { return Ok(None) };
        self.statuses
            .get_or_load(tenant_id.to_owned(), async {
                let doc: Option<TenantDoc> = self.db.get(&path).await?;
                Ok(doc.and_then(|d| d.status))
            })
            .await
    }

    /// The membership `tenants/{tenant_id}/users/{uid}` (`None` also when the ids cannot name a
    /// document), cached.
    pub async fn membership(
        &self,
        tenant_id: &str,
        uid: &str,
    ) -> Result<Option<Membership>, Error> {
        let Ok(path) = paths::tenant_member(tenant_id, uid) else { return Ok(None) };
        self.memberships
            .get_or_load((tenant_id.to_owned(), uid.to_owned()), async { self.db.get(&path).await })
            .await
    }

    /// Drops the cached membership of `uid` in `tenant_id`, so the next
    /// [`Tenancy::membership`] reads Firestore: a refusal must not rest on an answer older than
    /// the user root that prompted it (provisioning writes both in one commit).
    pub async fn forget_membership(&self, tenant_id: &str, uid: &str) {
        self.memberships.invalidate(&(tenant_id.to_owned(), uid.to_owned())).await;
    }

    /// The user root `users/{uid}` (`None` also when the uid cannot name a document), cached.
    pub async fn user_root(&self, uid: &str) -> Result<Option<UserRoot>, Error> {
        let Ok(path) = paths::user(uid) else { return Ok(None) };
        self.roots.get_or_load(uid.to_owned(), async { self.db.get(&path).await }).await
    }

    // ---- writes -----------------------------------------------------------------------------

    /// Consumes the invitation for `email` on behalf of `uid`, finally, in a transaction: the
    /// first caller sets `consumed_by` and `consumed_at`; the same uid again gets the same
    /// answer (`first_time: false`; a reservation of theirs becomes final); any other uid gets
    /// [`ConsumeError::AlreadyConsumed`], unless the invitation was only reserved by another
    /// uid and that reservation lapsed. An expired invitation is not consumed.
    pub async fn consume_invitation(
        &self,
        email: &str,
        uid: &str,
    ) -> Result<Consumed, ConsumeError> {
        self.take_invitation(email, uid, None).await
    }

    /// Reserves the invitation for `email` for `uid` until `hold` from now: like
    /// [`consume_invitation`](Self::consume_invitation), but the consumption is only final once
    /// confirmed ([`confirm_invitation`](Self::confirm_invitation), or `consume_invitation` by
    /// the same uid). Taken before the user exists, so a sign-up that never produces a user
    /// does not use the invitation up: once the hold lapses, another uid may take it.
    pub async fn reserve_invitation(
        &self,
        email: &str,
        uid: &str,
        hold: chrono::TimeDelta,
    ) -> Result<Consumed, ConsumeError> {
        self.take_invitation(email, uid, Some(hold)).await
    }

    /// Makes `uid`'s reservation of the invitation for `email` final. `Ok(false)` when there is
    /// nothing to confirm (no invitation, not reserved by `uid`, or already final).
    pub async fn confirm_invitation(&self, email: &str, uid: &str) -> Result<bool, Error> {
        let Ok(path) = paths::invitation(&invitation_id(email)) else { return Ok(false) };
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut doc) = tx.get::<InvitationDoc>(path).await? else {
                        return Ok(false);
                    };
                    if doc.consumed_by.as_deref() != Some(uid) || doc.reserved_until.is_none() {
                        return Ok(false);
                    }
                    doc.reserved_until = None;
                    tx.set(path, &doc)?;
                    Ok(true)
                })
            })
            .await
    }

    async fn take_invitation(
        &self,
        email: &str,
        uid: &str,
        hold: Option<chrono::TimeDelta>,
    ) -> Result<Consumed, ConsumeError> {
        if uid.is_empty() {
            return Err(Error::Invalid("consuming an invitation needs a uid".to_owned()).into());
        }
        let Ok(path) = paths::invitation(&invitation_id(email)) else {
            return Err(ConsumeError::NotFound);
        };
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let now = Utc::now();
                    let mut doc: InvitationDoc =
                        tx.get(path).await?.ok_or(ConsumeError::NotFound)?;
                    match doc.consumed_by.as_deref() {
                        Some(by) if by == uid => {
                            if hold.is_none() && doc.reserved_until.is_some() {
                                doc.reserved_until = None;
                                tx.set(path, &doc)?;
                            }
                            return Ok(Consumed { invitation: doc.to_domain(), first_time: false });
                        }
                        Some(by) => {
                            let lapsed = doc.reserved_until.is_some_and(|t| to_chrono(t) <= now);
                            if !lapsed {
                                return Err(ConsumeError::AlreadyConsumed { by: by.to_owned() });
                            }
                            tracing::info!(
                                previous = by,
                                "taking over an invitation whose reservation lapsed unconfirmed"
                            );
                        }
                        None => {}
                    }
                    let expires_at = to_chrono(doc.expires_at);
                    if expires_at <= now {
                        return Err(ConsumeError::Expired { expires_at });
                    }
                    doc.consumed_by = Some(uid.to_owned());
                    doc.consumed_at = Some(to_instant(now));
                    doc.reserved_until = hold.map(|hold| to_instant(now + hold));
                    tx.set(path, &doc)?;
                    Ok(Consumed { invitation: doc.to_domain(), first_time: true })
                })
            })
            .await
    }

    /// Creates or replaces the invitation for `email` (pending again, even if it was consumed).
    pub async fn put_invitation(
        &self,
        email: &str,
        invitation: &NewInvitation,
    ) -> Result<(), Error> {
        let path = paths::invitation(&invitation_id(email))?;
        let doc = InvitationDoc {
            tenant_id: invitation.tenant_id.clone(),
            role: invitation.role,
            expires_at: to_instant(invitation.expires_at),
            invited_by: invitation.invited_by.clone(),
            created_at: Some(to_instant(Utc::now())),
            consumed_by: None,
            consumed_at: None,
            reserved_until: None,
        };
        self.db.set(&path, &doc).await
    }

    /// Claims (or releases, with `verified: false`) a company domain for a tenant.
    pub async fn put_domain_claim(&self, domain: &str, claim: &DomainClaim) -> Result<(), Error> {
        let domain = domain.trim().to_ascii_lowercase();
        let path = paths::tenant_domain(&domain)?;
        self.db.set(&path, claim).await?;
        self.domains.invalidate(&domain).await;
        Ok(())
    }

    /// Replaces the blocked email domains of `config/signup`.
    pub async fn put_blocked_domains(&self, domains: &[String]) -> Result<(), Error> {
        let path = paths::config(SIGNUP_CONFIG_DOC)?;
        let doc = SignupConfigDoc { blocked_domains: domains.to_vec() };
        self.db.set(&path, &doc).await?;
        self.blocked.invalidate(&()).await;
        Ok(())
    }

    /// The path of the invitation document for `email`.
    pub fn invitation_path(email: &str) -> Result<DocPath, Error> {
        Ok(paths::invitation(&invitation_id(email))?)
    }
}

fn to_instant(time: DateTime<Utc>) -> FirestoreInstant {
    FirestoreInstant::from_microsecond(time.timestamp_micros()).unwrap_or(FirestoreInstant::MAX)
}

fn to_chrono(instant: FirestoreInstant) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(instant.as_microsecond()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A `moka` cache with a time-to-live, or no cache at all when the TTL is zero.
#[derive(Clone)]
struct TtlCache<K, V> {
    inner: Option<moka::future::Cache<K, V>>,
}

impl<K, V> TtlCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(config: CacheConfig) -> Self {
        let inner = (!config.ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.capacity)
                .time_to_live(config.ttl)
                .build()
        });
        Self { inner }
    }

    /// The cached value, or the loaded one (stored on success; concurrent misses on one key
    /// share a single load).
    async fn get_or_load(
        &self,
        key: K,
        load: impl Future<Output = Result<V, Error>>,
    ) -> Result<V, Error> {
        match &self.inner {
            None => load.await,
            Some(cache) => cache.try_get_with(key, load).await.map_err(unshare),
        }
    }

    async fn invalidate(&self, key: &K) {
        if let Some(cache) = &self.inner {
            cache.invalidate(key).await;
        }
    }

    fn invalidate_all(&self) {
        if let Some(cache) = &self.inner {
            cache.invalidate_all();
        }
    }
}

/// The error of a coalesced load, which every waiter receives behind an `Arc`.
fn unshare(error: Arc<Error>) -> Error {
    match Arc::try_unwrap(error) {
        Ok(error) => error,
        Err(shared) => match shared.as_ref() {
            Error::Path(e) => Error::Path(e.clone()),
            Error::Unreachable(m) => Error::Unreachable(m.clone()),
            Error::Rpc { code, message } => Error::Rpc { code: *code, message: message.clone() },
            Error::Encode { path, message } => {
                Error::Encode { path: path.clone(), message: message.clone() }
            }
            Error::Decode { path, message } => {
                Error::Decode { path: path.clone(), message: message.clone() }
            }
            Error::Invalid(m) => Error::Invalid(m.clone()),
            Error::LeaseLost { key } => Error::LeaseLost { key: key.clone() },
            Error::MembershipRemoved { tenant_id, uid } => {
                Error::MembershipRemoved { tenant_id: tenant_id.clone(), uid: uid.clone() }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitation_ids_are_lower_cased_and_trimmed() {
        assert_eq!(invitation_id("  Ada@Example.COM "), "ada@example.com");
    }

    #[test]
    fn user_root_onboarding_needs_the_flag_and_the_tenant() {
        let root = UserRoot { tenant_id: Some("t1".into()), onboarded: true };
        assert!(root.onboarded_into("t1"));
        assert!(!root.onboarded_into("t2"));
        let pending = UserRoot { tenant_id: Some("t1".into()), onboarded: false };
        assert!(!pending.onboarded_into("t1"));
    }

    #[test]
    fn unknown_tenant_statuses_stay_readable() {
        let s: TenantStatus = serde_json::from_str("\"archived\"").unwrap();
        assert_eq!(s, TenantStatus::Unknown);
        let s: TenantStatus = serde_json::from_str("\"suspended\"").unwrap();
        assert_eq!(s, TenantStatus::Suspended);
    }

    #[test]
    fn shared_errors_keep_their_classification() {
        let shared = Arc::new(Error::Unreachable("down".to_owned()));
        let _keep = shared.clone();
        let error = unshare(shared);
        assert!(error.is_retryable());
    }
}
