//! `POST /pubsub/order-paid`: keeps each vendor's sales counters of the day
//! (`store::vendor_orders`), so vendors read their totals per day without a scan of orders.
//!
//! ```text
//! Push<OrderPaidTopic>            forged / missing -> 401; undecodable -> dead letter
//! ledger run_once (order id)      an order is counted once however often `order-paid` is
//!                                   delivered or republished
//! read the order, one commit of   unknown order -> permanent (dead letter)
//!   increments per vendor         Firestore down -> 503
//! ```
//!
//! It lives here rather than in a function of its own because it is part of applying a
//! payment's outcome: same ledger, same dead letters, same Firestore data, no new deployable.

use anyhow::anyhow;
use axum::extract::State;
use domain::messages::OrderPaidTopic;
use http::StatusCode;
use runtime::Error;
use runtime::trigger::Push;
use serde::Serialize;
use serde_json::json;
use store::ledger::Outcome;

use crate::AppState;
use crate::push::store_failure;

/// The ledger scope of counted orders (key: the order id).
pub const SCOPE: &str = "pubsub:order-paid:sales";

pub(crate) async fn order_paid(
    State(state): State<AppState>,
    Push { event: push, .. }: Push<OrderPaidTopic>,
) -> Result<StatusCode, Error> {
    let paid = push.data;
    let paid_at = push.publish_time;
    let key = paid.order_id.clone();
    let fingerprint = Fingerprint { order_id: &paid.order_id, amount_minor: paid.amount_minor };
    let outcome = state
        .ledger
        .run_once(SCOPE, &key, &fingerprint, state.lease, || async {
            let order = state
                .payments
                .order(&paid.order_id)
                .await
                .map_err(|e| store_failure(e, &key))?
                .ok_or_else(|| {
                    Error::permanent(
                        "order-paid for an unknown order",
                        anyhow!("order {} does not exist", paid.order_id),
                        Some(key.clone()),
                    )
                })?;
            let vendors = state
                .vendor_orders
                .record_paid(&order, paid_at)
                .await
                .map_err(|e| store_failure(e, &key))?;
            Ok::<_, Error>(json!({ "vendors": vendors }))
        })
        .await
        .map_err(|e| e.or_ledger(|e| store_failure(e, &key)))?;
    match outcome {
        Outcome::Ran(_) | Outcome::Replayed(_) => Ok(StatusCode::NO_CONTENT),
        Outcome::Busy { retry_after } => {
            Err(Error::busy(anyhow!("order {key} is being counted"), retry_after))
        }
        Outcome::Conflict => Err(Error::permanent(
            "order-paid was delivered with different content",
            anyhow!("order {key}: fingerprint differs from the first delivery"),
            Some(key),
        )),
    }
}

/// What must not change between deliveries.
#[derive(Debug, Serialize)]
struct Fingerprint<'a> {
    order_id: &'a str,
    amount_minor: i64,
}
