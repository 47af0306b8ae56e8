//! pulse: the trading product's heartbeat. Every minute Cloud Scheduler calls `POST /jobs/pulse`;
//! the job pages every tenant's strategies and hands them out as `pulse-tasks` messages, a few
//! strategies each, so a minute of thousands of users runs on many instances. Each task runs
//! every (assigned user, strategy) of its page: the user's open shadow trade is walked over the
//! candles it has not seen (marked to market, or closed on a barrier and appended to the
//! tenant's ledger), then the strategy may enter on the stream's latest features.
//!
//! - `POST /jobs/pulse`: Scheduler (Google OIDC); once per minute through the ledger.
//! - `POST /pubsub/pulse-tasks`: Pub/Sub push (Google OIDC); once per message through the
//!   ledger; each step's writes are guarded (see `store::pulse`), so a retried or overlapping
//!   minute changes nothing twice.
//!
//! This crate only wires: the rules are `domain::pulse`, the reads and writes `store::pulse`,
//! the wire formats `gcp`, publishing `bus`, errors become responses in `runtime`.

mod config;
mod job;
mod run;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::post;
use bus::{Bus, BusConfig};
use domain::ramp::{RampLimiter, RampPolicy};
use runtime::auth::PushAuth;
use runtime::{BaseConfig, Built, DeadLetterSink, Env, Server};
use store::pulse::Pulse;
use store::{Db, DeadLetters, Ledger};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use config::{Config, DEFAULT_LEASE};
pub use job::SCOPE as JOB_SCOPE;
pub use tasks::SCOPE as TASK_SCOPE;

/// The body limit of `POST /pubsub/pulse-tasks`.
pub const TASK_BODY_LIMIT: usize = 256 * 1024;

/// The instance's share of the write ramp: every pulse write takes its tokens here first (on
/// tokio's clock, so a test with paused time drives it).
#[derive(Debug, Clone)]
pub struct Pacer {
    started: Instant,
    limiter: Arc<Mutex<RampLimiter>>,
}

impl Pacer {
    /// A full bucket under `ramp`.
    pub fn new(ramp: RampPolicy) -> Self {
        Self { started: Instant::now(), limiter: Arc::new(Mutex::new(RampLimiter::new(ramp))) }
    }

    /// Waits until `writes` tokens are granted.
    pub async fn take(&self, writes: u32) {
        loop {
            let wait = {
                let mut limiter = self.limiter.lock().await;
                match limiter.try_acquire(self.started.elapsed(), writes) {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Shared, cheap-to-clone state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    db: Db,
    ledger: Ledger,
    dead_letters: DeadLetters,
    push_auth: PushAuth,
    bus: Bus,
    pulse: Pulse,
    pacer: Pacer,
    task_strategies: usize,
    concurrency: usize,
    jitter_write_limit: f64,
    lease: Duration,
}

impl AppState {
    /// Builds the state (Firestore connects on first use; the Pub/Sub client is set up here).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::new(config.db.clone());
        let project = config.db.project_id.clone();
        let bus = Bus::connect(BusConfig::new(project, config.base.pubsub_emulator_host.clone()))
            .await
            .context("setting up the Pub/Sub publisher")?;
        Ok(Self {
            ledger: Ledger::new(&db),
            dead_letters: DeadLetters::new(&db),
            pulse: Pulse::new(&db),
            db,
            push_auth: config.push_auth.clone(),
            bus,
            pacer: Pacer::new(config.ramp),
            task_strategies: config.task_strategies,
            concurrency: config.concurrency,
            jitter_write_limit: config.jitter_write_limit,
            lease: config.lease,
        })
    }

    /// Where permanent failures are recorded: `dead_letters/{id}` in Firestore.
    pub fn dead_letters(&self) -> Arc<dyn DeadLetterSink> {
        Arc::new(self.dead_letters.clone())
    }

    /// The Firestore handle.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl FromRef<AppState> for PushAuth {
    fn from_ref(state: &AppState) -> Self {
        state.push_auth.clone()
    }
}

/// The function built from `env`: config, state, and its routes inside a [`Server`] (Firestore
/// dead letters, `dead_letters/{id}`: its tasks are redelivered until acknowledged).
/// `main.rs` (through `runtime::run`), devstack's registry and the test harnesses all build it
/// here.
pub async fn build(name: &str, env: &Env) -> anyhow::Result<Built<Config, AppState>> {
    let config = Config::load(BaseConfig::load(env)?, env)?;
    let state = AppState::build(&config).await?;
    let router = Server::new(name, &config.base, state.dead_letters()).router(app(state.clone()));
    Ok(Built { config, state, router })
}

/// [`build`]'s fully layered router, what `main.rs` and devstack serve.
pub async fn router(name: &str, env: &Env) -> anyhow::Result<Router> {
    Ok(build(name, env).await?.router)
}

/// The function's routes (without the runtime layers: wrap with `runtime::Server`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/jobs/{job}", post(job::run_job))
        // A task names at most 100 strategies (a few KiB); anything near this limit is not one.
        .route(
            "/pubsub/pulse-tasks",
            post(tasks::pulse_tasks).layer(runtime::limits::body_limit(TASK_BODY_LIMIT)),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::pulse::start_jitter;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    /// A simulated pulse of 2,000 users, each writing a step of three documents after its start
    /// jitter, on tokio's paused clock: every second of the test's own clock stays within the
    /// instance's share of the ramp (plus the bucket's first second, which starts full).
    #[tokio::test(start_paused = true)]
    async fn a_2000_user_pulse_stays_within_the_ramp_in_every_second() {
        let users = 2_000u64;
        let policy = RampPolicy::default().shared_by(4);
        let pacer = Pacer::new(policy);
        let start = Instant::now();
        let mut draws = rand::rngs::StdRng::seed_from_u64(7);
        let handles: Vec<_> = (0..users)
            .map(|_| {
                let pacer = pacer.clone();
                let jitter = start_jitter(users, 500.0, rand::Rng::random::<f64>(&mut draws));
                tokio::spawn(async move {
                    tokio::time::sleep(jitter).await;
                    pacer.take(3).await;
                    Instant::now()
                })
            })
            .collect();
        let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
        for handle in handles {
            let at = handle.await.unwrap();
            *per_second.entry((at - start).as_secs()).or_default() += 3;
        }
        let rate = policy.allowed_rate(Duration::ZERO);
        assert_eq!(rate, 125.0);
        let total: u64 = per_second.values().sum();
        assert_eq!(total, users * 3);
        for (second, writes) in &per_second {
            // The bucket starts full (one second of the rate) and refills at the rate.
            let allowed = if *second == 0 { 2.0 * rate } else { rate + 3.0 };
            assert!((*writes as f64) <= allowed, "second {second}: {writes} writes > {allowed}");
        }
        // 6,000 writes at 125/s take 47-48 s of the test's clock, not a burst.
        assert!(per_second.keys().max().copied().unwrap_or(0) >= 46, "{per_second:?}");
    }
}
