//! `POST /pulse-tasks`: one page of a minute's pulse.
//!
//! ```text
//! runtime::trigger::Push<PulseTasks>   forged / missing token -> 401
//!                                      undecodable (envelope, base64, JSON, version) -> permanent
//! Ledger::run_once (message id)        replayed -> 204 | busy -> 409 | conflict -> permanent
//! store::pulse::strategies             the page's strategies, one read
//! per strategy: the stream's latest features, one read
//! per (assigned user, strategy), `concurrency` at a time, each after its start jitter:
//!   crate::run::run_user               walk the open trade, maybe enter (guarded writes)
//! ```
//! A strategy that no longer exists, no longer decodes or fails validation is skipped (and
//! logged); a store failure of one user's run fails the delivery, which Pub/Sub redelivers: the
//! runs that already landed are then no-ops.

use std::collections::HashMap;

use anyhow::anyhow;
use axum::extract::State;
use domain::market::{Granularity, StreamKey};
use domain::messages::{PulseTask, PulseTasks};
use domain::pulse::EntrySignal;
use futures::StreamExt;
use http::StatusCode;
use runtime::Error;
use runtime::trigger::Push;
use serde_json::{Value, json};
use store::ledger::Outcome;

use crate::AppState;
use crate::run::{Counts, Job, run_user};

/// The idempotency scope of `pulse-tasks` deliveries (the key is the Pub/Sub message id).
pub const SCOPE: &str = "pubsub:pulse-tasks";

/// How many of a stream's newest processed candles a label entry looks at for the newest
/// resolved label (labels resolve within the vertical barrier, ten candles by default).
const LABEL_LOOKBACK: u32 = 20;

/// Most strategies one message may carry.
const MAX_STRATEGIES: usize = 100;

pub(crate) async fn pulse_tasks(
    State(state): State<AppState>,
    Push { event, .. }: Push<PulseTasks>,
) -> Result<StatusCode, Error> {
    let message_id = event.message_id;
    let task = event.data;
    if task.strategies.is_empty() || task.strategies.len() > MAX_STRATEGIES {
        return Err(Error::permanent(
            "a pulse-tasks message without strategies or with too many",
            anyhow!("message {message_id}: {} strategies", task.strategies.len()),
            Some(message_id),
        ));
    }
    let outcome = state
        .ledger
        .run_once(SCOPE, &message_id, &task, state.lease, || handle(&state, &task))
        .await
        .map_err(|e| e.or_ledger(|e| Error::for_event(e, "the pulse ledger", Some(&message_id))))?;
    match outcome {
        Outcome::Ran(summary) => {
            tracing::info!(%message_id, minute = %task.minute, %summary, "pulse task handled");
            Ok(StatusCode::NO_CONTENT)
        }
        Outcome::Replayed(_) => Ok(StatusCode::NO_CONTENT),
        Outcome::Busy { retry_after } => Err(Error::busy(
            anyhow!("{message_id} is being processed by another delivery"),
            retry_after,
        )),
        Outcome::Conflict => Err(Error::permanent(
            "a message id was reused with a different payload",
            anyhow!("{SCOPE} {message_id}: fingerprint differs from the first delivery"),
            Some(message_id),
        )),
    }
}

async fn handle(state: &AppState, task: &PulseTask) -> Result<Value, Error> {
    let fail = |e: store::Error| Error::for_event(e, "the pulse", None);
    let stored = state.pulse.strategies(&task.strategies).await.map_err(fail)?;
    let mut features = HashMap::new();
    let mut jobs = Vec::new();
    let mut skipped = 0u64;
    for (at, stored) in task.strategies.iter().zip(stored) {
        let strategy = match stored.map(|s| s.strategy) {
            Some(Ok(strategy)) => strategy,
            Some(Err(reason)) => {
                skipped += 1;
                tracing::warn!(tenant_id = %at.tenant_id, strategy_id = %at.strategy_id, %reason, "strategy does not decode: skipped");
                continue;
            }
            None => {
                skipped += 1;
                continue;
            }
        };
        let stream = strategy
            .granularity
            .parse::<Granularity>()
            .and_then(|g| StreamKey::new(&strategy.instrument, g));
        let Ok(stream) = stream else {
            skipped += 1;
            tracing::warn!(strategy_id = %at.strategy_id, instrument = %strategy.instrument, granularity = %strategy.granularity, "not a stream: skipped");
            continue;
        };
        // A label entry looks back for the newest resolved label; others need the newest candle.
        let lookback = match strategy.entry {
            EntrySignal::Label => LABEL_LOOKBACK,
            EntrySignal::VolScaledReturn { .. } => 1,
        };
        let cache_key = (stream.id(), lookback);
        if !features.contains_key(&cache_key) {
            let latest = state.pulse.latest_features(&stream, lookback).await.map_err(fail)?;
            features.insert(cache_key.clone(), latest);
        }
        let latest = features.get(&cache_key).copied().flatten();
        let granularity = stream.granularity.length();
        for uid in &strategy.assigned_uids {
            jobs.push(Job {
                at: at.clone(),
                strategy: strategy.clone(),
                uid: uid.clone(),
                stream: stream.clone(),
                granularity,
                features: latest,
            });
        }
    }
    let mut counts = Counts { skipped, ..Counts::default() };
    let mut runs = futures::stream::iter(jobs.into_iter().map(|job| run_user(state, task, job)))
        .buffer_unordered(state.concurrency);
    let mut first_error = None;
    while let Some(result) = runs.next().await {
        match result {
            Ok(outcome) => counts.add(outcome),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(Error::for_event(error, "a pulse run", None));
    }
    Ok(json!(counts))
}
