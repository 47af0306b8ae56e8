//! The hook's shared state: one token verifier per endpoint (sharing one key cache), the
//! tenancy repository with its caches, the Pub/Sub bus, and the configured limits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bus::{Bus, BusConfig};
use gcp::blocking::{BlockingConfig, BlockingVerifier};
use gcp::jwks::JwksCache;
use store::Db;
use store::tenancy::{CacheConfig, Tenancy};

use crate::config::{BEFORE_CREATE_PATH, BEFORE_SIGN_IN_PATH, Config};

/// Cheap to clone: every clone shares the caches and connections.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) before_create: BlockingVerifier,
    pub(crate) before_sign_in: BlockingVerifier,
    pub(crate) keys: JwksCache,
    pub(crate) tenancy: Tenancy,
    pub(crate) bus: Bus,
    /// `HEARTH_BLOCKED_EMAIL_DOMAINS`, merged with `config/signup` on every decision.
    pub(crate) blocked_domains: Vec<String>,
    pub(crate) publish_deadline: Duration,
    /// `HEARTH_INVITATION_HOLD_SECS`: how long an invitation reservation waits for the user.
    pub(crate) invitation_hold: chrono::TimeDelta,
}

impl AppState {
    /// Builds the state without touching the network (Firestore and Pub/Sub connect on first
    /// use), then starts a background warm-up (signing keys, Firestore connection, blocked
    /// domains) so the first sign-up does not pay for it.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let keys = JwksCache::new(config.base.securetoken_jwks_url.clone());
        let verifier = |path: &str| {
            let blocking = BlockingConfig::new(
                config.project_id.clone(),
                config.audience_for(path),
                config.base.auth_emulator(),
            );
            BlockingVerifier::new(keys.clone(), blocking)
        };
        let tenancy = Tenancy::with_cache(
            &Db::new(config.db.clone()),
            CacheConfig::with_ttl(config.cache_ttl),
        );
        let mut bus_config =
            BusConfig::new(config.project_id.clone(), config.base.pubsub_emulator_host.clone());
        // One sign-up is one message: send it at once instead of waiting to fill a batch.
        bus_config.batch_delay = Duration::ZERO;
        let bus = Bus::connect(bus_config).await.context("setting up the Pub/Sub publisher")?;
        let state = Self {
            inner: Arc::new(Inner {
                before_create: verifier(BEFORE_CREATE_PATH),
                before_sign_in: verifier(BEFORE_SIGN_IN_PATH),
                keys,
                tenancy,
                bus,
                blocked_domains: config.blocked_domains.clone(),
                publish_deadline: config.publish_deadline,
                invitation_hold: chrono::TimeDelta::from_std(config.invitation_hold)
                    .unwrap_or(domain::tenancy::RESERVATION_HOLD),
            }),
        };
        let warming = state.clone();
        tokio::spawn(async move { warming.warm_up().await });
        Ok(state)
    }

    /// The tenancy repository (and its caches).
    pub fn tenancy(&self) -> &Tenancy {
        &self.inner.tenancy
    }

    /// Fetches the signing keys, connects to Firestore and loads the blocked domains, at the
    /// same time. Failures are only logged: requests retry whatever is still missing.
    pub async fn warm_up(&self) {
        let keys = async {
            if let Err(error) = self.inner.keys.refresh().await {
                tracing::info!(error = %format_args!("{error:#}"), "warm-up: signing keys not fetched yet");
            }
        };
        let lookups = async {
            if let Err(error) = self.inner.tenancy.blocked_domains().await {
                tracing::info!(error = %format_args!("{error:#}"), "warm-up: Firestore not reachable yet");
            }
        };
        tokio::join!(keys, lookups);
    }
}
