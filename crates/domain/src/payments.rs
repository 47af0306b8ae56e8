//! The order / payment state machine, as pure functions.
//!
//! Provider events arrive more than once and in any order (Stripe does not order its events;
//! Pub/Sub redelivers). Each order keeps a *watermark*: the `(occurred_at, rank)` of the last
//! event applied. An event at or below the watermark is stale and changes nothing, so an older
//! `processing` can never overwrite a newer `succeeded`. Among events of the same second the
//! rank orders them by how final they are (processing < failed < canceled < succeeded <
//! refunded).
//!
//! ```text
//! awaiting_payment --processing--> processing
//! awaiting_payment | processing | payment_failed --succeeded--> paid (reservations committed)
//!                                                             \-> refund_pending (no stock left)
//! awaiting_payment | processing --failed--> payment_failed (the buyer may try again)
//! awaiting_payment | processing | payment_failed --canceled--> canceled
//! paid | refund_pending --refunded--> refunded
//! anything else: ignored (no change)
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::messages::PaymentEventKind;

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created; the buyer has not paid yet.
    AwaitingPayment,
    /// The provider is processing the payment.
    Processing,
    /// Paid; the reserved units are sold.
    Paid,
    /// The last attempt failed; the buyer may pay again.
    PaymentFailed,
    /// The payment was canceled.
    Canceled,
    /// Paid, but the reservation had expired and no stock was left: to be refunded.
    RefundPending,
    /// Refunded.
    Refunded,
}

impl OrderStatus {
    /// Whether a payment can still be started for the order.
    pub fn accepts_payment(self) -> bool {
        matches!(self, Self::AwaitingPayment | Self::PaymentFailed)
    }
}

/// Where a payment is (mirrors the provider's view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created at the provider; waiting for the buyer.
    Pending,
    /// In progress.
    Processing,
    /// Money received.
    Succeeded,
    /// Declined or errored.
    Failed,
    /// Canceled.
    Canceled,
    /// Refunded.
    Refunded,
}

/// The last event applied to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Watermark {
    /// When the provider says the event happened (microseconds since the epoch).
    pub occurred_at_micros: i64,
    /// [`rank`] of its kind.
    pub rank: u8,
}

/// How final an event kind is (tie-breaker within one timestamp).
pub fn rank(kind: PaymentEventKind) -> u8 {
    match kind {
        PaymentEventKind::StatusChanged => 0,
        PaymentEventKind::Processing => 1,
        PaymentEventKind::Failed => 2,
        PaymentEventKind::Canceled => 3,
        PaymentEventKind::Succeeded => 4,
        PaymentEventKind::Refunded => 5,
    }
}

/// The watermark of an event.
pub fn watermark(kind: PaymentEventKind, occurred_at: DateTime<Utc>) -> Watermark {
    Watermark { occurred_at_micros: occurred_at.timestamp_micros(), rank: rank(kind) }
}

/// What applying an event decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move the order and payment; when `commit_stock`, the reservations become sold.
    Transition {
        /// The order's new status.
        order: OrderStatus,
        /// The payment's new status.
        payment: PaymentStatus,
        /// Commit the order's reservations (a successful payment).
        commit_stock: bool,
        /// The order's new watermark.
        watermark: Watermark,
    },
    /// Nothing changes.
    Ignore(IgnoreReason),
}

/// Why an event changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// At or below the watermark: an older (or the same) event.
    Stale,
    /// Not a move the order can make from where it is.
    NotApplicable,
    /// A status-change hint that must be resolved with the provider first.
    Unresolved,
}

/// Applies an event of `kind` at `occurred_at` to an order in `status` with `current`
/// watermark.
pub fn apply(
    status: OrderStatus,
    current: Option<Watermark>,
    kind: PaymentEventKind,
    occurred_at: DateTime<Utc>,
) -> Decision {
    use OrderStatus as O;
    use PaymentEventKind as K;
    let mark = watermark(kind, occurred_at);
    if current.is_some_and(|c| mark <= c) {
        return Decision::Ignore(IgnoreReason::Stale);
    }
    let move_to = |order, payment, commit_stock| Decision::Transition {
        order,
        payment,
        commit_stock,
        watermark: mark,
    };
    match (status, kind) {
        (_, K::StatusChanged) => Decision::Ignore(IgnoreReason::Unresolved),
        (O::AwaitingPayment, K::Processing) => {
            move_to(O::Processing, PaymentStatus::Processing, false)
        }
        (O::AwaitingPayment | O::Processing | O::PaymentFailed, K::Succeeded) => {
            move_to(O::Paid, PaymentStatus::Succeeded, true)
        }
        (O::AwaitingPayment | O::Processing, K::Failed) => {
            move_to(O::PaymentFailed, PaymentStatus::Failed, false)
        }
        (O::AwaitingPayment | O::Processing | O::PaymentFailed, K::Canceled) => {
            move_to(O::Canceled, PaymentStatus::Canceled, false)
        }
        (O::Paid | O::RefundPending, K::Refunded) => {
            move_to(O::Refunded, PaymentStatus::Refunded, false)
        }
        _ => Decision::Ignore(IgnoreReason::NotApplicable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_happy_path() {
        let d = apply(OrderStatus::AwaitingPayment, None, PaymentEventKind::Processing, t(0));
        let Decision::Transition { order, watermark: w1, .. } = d else { panic!("{d:?}") };
        assert_eq!(order, OrderStatus::Processing);
        let d = apply(order, Some(w1), PaymentEventKind::Succeeded, t(1));
        assert!(matches!(
            d,
            Decision::Transition {
                order: OrderStatus::Paid,
                payment: PaymentStatus::Succeeded,
                commit_stock: true,
                ..
            }
        ));
    }

    #[test]
    fn an_older_event_never_overwrites_a_newer_state() {
        let Decision::Transition { order, watermark, .. } =
            apply(OrderStatus::AwaitingPayment, None, PaymentEventKind::Succeeded, t(10))
        else {
            panic!()
        };
        assert_eq!(
            apply(order, Some(watermark), PaymentEventKind::Processing, t(5)),
            Decision::Ignore(IgnoreReason::Stale)
        );
        // Same second: processing ranks below succeeded.
        assert_eq!(
            apply(order, Some(watermark), PaymentEventKind::Processing, t(10)),
            Decision::Ignore(IgnoreReason::Stale)
        );
        // The same event again is stale too.
        assert_eq!(
            apply(order, Some(watermark), PaymentEventKind::Succeeded, t(10)),
            Decision::Ignore(IgnoreReason::Stale)
        );
        // A later refund applies.
        assert!(matches!(
            apply(order, Some(watermark), PaymentEventKind::Refunded, t(20)),
            Decision::Transition { order: OrderStatus::Refunded, .. }
        ));
    }

    #[test]
    fn failures_allow_a_new_attempt_and_hints_need_resolving() {
        let Decision::Transition { order, watermark, .. } =
            apply(OrderStatus::AwaitingPayment, None, PaymentEventKind::Failed, t(0))
        else {
            panic!()
        };
        assert!(order.accepts_payment());
        assert!(matches!(
            apply(order, Some(watermark), PaymentEventKind::Succeeded, t(60)),
            Decision::Transition { order: OrderStatus::Paid, .. }
        ));
        assert_eq!(
            apply(OrderStatus::AwaitingPayment, None, PaymentEventKind::StatusChanged, t(0)),
            Decision::Ignore(IgnoreReason::Unresolved)
        );
        assert_eq!(
            apply(OrderStatus::Canceled, None, PaymentEventKind::Succeeded, t(0)),
            Decision::Ignore(IgnoreReason::NotApplicable)
        );
    }

    fn kind() -> impl Strategy<Value = PaymentEventKind> {
        prop_oneof![
            Just(PaymentEventKind::Processing),
            Just(PaymentEventKind::Succeeded),
            Just(PaymentEventKind::Failed),
            Just(PaymentEventKind::Canceled),
            Just(PaymentEventKind::Refunded),
            Just(PaymentEventKind::StatusChanged),
        ]
    }

    /// Folds events (with duplicates) into a state, counting changes and sales.
    fn fold(events: &[(PaymentEventKind, i64)]) -> (OrderStatus, Option<Watermark>, usize, usize) {
        let (mut status, mut mark, mut changes, mut sales) =
            (OrderStatus::AwaitingPayment, None, 0, 0);
        for (kind, secs) in events {
            if let Decision::Transition { order, commit_stock, watermark, .. } =
                apply(status, mark, *kind, t(*secs))
            {
                status = order;
                mark = Some(watermark);
                changes += 1;
                sales += usize::from(commit_stock);
            }
        }
        (status, mark, changes, sales)
    }

    proptest! {
        /// Redelivering any event any number of times changes nothing more than delivering
        /// it once, and stock is committed at most once per order.
        #[test]
        fn duplicates_change_nothing(
            events in proptest::collection::vec((kind(), 0i64..20), 1..8),
            copies in proptest::collection::vec(1usize..4, 8),
        ) {
            let once = fold(&events);
            let mut repeated = Vec::new();
            for (i, e) in events.iter().enumerate() {
                for _ in 0..copies[i % copies.len()] {
                    repeated.push(*e);
                }
            }
            prop_assert_eq!(fold(&repeated), once);
            prop_assert!(once.3 <= 1);
        }

        /// With a single event per order, any shuffle of its copies makes exactly one change
        /// (or none when it does not apply).
        #[test]
        fn one_event_delivered_many_times_changes_state_once(kind in kind(), copies in 1usize..6) {
            let events: Vec<_> = std::iter::repeat_n((kind, 3), copies).collect();
            let (_, _, changes, sales) = fold(&events);
            let applies = !matches!(kind, PaymentEventKind::Refunded | PaymentEventKind::StatusChanged);
            prop_assert_eq!(changes, usize::from(applies));
            prop_assert_eq!(sales, usize::from(kind == PaymentEventKind::Succeeded));
        }

        /// Whatever order the events of a paid order come in, the newest decides: once the
        /// success (the newest event) is applied, nothing older moves the order.
        #[test]
        fn the_newest_success_wins_any_order(mut older in proptest::collection::vec((kind(), 0i64..10), 0..6), pos in 0usize..7) {
            older.retain(|(k, _)| *k != PaymentEventKind::Refunded);
            let pos = pos.min(older.len());
            older.insert(pos, (PaymentEventKind::Succeeded, 10));
            let after: Vec<_> = older[pos + 1..].to_vec();
            let (status, mark, _, _) = fold(&older[..=pos]);
            if status == OrderStatus::Paid {
                let mut s = status;
                let mut m = mark;
                for (k, secs) in after {
                    if let Decision::Transition { order, watermark, .. } = apply(s, m, k, t(secs)) {
                        s = order;
                        m = Some(watermark);
                    }
                }
                prop_assert_eq!(s, OrderStatus::Paid);
            }
        }
    }
}
