//! `POST /jobs/reconcile-payments`: Cloud Scheduler (Google OIDC) asks Pesapal about every
//! payment whose outcome is not final yet, so a payment whose IPN never came, or whose hint
//! found it pending, or arrived while Pesapal was throttling or down, still ends where the
//! provider says.
//!
//! ```text
//! payments with reconcile_due_at <= now (oldest first, at most BATCH per run)
//!   GetTransactionStatus   final    -> store::payments::apply_event (same checks as a hint:
//!                                      the order must hold the payment, merchant reference,
//!                                      amount and currency must match), due time removed
//!                          pending  -> asked again later (5 min, doubling, at most 6 h apart)
//!                          error    -> asked again later, logged
//!                          throttled / circuit open / down -> the run stops; due times stay
//!   older than 7 days      -> due time removed, logged for operators
//! ```
//!
//! Idempotent: a final answer applied twice is stale the second time (per-order watermark), and
//! the event id of a reconciled outcome is derived from the tracking id and the outcome, so a
//! publish that failed is retried by the next run. Two runs at once apply each outcome once.

use anyhow::anyhow;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use domain::dead_letter::DeadLetter;
use domain::messages::PaymentProvider;
use domain::payments::next_reconcile;
use gcp::callable::Code;
use gcp::error::PublicError as _;
use gcp::scheduler::SchedulerRequest;
use providers::pesapal::StatusOutcome;
use runtime::Error;
use runtime::auth::GoogleCaller;
use serde::Serialize;
use store::payments::{Applied, Payment, ResolvedEvent};

use crate::AppState;
use crate::push::{publish_outcome, store_failure};

/// The Scheduler job name (and path segment).
pub const JOB: &str = "reconcile-payments";

/// Payments asked about per run (each costs one provider call and one or two transactions).
const BATCH: u32 = 50;

/// A run stops asking after this long, well inside the Scheduler attempt deadline (60 s) and
/// the request timeout; what is left stays due for the next run.
const TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(40);

/// What a run did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Payments due.
    pub examined: usize,
    /// Final answers applied (the order moved, or was already there).
    pub settled: usize,
    /// Still pending: asked again later.
    pub pending: usize,
    /// Pesapal could not be asked now: left due.
    pub deferred: usize,
    /// Past the horizon: no longer asked.
    pub gave_up: usize,
    /// Final answers that are not the order's money: nothing changed, dead letter flagged.
    pub suspect: usize,
}

pub(crate) async fn reconcile_payments(
    State(state): State<AppState>,
    GoogleCaller(_caller): GoogleCaller,
    headers: HeaderMap,
) -> Result<Json<Report>, Error> {
    if SchedulerRequest::is_scheduler_request(&headers) {
        let scheduled = SchedulerRequest::from_headers(&headers)
            .map_err(|e| Error::reject(e.code(), e.public_message()))?;
        if scheduled.job_id != JOB {
            return Err(Error::reject(
                Code::InvalidArgument,
                format!("Scheduler job `{}` does not match the path job `{JOB}`", scheduled.job_id),
            ));
        }
    }
    let report = run(&state, Utc::now()).await?;
    tracing::info!(
        job = JOB,
        examined = report.examined,
        settled = report.settled,
        pending = report.pending,
        deferred = report.deferred,
        gave_up = report.gave_up,
        suspect = report.suspect,
        "reconcile run"
    );
    Ok(Json(report))
}

/// One run at `now`.
pub(crate) async fn run(state: &AppState, now: DateTime<Utc>) -> Result<Report, Error> {
    let due =
        state.payments.due_for_reconcile(now, BATCH).await.map_err(|e| store_failure(e, JOB))?;
    let mut report = Report { examined: due.len(), ..Report::default() };
    let started = std::time::Instant::now();
    for (done, payment) in due.into_iter().enumerate() {
        if started.elapsed() > TIME_BUDGET {
            report.deferred = report.examined - done;
            break;
        }
        let key = format!("{JOB}:{}", payment.id);
        let reschedule = |next| {
            let payments = state.payments.clone();
            let id = payment.id.clone();
            async move { payments.reschedule_reconcile(&id, next, now).await }
        };
        let created = payment.created();
        let (Some(tracking), Some(pesapal), PaymentProvider::Pesapal) =
            (payment.provider_payment_id.clone(), &state.pesapal, payment.provider)
        else {
            // Nothing this job can ask: not a Pesapal payment, no tracking id, or no client.
            reschedule(None).await.map_err(|e| store_failure(e, &key))?;
            continue;
        };
        let Some(next) = next_reconcile(payment.reconcile_checks, created, now) else {
            tracing::warn!(payment_id = %payment.id, order_id = %payment.order_id, "payment still not final after the reconcile horizon; no longer asked");
            reschedule(None).await.map_err(|e| store_failure(e, &key))?;
            report.gave_up += 1;
            continue;
        };
        let status = match pesapal.transaction_status(&tracking).await {
            Ok(status) => status,
            Err(error) if error.is_retryable() => {
                tracing::warn!(%error, "Pesapal unavailable: the reconcile run stops, payments stay due");
                report.deferred = report.examined - done;
                break;
            }
            Err(error) => {
                tracing::warn!(%error, payment_id = %payment.id, "Pesapal refused the status lookup");
                reschedule(Some(next)).await.map_err(|e| store_failure(e, &key))?;
                report.pending += 1;
                continue;
            }
        };
        let kind = match status.outcome() {
            StatusOutcome::Final(kind) => kind,
            StatusOutcome::Pending => {
                reschedule(Some(next)).await.map_err(|e| store_failure(e, &key))?;
                report.pending += 1;
                continue;
            }
            StatusOutcome::Error { code, message } => {
                tracing::warn!(%code, %message, payment_id = %payment.id, "Pesapal answered the status lookup with an error");
                reschedule(Some(next)).await.map_err(|e| store_failure(e, &key))?;
                report.pending += 1;
                continue;
            }
        };
        let event = ResolvedEvent {
            provider: PaymentProvider::Pesapal,
            event_id: format!("reconcile:{tracking}:{kind:?}"),
            order_id: payment.order_id.clone(),
            provider_payment_id: tracking.clone(),
            kind,
            occurred_at: now,
            merchant_reference: status.merchant_reference.clone(),
            amount_minor: status.amount_minor(),
            currency: status.currency.clone(),
            amount_refunded_minor: None,
        };
        let applied =
            state.payments.apply_event(&event, now).await.map_err(|e| store_failure(e, &key))?;
        match applied {
            Applied::Suspect(mismatch) => {
                record_suspect(state, &payment, &event, &mismatch.to_string()).await?;
                reschedule(None).await.map_err(|e| store_failure(e, &key))?;
                report.suspect += 1;
                continue;
            }
            Applied::UnknownOrder => {
                tracing::warn!(payment_id = %payment.id, order_id = %payment.order_id, "reconciled payment of a missing order");
            }
            Applied::Changed { .. } | Applied::Ignored(_) | Applied::PartiallyRefunded { .. } => {}
        }
        // Announce the outcome when this run's event is the one that moved the order. If the
        // publish fails the payment stays due, and the next run publishes it.
        if let Some(order) =
            state.payments.order(&payment.order_id).await.map_err(|e| store_failure(e, &key))?
            && order.last_event_id.as_deref() == Some(event.event_id.as_str())
            && let Err(error) =
                publish_outcome(state, &order, event.provider, &tracking, &event.event_id).await
        {
            tracing::warn!(error = %error, payment_id = %payment.id, "outcome not published; the next run tries again");
            reschedule(Some(now)).await.map_err(|e| store_failure(e, &key))?;
            continue;
        }
        reschedule(None).await.map_err(|e| store_failure(e, &key))?;
        report.settled += 1;
    }
    Ok(report)
}

async fn record_suspect(
    state: &AppState,
    payment: &Payment,
    event: &ResolvedEvent,
    why: &str,
) -> Result<(), Error> {
    tracing::warn!(payment_id = %payment.id, order_id = %payment.order_id, why, "reconciled outcome is not this order's money: nothing changed");
    let id = format!("{JOB}-{}", payment.id);
    let letter = DeadLetter {
        id: id.clone(),
        source: format!("payment-processor POST /jobs/{JOB}"),
        event_id: Some(event.event_id.clone()),
        reason: "payment event refused: not this order's money (suspected forgery)".to_owned(),
        detail: format!(
            "order {}, provider payment {}: {why}",
            payment.order_id, event.provider_payment_id
        ),
        recorded_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        suspected_forgery: true,
    };
    state
        .dead_letters
        .record(&letter)
        .await
        .map_err(|e| Error::retry(anyhow!(e).context("recording a dead letter")))
}
