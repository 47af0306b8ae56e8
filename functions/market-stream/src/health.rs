//! Stream health: the scheduled job that marks streams silent or recovered, and
//! `GET /health/streams`.
//!
//! `POST /jobs/stream-health` (Cloud Scheduler, Google OIDC) walks every configured stream: in
//! one transaction per stream it reads `stream_health/{streamId}`, applies
//! `domain::market::health::transition` and stores a transition with a pending alert; then it
//! publishes the alert on `stream-alerts` and clears it. A transition is stored once (the next
//! run sees the new status), so each silence and each recovery is announced once; an alert whose
//! publication failed stays pending, is published by the next run, and this run answers 503 so
//! Scheduler retries. Subscribers can deduplicate on (`stream_id`, `kind`, `detected_at`).
//!
//! `GET /health/streams` (open, like the other health routes: it shows stream ids and times
//! only) reads every stream's health in one round trip and judges silence live with the same
//! rule; it answers 503 while a critical stream is silent.

use anyhow::anyhow;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bus::Attributes;
use chrono::Utc;
use domain::market::health::{Transition, is_silent, transition};
use domain::market::{Priority, StreamStatus};
use domain::messages::{StreamAlert, StreamAlertKind, StreamAlerts, Version};
use gcp::callable::Code;
use gcp::error::PublicError;
use gcp::scheduler::SchedulerRequest;
use http::{HeaderMap, StatusCode};
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde_json::{Value, json};

use crate::AppState;

/// The job's name: `POST /jobs/stream-health`.
pub const JOB: &str = "stream-health";

pub(crate) async fn run_job(
    State(state): State<AppState>,
    GoogleCaller(caller): GoogleCaller,
    Path(job): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    if job != JOB {
        return Err(Error::reject(Code::NotFound, format!("no job `{job}` (only `{JOB}`)")));
    }
    if SchedulerRequest::is_scheduler_request(&headers) {
        let scheduled = SchedulerRequest::from_headers(&headers)
            .map_err(|e| Error::reject(e.code(), e.public_message()))?;
        if scheduled.job_id != JOB {
            return Err(Error::reject(
                Code::InvalidArgument,
                format!("Scheduler job `{}` does not match the path job `{JOB}`", scheduled.job_id),
            ));
        }
    } else {
        tracing::info!(
            caller = caller.as_ref().map(|c| c.email.as_str()),
            "stream-health run by hand"
        );
    }
    let now = Utc::now();
    let grace = state.config.grace;
    let mut alerts = Vec::new();
    let mut unsent = 0;
    for (key, priority) in state.config.streams.iter() {
        let g = key.granularity;
        let (record, pending) = state
            .market
            .check_health(key, *priority, now, |record| {
                match transition(&record.facts(), g, grace, now) {
                    Transition::Stay => None,
                    Transition::GoSilent => Some(StreamAlertKind::Silent),
                    Transition::Recover => Some(StreamAlertKind::Recovered),
                }
            })
            .await
            .map_err(|e| Error::for_event(e, "checking a stream's health", None))?;
        let Some(pending) = pending else { continue };
        let alert = StreamAlert {
            v: Version,
            stream_id: key.id(),
            instrument: key.instrument.clone(),
            granularity: key.granularity.to_string(),
            priority: priority.to_string(),
            kind: pending.kind,
            last_candle_at: record.last_candle_at,
            detected_at: pending.detected_at,
        };
        match state.bus.publish::<StreamAlerts>(&alert, Attributes::new()).await {
            Ok(_) => {
                state.metrics.alert(&key.id(), pending.kind);
                if let Err(e) = state.market.alert_sent(key, &pending).await {
                    // Published but still pending: the next run publishes it again (a
                    // duplicate with the same detected_at, which subscribers deduplicate).
                    tracing::warn!(error = %e, stream = %key, "could not clear a sent alert");
                }
                tracing::warn!(stream = %key, kind = ?pending.kind, "stream alert published");
                alerts.push(json!({"stream_id": key.id(), "kind": pending.kind, "detected_at": pending.detected_at}));
            }
            Err(e) => {
                unsent += 1;
                tracing::error!(error = %e, stream = %key, "stream alert not published; pending for the next run");
            }
        }
    }
    if unsent > 0 {
        return Err(Error::retry(anyhow!("{unsent} stream alerts could not be published")));
    }
    Ok(Json(json!({"job": JOB, "streams": state.config.streams.len(), "alerts": alerts})))
}

pub(crate) async fn streams(State(state): State<AppState>) -> Result<Response, Error> {
    let keys: Vec<_> = state.config.streams.keys().cloned().collect();
    let records = state.market.health(&keys).await.map_err(|e| {
        Error::for_caller(e, "reading stream health", Code::Internal, "stream health unavailable")
    })?;
    let now = Utc::now();
    let mut critical_silent = Vec::new();
    let mut list = Vec::new();
    for (key, record) in keys.iter().zip(records) {
        let priority = state.config.streams[key];
        let silent = record.as_ref().is_some_and(|r| {
            r.status == StreamStatus::Silent
                || is_silent(
                    r.last_arrival_at,
                    r.watched_since,
                    key.granularity,
                    state.config.grace,
                    now,
                )
        });
        if silent && priority == Priority::Critical {
            critical_silent.push(key.id());
        }
        list.push(json!({
            "stream_id": key.id(),
            "priority": priority,
            "silent": silent,
            "seen": record.is_some(),
            "health": record,
        }));
    }
    let status =
        if critical_silent.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(json!({"critical_silent": critical_silent, "streams": list}))).into_response())
}
