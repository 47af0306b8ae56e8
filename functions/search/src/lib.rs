//! search: the `searchProducts` and `suggest` callables (Firebase callable protocol, signed-in
//! callers), answered from a search replica of the Firestore catalogue.
//!
//! Two tiers behind one interface ([`engine::Engine`]), chosen by `HEARTH_SEARCH_BACKEND`:
//! - `embedded` (default): a `tantivy` index in this instance's memory ([`embedded`]), built
//!   from a Firestore snapshot at start-up and kept current by the listen stream ([`sync`]);
//!   every instance is a read replica of Firestore and depends on no other;
//! - `typesense`: the same queries over Typesense's HTTP API ([`typesense`]), which this
//!   instance also keeps in sync (guarded upserts, so several instances may write at once).
//!
//! Why its own function rather than the `api`: an instance holds the whole index in memory and
//! spends its start-up building it; the api's instances stay small and start in milliseconds.
//!
//! Start-up: the server answers `/healthz` at once; the callables answer `UNAVAILABLE`
//! (retryable) until the replica has caught up. Identical queries within
//! `HEARTH_SEARCH_CACHE_TTL_SECS` come from [`cache`]; a product change drops the entries it
//! touches. Rate limits: `searchProducts` per user in Firestore (`store::ratelimit`, shared by
//! every instance); `suggest`, called on every keystroke, per user in memory.

pub mod cache;
pub mod embedded;
pub mod engine;
pub mod sync;
pub mod typesense;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::post;
use domain::ratelimit::{Limit, Verdict};
use domain::search::{SearchInput, SuggestInput};
use gcp::callable::Code;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};
use runtime::auth::{FirebaseAuth, FirebaseCaller};
use runtime::trigger::{Callable, CallableResult};
use runtime::{BaseConfig, Built, ConfigError, Env, Error, LogDeadLetters, Server};
use secrecy::SecretString;
use serde::Serialize;
use store::ratelimit::RateLimiter;
use store::search::CatalogueFeed;
use store::{Db, DbConfig};

use crate::cache::QueryCache;
use crate::engine::{Engine, Found, Suggestion};

/// Which tier answers.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The in-memory tantivy replica.
    Embedded,
    /// A Typesense cluster.
    Typesense {
        /// `HEARTH_TYPESENSE_URL`, e.g. `https://search.example.com:443`.
        url: String,
        /// `HEARTH_TYPESENSE_API_KEY` (a secret).
        api_key: SecretString,
    },
}

/// Everything the function needs, validated at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub base: BaseConfig,
    pub db: DbConfig,
    pub backend: Backend,
    /// `HEARTH_SEARCH_CACHE_TTL_SECS` (default 30; 0 turns the cache off).
    pub cache_ttl: Duration,
    /// `HEARTH_SEARCH_RATE_LIMIT` (default `120/60`): `searchProducts` calls per user.
    pub search_limit: Limit,
    /// `HEARTH_SUGGEST_PER_SEC` (default 10, bursts of 3x): `suggest` calls per user and second.
    pub suggest_per_sec: NonZeroU32,
    /// `HEARTH_SEARCH_SNAPSHOT_PAGE` (default 500, 1 to 1000): documents per snapshot page.
    pub snapshot_page: u32,
}

impl Config {
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let backend = match env.string_or("HEARTH_SEARCH_BACKEND", "embedded").as_str() {
            "embedded" => Backend::Embedded,
            "typesense" => Backend::Typesense {
                url: env.required("HEARTH_TYPESENSE_URL")?,
                api_key: env.required_secret("HEARTH_TYPESENSE_API_KEY")?,
            },
            other => {
                return Err(ConfigError::invalid(
                    "HEARTH_SEARCH_BACKEND",
                    "embedded or typesense",
                    other,
                ));
            }
        };
        let cache_ttl = env.secs_or("HEARTH_SEARCH_CACHE_TTL_SECS", Duration::from_secs(30))?;
        let search_limit = match env.string("HEARTH_SEARCH_RATE_LIMIT") {
            None => Limit::per_secs(120, 60),
            Some(text) => Limit::parse(&text)
                .ok_or_else(|| ConfigError::invalid("HEARTH_SEARCH_RATE_LIMIT", "N/SECS", &text))?,
        };
        let suggest_per_sec: u32 =
            env.parse_or("HEARTH_SUGGEST_PER_SEC", "a positive number of calls", 10)?;
        let suggest_per_sec = NonZeroU32::new(suggest_per_sec)
            .ok_or_else(|| ConfigError::invalid("HEARTH_SUGGEST_PER_SEC", "1 or more", "0"))?;
        let snapshot_page: u32 =
            env.parse_or("HEARTH_SEARCH_SNAPSHOT_PAGE", "1 to 1000 documents", 500)?;
        if !(1..=1000).contains(&snapshot_page) {
            return Err(ConfigError::invalid(
                "HEARTH_SEARCH_SNAPSHOT_PAGE",
                "1 to 1000",
                &snapshot_page.to_string(),
            ));
        }
        Ok(Self { base, db, backend, cache_ttl, search_limit, suggest_per_sec, snapshot_page })
    }
}

/// Shared, cheap-to-clone state.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<dyn Engine>,
    pub cache: QueryCache,
    pub status: Arc<sync::Status>,
    firebase_auth: FirebaseAuth,
    limiter: RateLimiter,
    search_limit: Limit,
    suggest_limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("ready", &self.status.is_ready())
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for FirebaseAuth {
    fn from_ref(state: &AppState) -> Self {
        state.firebase_auth.clone()
    }
}

impl AppState {
    /// Builds the state and starts the sync in the background (no I/O before it returns).
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::new(config.db.clone());
        let engine: Arc<dyn Engine> = match &config.backend {
            Backend::Embedded => Arc::new(embedded::Embedded::new()?),
            Backend::Typesense { url, api_key } => {
                Arc::new(typesense::Typesense::new(url, api_key.clone())?)
            }
        };
        let cache = QueryCache::new(config.cache_ttl);
        let status = Arc::new(sync::Status::default());
        sync::spawn(
            CatalogueFeed::new(&db, config.snapshot_page),
            engine.clone(),
            cache.clone(),
            status.clone(),
        );
        let quota = Quota::per_second(config.suggest_per_sec)
            .allow_burst(config.suggest_per_sec.saturating_mul(NonZeroU32::MIN.saturating_add(2)));
        Ok(Self {
            engine,
            cache,
            status,
            firebase_auth: FirebaseAuth::from_config(&config.base)?,
            limiter: RateLimiter::new(&db),
            search_limit: config.search_limit,
            suggest_limiter: Arc::new(Governor::keyed(quota)),
        })
    }
}

/// The function built from `env`: config, state (the sync starts here), and its routes inside a
/// [`Server`] (log-only dead letters: callers get every answer).
#[expect(clippy::unused_async, reason = "every function's builder has this async signature")]
pub async fn build(name: &str, env: &Env) -> anyhow::Result<Built<Config, AppState>> {
    let config = Config::load(BaseConfig::load(env)?, env)?;
    let state = AppState::build(&config)?;
    let router =
        Server::new(name, &config.base, Arc::new(LogDeadLetters)).router(app(state.clone()));
    Ok(Built { config, state, router })
}

/// [`build`]'s fully layered router, what `main.rs` and devstack serve.
pub async fn router(name: &str, env: &Env) -> anyhow::Result<Router> {
    Ok(build(name, env).await?.router)
}

/// The callables, with the callable error shape.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/searchProducts", post(search_products))
        .route("/suggest", post(suggest))
        .layer(runtime::callable_style())
        .with_state(state)
}

fn invalid(error: &domain::search::InvalidQuery) -> Error {
    Error::reject(Code::InvalidArgument, error.to_string())
}

fn ready(state: &AppState) -> Result<(), Error> {
    if state.status.is_ready() {
        Ok(())
    } else {
        Err(Error::retry(anyhow!("the search replica is still catching up with Firestore")))
    }
}

async fn search_products(
    State(state): State<AppState>,
    FirebaseCaller(user): FirebaseCaller,
    Callable(input): Callable<SearchInput>,
) -> Result<CallableResult<Found>, Error> {
    let query = input.validate().map_err(|e| invalid(&e))?;
    let verdict = state
        .limiter
        .hit("searchProducts", &user.uid, state.search_limit, chrono::Utc::now())
        .await
        .map_err(|e| Error::for_caller(e, "counting the call", Code::Internal, "Search failed."))?;
    if let Verdict::Limited { retry_after } = verdict {
        return Err(Error::retry_after(
            anyhow!("{} is over the searchProducts limit", user.uid),
            retry_after,
        ));
    }
    ready(&state)?;
    let now = Instant::now();
    let found = match state.cache.get(&query, now) {
        Some(found) => found,
        None => {
            let found = Arc::new(state.engine.search(&query).await.map_err(Error::retry)?);
            state.cache.put(query, found.clone(), now);
            found
        }
    };
    Ok(CallableResult(found.as_ref().clone()))
}

/// `suggest`'s answer.
#[derive(Debug, Serialize)]
struct Suggestions {
    suggestions: Vec<Suggestion>,
}

async fn suggest(
    State(state): State<AppState>,
    FirebaseCaller(user): FirebaseCaller,
    Callable(input): Callable<SuggestInput>,
) -> Result<CallableResult<Suggestions>, Error> {
    let query = input.validate().map_err(|e| invalid(&e))?;
    if let Err(not_until) = state.suggest_limiter.check_key(&user.uid) {
        let wait = not_until
            .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        return Err(Error::retry_after(
            anyhow!("{} is over the suggest limit", user.uid),
            wait.max(Duration::from_secs(1)),
        ));
    }
    ready(&state)?;
    let suggestions = state.engine.suggest(&query).await.map_err(Error::retry)?;
    Ok(CallableResult(Suggestions { suggestions }))
}
