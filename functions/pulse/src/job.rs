//! `POST /jobs/pulse`: the minute's fan-out. Cloud Scheduler calls it every minute (an
//! operator may call it by hand with a Google OIDC token of an allowed caller).
//!
//! ```text
//! runtime::auth::GoogleCaller          missing / forged token -> 401, other caller -> 403
//! the job name                         not `pulse` -> 404; Scheduler's job header must match
//! the minute                           Scheduler's schedule time (else now), seconds dropped
//! Ledger::run_once (the minute)        a second run of the minute -> replayed, nothing published
//! store::pulse::strategies_page        every tenant's strategies, in pages of 300
//! pulse-tasks                          a message per `task_strategies` strategies, with the
//!                                      minute's number of (user, strategy) runs for the jitter
//! ```
//! A failure part-way releases the minute; the retry publishes every page again, and the
//! tasks already run are harmless to run again (each step's writes are guarded).

use anyhow::anyhow;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bus::Attributes;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::messages::{PulseTask, PulseTasks, StrategyRef, Version};
use domain::pulse::minute_of;
use gcp::callable::Code;
use gcp::error::PublicError as _;
use gcp::scheduler::SchedulerRequest;
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde_json::{Value, json};
use store::ledger::Outcome;

use crate::AppState;

/// The idempotency scope of pulse runs (the key is the minute).
pub const SCOPE: &str = "jobs:pulse";

/// Strategies read per query.
const READ_PAGE: u32 = 300;

pub(crate) async fn run_job(
    State(state): State<AppState>,
    GoogleCaller(caller): GoogleCaller,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    if job != "pulse" {
        return Err(Error::reject(
            Code::NotFound,
            format!("no job `{job}` here (the only job is `pulse`)"),
        ));
    }
    let mut at = Utc::now();
    if SchedulerRequest::is_scheduler_request(&headers) {
        let scheduled = SchedulerRequest::from_headers(&headers)
            .map_err(|e| Error::reject(e.code(), e.public_message()))?;
        if scheduled.job_id != job {
            return Err(Error::reject(
                Code::InvalidArgument,
                format!("Scheduler job `{}` does not match the path job `{job}`", scheduled.job_id),
            ));
        }
        at = scheduled.schedule_time.unwrap_or(at);
    } else {
        tracing::info!(caller = caller.as_ref().map(|c| c.email.as_str()), "pulse run by hand");
    }
    let minute = minute_of(at);
    let key = minute.to_rfc3339_opts(SecondsFormat::Secs, true);
    let outcome = state
        .ledger
        .run_once(SCOPE, &key, &key, state.lease, || fan_out(&state, minute))
        .await
        .map_err(|e| e.or_ledger(|e| Error::for_event(e, "the pulse job", None)))?;
    match outcome {
        Outcome::Ran(report) => Ok(Json(report)),
        Outcome::Replayed(report) => Ok(Json(json!({ "replayed": true, "first_run": report }))),
        Outcome::Busy { retry_after } => {
            Err(Error::busy(anyhow!("the pulse of {key} is running elsewhere"), retry_after))
        }
        Outcome::Conflict => Err(Error::reject(
            Code::Internal,
            "The pulse ledger is inconsistent; the error was logged.",
        )),
    }
}

async fn fan_out(state: &AppState, minute: DateTime<Utc>) -> Result<Value, Error> {
    let mut refs: Vec<StrategyRef> = Vec::new();
    let mut runs: u64 = 0;
    let mut invalid: u64 = 0;
    let mut after: Option<String> = None;
    loop {
        let page = state
            .pulse
            .strategies_page(after.as_deref(), READ_PAGE)
            .await
            .map_err(|e| Error::for_event(e, "reading strategies", None))?;
        for stored in page.strategies {
            match stored.strategy {
                Ok(strategy) => {
                    runs += strategy.assigned_uids.len() as u64;
                    refs.push(stored.at);
                }
                Err(reason) => {
                    invalid += 1;
                    tracing::warn!(tenant_id = %stored.at.tenant_id, strategy_id = %stored.at.strategy_id, %reason, "strategy does not decode: skipped");
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut tasks = 0u64;
    for chunk in refs.chunks(state.task_strategies) {
        let task =
            PulseTask { v: Version, minute, runs_in_minute: runs, strategies: chunk.to_vec() };
        state.bus.publish::<PulseTasks>(&task, Attributes::new()).await.map_err(|error| {
            Error::retry(anyhow::Error::new(error).context("publishing a pulse task"))
        })?;
        tasks += 1;
    }
    tracing::info!(%minute, strategies = refs.len(), runs, tasks, invalid, "pulse fanned out");
    Ok(
        json!({ "minute": minute, "strategies": refs.len(), "runs": runs, "tasks": tasks, "invalid": invalid }),
    )
}
