//! The Pub/Sub events: `order-paid` and `order-refunded` notify the buyer, `stream-alerts` the
//! operators.
//!
//! ```text
//! runtime::trigger::Push<T>       forged / missing token -> 401; undecodable -> permanent
//! Ledger::run_once (message id)   replayed -> 204 | busy -> 409 | conflict -> permanent
//! deliver::notify                 entries created once (ids from the order / refund / alert,
//!                                 so a second publication of the same fact finds them too)
//! ```

use std::collections::BTreeMap;

use anyhow::anyhow;
use axum::extract::State;
use chrono::Utc;
use domain::messages::{OrderPaidTopic, OrderRefundedTopic, StreamAlertKind, StreamAlerts};
use domain::notify::{Facts, NotificationKind};
use http::StatusCode;
use runtime::Error;
use runtime::trigger::Push;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use store::ledger::Outcome;

use crate::AppState;
use crate::deliver::{self, Notice};

/// Runs `work` once in effect per `key` in `scope`: `Some(summary)` when it ran now.
pub(crate) async fn once<P, F, Fut>(
    state: &AppState,
    scope: &str,
    key: &str,
    payload: &P,
    work: F,
) -> Result<Option<Value>, Error>
where
    P: Serialize + ?Sized,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let outcome = state
        .ledger
        .run_once(scope, key, payload, state.lease, work)
        .await
        .map_err(|e| e.or_ledger(|e| deliver::store_failure(e, Some(key))))?;
    match outcome {
        Outcome::Ran(summary) => Ok(Some(summary)),
        Outcome::Replayed(_) => Ok(None),
        Outcome::Busy { retry_after } => Err(busy(key, retry_after)),
        Outcome::Conflict => Err(Error::permanent(
            "an event id was reused with a different payload",
            anyhow!("{scope} {key}: fingerprint differs from the first delivery"),
            Some(key.to_owned()),
        )),
    }
}

fn busy(key: &str, retry_after: Duration) -> Error {
    Error::busy(anyhow!("{key} is being processed by another delivery"), retry_after)
}

fn bad(what: &str, message_id: &str) -> Error {
    Error::permanent(
        format!("a message without {what}"),
        anyhow!("message {message_id}"),
        Some(message_id.to_owned()),
    )
}

async fn run(
    state: &AppState,
    scope: &str,
    message_id: &str,
    payload: &impl Serialize,
    notice: Notice,
    uids: Vec<String>,
) -> Result<StatusCode, Error> {
    let summary = once(state, scope, message_id, payload, || async {
        let stats = deliver::notify(state, &notice, &uids).await?;
        Ok(serde_json::to_value(stats).unwrap_or_default())
    })
    .await?;
    if let Some(summary) = summary {
        tracing::info!(%message_id, kind = notice.kind.key(), %summary, "notified");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /pubsub/order-paid`.
pub(crate) async fn order_paid(
    State(state): State<AppState>,
    Push { event, .. }: Push<OrderPaidTopic>,
) -> Result<StatusCode, Error> {
    let paid = event.data;
    if paid.order_id.is_empty() || paid.uid.is_empty() {
        return Err(bad("order or buyer", &event.message_id));
    }
    let notice = Notice {
        kind: NotificationKind::OrderPaid,
        subject: paid.order_id.clone(),
        event_id: paid.order_id.clone(),
        facts: Facts::OrderPaid {
            order_id: paid.order_id.clone(),
            amount_minor: paid.amount_minor,
            currency: paid.currency.clone(),
        },
        data: BTreeMap::from([("orderId".to_owned(), paid.order_id.clone())]),
        actor: None,
        at: Utc::now(),
    };
    let uid = paid.uid.clone();
    run(&state, "pubsub:order-paid:notify", &event.message_id, &paid, notice, vec![uid]).await
}

/// `POST /pubsub/order-refunded`.
pub(crate) async fn order_refunded(
    State(state): State<AppState>,
    Push { event, .. }: Push<OrderRefundedTopic>,
) -> Result<StatusCode, Error> {
    let refund = event.data;
    if refund.order_id.is_empty() || refund.uid.is_empty() || refund.refund_id.is_empty() {
        return Err(bad("order, buyer or refund id", &event.message_id));
    }
    let notice = Notice {
        kind: NotificationKind::OrderRefunded,
        subject: refund.order_id.clone(),
        event_id: refund.refund_id.clone(),
        facts: Facts::OrderRefunded {
            order_id: refund.order_id.clone(),
            amount_minor: refund.amount_minor,
            currency: refund.currency.clone(),
            fully: refund.fully_refunded,
        },
        data: BTreeMap::from([
            ("orderId".to_owned(), refund.order_id.clone()),
            ("refundId".to_owned(), refund.refund_id.clone()),
        ]),
        actor: None,
        at: Utc::now(),
    };
    let uid = refund.uid.clone();
    run(&state, "pubsub:order-refunded:notify", &event.message_id, &refund, notice, vec![uid]).await
}

/// `POST /pubsub/stream-alerts`.
pub(crate) async fn stream_alerts(
    State(state): State<AppState>,
    Push { event, .. }: Push<StreamAlerts>,
) -> Result<StatusCode, Error> {
    let alert = event.data;
    if alert.stream_id.is_empty() {
        return Err(bad("stream", &event.message_id));
    }
    let operators = state.config.operators.clone();
    if operators.is_empty() {
        tracing::warn!(stream_id = %alert.stream_id, "stream alert with no operators configured (HEARTH_NOTIFY_OPERATORS)");
        return Ok(StatusCode::NO_CONTENT);
    }
    let state_name = match alert.kind {
        StreamAlertKind::Silent => "silent",
        StreamAlertKind::Recovered => "recovered",
    };
    let notice = Notice {
        kind: NotificationKind::StreamAlert,
        subject: alert.stream_id.clone(),
        event_id: format!("{}:{state_name}:{}", alert.stream_id, alert.detected_at.to_rfc3339()),
        facts: Facts::StreamAlert {
            stream_id: alert.stream_id.clone(),
            state: state_name.to_owned(),
            priority: alert.priority.clone(),
        },
        data: BTreeMap::from([("streamId".to_owned(), alert.stream_id.clone())]),
        actor: None,
        at: alert.detected_at,
    };
    run(&state, "pubsub:stream-alerts:notify", &event.message_id, &alert, notice, operators).await
}
