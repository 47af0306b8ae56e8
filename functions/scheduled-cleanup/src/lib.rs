//! scheduled-cleanup: `POST /jobs/<job>` from Cloud Scheduler (Google OIDC-verified).
//!
//! Each job runs in bounded pages inside a budget below the Scheduler attempt deadline
//! (`domain::cleanup::Budget`), so it is safe to interrupt anywhere and to run twice at once
//! (every page is idempotent, see `store::cleanup`), never deletes anything that has not
//! expired, and answers with counts (`examined`, `changed`, `pages`, `remaining`) that also go
//! to the logs and to `/metrics` (`hearth_job_runs_total`, `hearth_job_documents_total`).
//! Jobs:
//! - `expire-reservations`: held reservations past their hold go back to stock, exactly once;
//! - `expire-feed-items`: feed entries past `ttlAt` (their `expiresAt`) are deleted (guarded
//!   deletes; vendor posts never carry `ttlAt`);
//! - `prune-idempotency`: expired idempotency records (Firestore TTL is the backstop);
//! - `aggregate-counters`: every sharded counter with a dirty shard gets its total written to
//!   its parent field.
//!
//! This crate only wires: the budget is `domain::cleanup`, the sweeps are `store::cleanup`,
//! `store::inventory` and `store::counters`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use domain::cleanup::{Budget, Job, Page, Report};
use gcp::callable::Code;
use gcp::error::PublicError as _;
use gcp::scheduler::SchedulerRequest;
use runtime::auth::{GoogleCaller, PushAuth};
use runtime::{BaseConfig, Built, ConfigError, Env, Error, LogDeadLetters, Metrics, Server};
use serde::Serialize;
use store::{Db, DbConfig};

/// Everything the function needs, validated at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub base: BaseConfig,
    pub db: DbConfig,
    /// Google OIDC of the Scheduler's service account (`HEARTH_OIDC_*`).
    pub push_auth: PushAuth,
    /// `HEARTH_CLEANUP_PAGE_SIZE` (default 300, at most 500): documents per page.
    pub page_size: u32,
    /// `HEARTH_CLEANUP_MAX_PAGES` (default 100): pages per run at most.
    pub max_pages: u64,
    /// `HEARTH_CLEANUP_ATTEMPT_DEADLINE_SECS` (default 180, Scheduler's default): a run works
    /// for at most 80% of it.
    pub attempt_deadline: Duration,
}

impl Config {
    pub fn load(base: BaseConfig, env: &Env) -> Result<Self, ConfigError> {
        let db = DbConfig::new(base.required_project()?, base.firestore_emulator_host.clone());
        let push_auth = PushAuth::from_config(&base)?;
        let page_size: u32 =
            env.parse_or("HEARTH_CLEANUP_PAGE_SIZE", "a page size of 1 to 500", 300)?;
        if !(1..=500).contains(&page_size) {
            return Err(ConfigError::invalid(
                "HEARTH_CLEANUP_PAGE_SIZE",
                "1 to 500",
                &page_size.to_string(),
            ));
        }
        let max_pages: u64 =
            env.parse_or("HEARTH_CLEANUP_MAX_PAGES", "a positive number of pages", 100)?;
        if max_pages == 0 {
            return Err(ConfigError::invalid(
                "HEARTH_CLEANUP_MAX_PAGES",
                "a positive number of pages",
                "0",
            ));
        }
        let attempt_deadline =
            env.positive_secs_or("HEARTH_CLEANUP_ATTEMPT_DEADLINE_SECS", Duration::from_secs(180))?;
        Ok(Self { base, db, push_auth, page_size, max_pages, attempt_deadline })
    }
}

/// Shared, cheap-to-clone state.
#[derive(Debug, Clone)]
pub struct AppState {
    db: Db,
    push_auth: PushAuth,
    page_size: u32,
    budget: Budget,
}

impl AppState {
    /// Builds the state; does no I/O.
    pub fn build(config: &Config) -> Self {
        Self {
            db: Db::new(config.db.clone()),
            push_auth: config.push_auth.clone(),
            page_size: config.page_size,
            budget: Budget::within(config.attempt_deadline, config.max_pages),
        }
    }
}

impl FromRef<AppState> for PushAuth {
    fn from_ref(state: &AppState) -> Self {
        state.push_auth.clone()
    }
}

/// The function built from `env`: config, state, and its routes inside a [`Server`] (log-only dead
/// letters: no job answers a permanent error; Scheduler runs the job again). `main.rs` (through
/// `runtime::run`), devstack's registry and the test harnesses all build it here.
#[expect(clippy::unused_async, reason = "every function's builder has this async signature")]
pub async fn build(name: &str, env: &Env) -> anyhow::Result<Built<Config, AppState>> {
    let config = Config::load(BaseConfig::load(env)?, env)?;
    let state = AppState::build(&config);
    let router =
        Server::new(name, &config.base, Arc::new(LogDeadLetters)).router(app(state.clone()));
    Ok(Built { config, state, router })
}

/// [`build`]'s fully layered router, what `main.rs` and devstack serve.
pub async fn router(name: &str, env: &Env) -> anyhow::Result<Router> {
    Ok(build(name, env).await?.router)
}

/// The routes.
pub fn app(state: AppState) -> Router {
    Router::new().route("/jobs/{job}", post(run_job)).with_state(state)
}

/// The answer to Scheduler (and to an operator running a job by hand).
#[derive(Debug, Serialize)]
struct Answer {
    job: Job,
    #[serde(flatten)]
    report: Report,
    elapsed_ms: u128,
}

async fn run_job(
    State(state): State<AppState>,
    metrics: Option<Extension<Metrics>>,
    GoogleCaller(caller): GoogleCaller,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Answer>, Error> {
    let job: Job = job
        .parse()
        .map_err(|e: domain::cleanup::UnknownJob| Error::reject(Code::NotFound, e.to_string()))?;
    if SchedulerRequest::is_scheduler_request(&headers) {
        let scheduled = SchedulerRequest::from_headers(&headers)
            .map_err(|e| Error::reject(e.code(), e.public_message()))?;
        if scheduled.job_id != job.as_str() {
            return Err(Error::reject(
                Code::InvalidArgument,
                format!("Scheduler job `{}` does not match the path job `{job}`", scheduled.job_id),
            ));
        }
        tracing::info!(%job, schedule_time = ?scheduled.schedule_time, "scheduled run");
    } else {
        tracing::info!(%job, caller = caller.as_ref().map(|c| c.email.as_str()), "run by hand");
    }
    let started = Instant::now();
    let mut report = Report::default();
    let mut slowest = Duration::ZERO;
    let mut cursor = Cursor::default();
    while state.budget.another_page(&report, started.elapsed(), slowest) {
        let page_started = Instant::now();
        let page = run_page(&state, job, &mut cursor).await?;
        slowest = slowest.max(page_started.elapsed());
        report.add(page);
    }
    tracing::info!(
        %job,
        examined = report.examined,
        changed = report.changed,
        pages = report.pages,
        remaining = report.remaining,
        "cleanup run finished"
    );
    if let Some(Extension(metrics)) = metrics {
        metrics.record_job(job.as_str(), report.examined, report.changed, report.remaining);
    }
    Ok(Json(Answer { job, report, elapsed_ms: started.elapsed().as_millis() }))
}

/// Where a run's next page starts, for the jobs that page with a cursor.
#[derive(Debug, Default)]
struct Cursor {
    expiry: store::cleanup::After,
    shard: Option<String>,
}

async fn run_page(state: &AppState, job: Job, cursor: &mut Cursor) -> Result<Page, Error> {
    let now = chrono::Utc::now();
    let result = match job {
        Job::PruneIdempotency | Job::ExpireFeedItems => {
            let sweep = if job == Job::PruneIdempotency {
                &store::cleanup::IDEMPOTENCY
            } else {
                &store::cleanup::FEED_ITEMS
            };
            store::cleanup::Sweeper::new(&state.db)
                .delete_expired_page(sweep, now, state.page_size, &mut cursor.expiry)
                .await
        }
        Job::AggregateCounters => {
            store::counters::Counters::new(&state.db)
                .aggregate_dirty_page(state.page_size, &mut cursor.shard)
                .await
        }
        Job::ExpireReservations => {
            // Each reservation is expired in its own guarded commit that returns its units
            // exactly once; a reservation another run expired first is not counted again.
            store::inventory::Inventory::new(&state.db)
                .sweep_expired(now, state.page_size)
                .await
                .map(|r| Page {
                    examined: r.examined as u64,
                    changed: r.expired as u64,
                    full: r.examined >= state.page_size as usize,
                })
        }
    };
    result.map_err(|error| {
        if error.is_retryable() {
            Error::retry(anyhow::Error::new(error).context("cleanup page"))
        } else {
            tracing::error!(error = %error, %job, "cleanup page failed");
            Error::reject(Code::Internal, "The cleanup run failed; the error was logged.")
        }
    })
}
