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
//! awaiting_payment | processing | payment_failed --refunded--> refunded (the refund overtook
//!                                                 the success: the late success is stale)
//! anything else: ignored (no change)
//! ```
//!
//! Before any of that, [`decide`] checks that the event is about this order's money: its
//! `(provider, provider payment id)` must be one of the order's payments, and where the provider
//! reports a merchant reference, an amount or a currency they must match the order. An event
//! that fails the check changes nothing and is reported as a suspected forgery
//! ([`Decision::Suspect`]). A refund of part of the amount records how much went back and leaves
//! the status (and the watermark) alone ([`Decision::PartialRefund`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::messages::PaymentEventKind;

/// Where an order is.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Part of the amount went back: record `refunded_minor` (cumulative, as the provider
    /// reports it), leave the status and the watermark as they are.
    PartialRefund {
        /// Refunded so far, minor units.
        refunded_minor: i64,
    },
    /// The event is not about this order's money: nothing changes, operators are told.
    Suspect(Mismatch),
}

/// Why an event does not belong to the order it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// No payment of the order has this provider and provider payment id.
    UnknownPayment,
    /// The provider says the payment belongs to another merchant reference (order).
    MerchantReference {
        /// What the provider reported.
        reported: String,
    },
    /// The provider reports another amount.
    Amount {
        /// The order's amount, minor units.
        expected: i64,
        /// What the provider reported, minor units.
        reported: i64,
    },
    /// The provider reports another currency.
    Currency {
        /// The order's currency (lower case).
        expected: String,
        /// What the provider reported.
        reported: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownPayment => {
                f.write_str("no payment of the order has this provider payment id")
            }
            Self::MerchantReference { reported } => {
                write!(f, "the provider says the payment is for order {reported}")
            }
            Self::Amount { expected, reported } => {
                write!(f, "amount {reported} reported, the order is for {expected}")
            }
            Self::Currency { expected, reported } => {
                write!(f, "currency {reported} reported, the order is in {expected}")
            }
        }
    }
}

/// What the decision needs to know of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderView<'a> {
    /// The order id.
    pub id: &'a str,
    /// Where it is.
    pub status: OrderStatus,
    /// The last event applied.
    pub watermark: Option<Watermark>,
    /// Total, minor units.
    pub amount_minor: i64,
    /// ISO 4217, lower case.
    pub currency: &'a str,
    /// Whether one of the order's payments has the event's provider and provider payment id.
    pub holds_payment: bool,
}

/// What the provider said, resolved (hints already looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventView<'a> {
    /// What happened.
    pub kind: PaymentEventKind,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// The merchant reference the provider reports for the payment (Pesapal), if any.
    pub merchant_reference: Option<&'a str>,
    /// The amount the provider reports for the payment, minor units, if any.
    pub amount_minor: Option<i64>,
    /// The currency the provider reports, if any (any case).
    pub currency: Option<&'a str>,
    /// For a refund: how much has been refunded so far (cumulative), if the provider says.
    /// `None` is read as the whole amount.
    pub amount_refunded_minor: Option<i64>,
}

/// Checks that `event` is about `order`'s money (see the module docs).
pub fn check_belongs(order: &OrderView<'_>, event: &EventView<'_>) -> Result<(), Mismatch> {
    if !order.holds_payment {
        return Err(Mismatch::UnknownPayment);
    }
    if let Some(reported) = event.merchant_reference
        && reported != order.id
    {
        return Err(Mismatch::MerchantReference { reported: reported.to_owned() });
    }
    if let Some(reported) = event.amount_minor
        && reported != order.amount_minor
    {
        return Err(Mismatch::Amount { expected: order.amount_minor, reported });
    }
    if let Some(reported) = event.currency
        && !reported.eq_ignore_ascii_case(order.currency)
    {
        return Err(Mismatch::Currency {
            expected: order.currency.to_owned(),
            reported: reported.to_owned(),
        });
    }
    Ok(())
}

/// The whole decision for a resolved event: ownership check, partial refunds, then [`apply`].
pub fn decide(order: &OrderView<'_>, event: &EventView<'_>) -> Decision {
    if let Err(mismatch) = check_belongs(order, event) {
        return Decision::Suspect(mismatch);
    }
    if event.kind == PaymentEventKind::Refunded
        && let Some(refunded) = event.amount_refunded_minor
        && refunded < order.amount_minor
    {
        return Decision::PartialRefund { refunded_minor: refunded.max(0) };
    }
    apply(order.status, order.watermark, event.kind, event.occurred_at)
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
        // The refund overtook the success (events are not ordered): record it; the success,
        // older than the refund, is then stale and commits no stock.
        (O::AwaitingPayment | O::Processing | O::PaymentFailed, K::Refunded) => {
            move_to(O::Refunded, PaymentStatus::Refunded, false)
        }
        _ => Decision::Ignore(IgnoreReason::NotApplicable),
    }
}

/// How long the reconcile job keeps asking a provider about a payment that is not final.
pub const RECONCILE_HORIZON: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// When the reconcile job asks again after `checks` answers that were not final: 5 minutes,
/// doubling, at most 6 hours apart; `None` once the payment, created at `created_at`, is past
/// [`RECONCILE_HORIZON`] (operators take over; the job logs it).
pub fn next_reconcile(
    checks: u32,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if now - created_at >= RECONCILE_HORIZON {
        return None;
    }
    let minutes = 5i64.saturating_mul(1i64 << checks.min(10)).min(6 * 60);
    Some(now + chrono::TimeDelta::minutes(minutes))
}

/// Most reservations one order pays for.
pub const MAX_RESERVATIONS_PER_ORDER: usize = 20;

/// Why `initiatePayment` refuses what the caller sent, before anything is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitiateRefused {
    /// No reservation, or more than [`MAX_RESERVATIONS_PER_ORDER`].
    #[error("Pay for 1 to 20 reservations at once.")]
    ReservationCount,
    /// A reservation is listed more than once: its units would be two lines of the order,
    /// charged, counted as sales and refundable twice.
    #[error("Reservation {0} is listed more than once.")]
    DuplicateReservation(String),
}

/// The checks of an order's request that need nothing stored: 1 to
/// [`MAX_RESERVATIONS_PER_ORDER`] reservations, each listed once.
pub fn check_initiate(reservation_ids: &[String]) -> Result<(), InitiateRefused> {
    if reservation_ids.is_empty() || reservation_ids.len() > MAX_RESERVATIONS_PER_ORDER {
        return Err(InitiateRefused::ReservationCount);
    }
    if let Some(twice) = first_repeated(reservation_ids) {
        return Err(InitiateRefused::DuplicateReservation(twice.clone()));
    }
    Ok(())
}

/// The first of `ids` that appeared before it.
pub fn first_repeated(ids: &[String]) -> Option<&String> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter().find(|id| !seen.insert(id.as_str()))
}

/// The ids of the order and the payment an `initiatePayment` call creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderIds {
    /// `ord_` and 24 hex digits.
    pub order_id: String,
    /// `pay_` and the same 24 hex digits.
    pub payment_id: String,
}

/// Deterministic ids from the buyer and their `Idempotency-Key` (the SHA-256 of
/// `uid NUL key`): a re-run of the same key finds what the first run created, and two keys of
/// one buyer, or one key of two buyers, never share an order.
pub fn order_ids(uid: &str, key: &str) -> OrderIds {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(format!("{uid}\0{key}").as_bytes()));
    OrderIds {
        order_id: format!("ord_{}", &hash[..24]),
        payment_id: format!("pay_{}", &hash[..24]),
    }
}

/// Whether `caller` may read an order bought by `buyer`: only the buyer may (anyone else is
/// told there is no such order).
pub fn may_view(buyer: &str, caller: &str) -> bool {
    buyer == caller
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

    fn view(status: OrderStatus, holds_payment: bool) -> OrderView<'static> {
        OrderView {
            id: "ord_1",
            status,
            watermark: None,
            amount_minor: 2500,
            currency: "kes",
            holds_payment,
        }
    }

    fn event(kind: PaymentEventKind) -> EventView<'static> {
        EventView {
            kind,
            occurred_at: t(0),
            merchant_reference: None,
            amount_minor: None,
            currency: None,
            amount_refunded_minor: None,
        }
    }

    #[test]
    fn a_refund_that_overtakes_the_success_ends_refunded_without_selling() {
        let Decision::Transition { order, watermark, commit_stock, .. } =
            apply(OrderStatus::AwaitingPayment, None, PaymentEventKind::Refunded, t(20))
        else {
            panic!("the early refund must be recorded")
        };
        assert_eq!(order, OrderStatus::Refunded);
        assert!(!commit_stock);
        // The success happened before the refund: stale, no stock committed.
        assert_eq!(
            apply(order, Some(watermark), PaymentEventKind::Succeeded, t(10)),
            Decision::Ignore(IgnoreReason::Stale)
        );
        // Even a success stamped later cannot move a refunded order.
        assert_eq!(
            apply(order, Some(watermark), PaymentEventKind::Succeeded, t(30)),
            Decision::Ignore(IgnoreReason::NotApplicable)
        );
    }

    #[test]
    fn events_about_other_money_are_suspects() {
        let paid = event(PaymentEventKind::Succeeded);
        assert_eq!(
            decide(&view(OrderStatus::AwaitingPayment, false), &paid),
            Decision::Suspect(Mismatch::UnknownPayment)
        );
        let other_order = EventView { merchant_reference: Some("ord_cheap"), ..paid };
        assert_eq!(
            decide(&view(OrderStatus::AwaitingPayment, true), &other_order),
            Decision::Suspect(Mismatch::MerchantReference { reported: "ord_cheap".to_owned() })
        );
        let cheaper = EventView { amount_minor: Some(100), ..paid };
        assert_eq!(
            decide(&view(OrderStatus::AwaitingPayment, true), &cheaper),
            Decision::Suspect(Mismatch::Amount { expected: 2500, reported: 100 })
        );
        let dollars = EventView { currency: Some("USD"), ..paid };
        assert!(matches!(
            decide(&view(OrderStatus::AwaitingPayment, true), &dollars),
            Decision::Suspect(Mismatch::Currency { .. })
        ));
        let honest = EventView {
            merchant_reference: Some("ord_1"),
            amount_minor: Some(2500),
            currency: Some("KES"),
            ..paid
        };
        assert!(matches!(
            decide(&view(OrderStatus::AwaitingPayment, true), &honest),
            Decision::Transition { order: OrderStatus::Paid, commit_stock: true, .. }
        ));
    }

    #[test]
    fn reconciliation_backs_off_and_gives_up_after_the_horizon() {
        let created = t(0);
        assert_eq!(next_reconcile(0, created, t(60)), Some(t(60 + 5 * 60)));
        assert_eq!(next_reconcile(1, created, t(60)), Some(t(60 + 10 * 60)));
        assert_eq!(next_reconcile(30, created, t(60)), Some(t(60 + 6 * 3600)));
        assert_eq!(next_reconcile(3, created, created + RECONCILE_HORIZON), None);
    }

    #[test]
    fn a_partial_refund_leaves_the_order_paid() {
        let partial =
            EventView { amount_refunded_minor: Some(1000), ..event(PaymentEventKind::Refunded) };
        assert_eq!(
            decide(&view(OrderStatus::Paid, true), &partial),
            Decision::PartialRefund { refunded_minor: 1000 }
        );
        let full = EventView { amount_refunded_minor: Some(2500), ..partial };
        assert!(matches!(
            decide(&view(OrderStatus::Paid, true), &full),
            Decision::Transition { order: OrderStatus::Refunded, .. }
        ));
        // Without an amount the refund is read as whole.
        assert!(matches!(
            decide(&view(OrderStatus::Paid, true), &event(PaymentEventKind::Refunded)),
            Decision::Transition { order: OrderStatus::Refunded, .. }
        ));
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
            // A refund arriving first is recorded (it moves an unpaid order to refunded).
            let applies = kind != PaymentEventKind::StatusChanged;
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

    proptest! {
        #[test]
        fn initiate_takes_one_to_twenty_reservations(n in 0usize..100) {
            let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
            prop_assert_eq!(check_initiate(&ids).is_ok(), (1..=MAX_RESERVATIONS_PER_ORDER).contains(&n));
        }

        #[test]
        fn initiate_refuses_a_reservation_listed_twice(
            ids in proptest::collection::vec("[a-c]{1,2}", 1..=MAX_RESERVATIONS_PER_ORDER),
        ) {
            let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
            let got = check_initiate(&ids);
            if distinct.len() == ids.len() {
                prop_assert_eq!(got, Ok(()));
            } else {
                // The first id met again, in list order.
                let twice = ids.iter().enumerate().find(|(i, id)| ids[..*i].contains(id)).unwrap().1;
                prop_assert_eq!(got, Err(InitiateRefused::DuplicateReservation(twice.clone())));
            }
        }

        #[test]
        fn order_ids_are_stable_per_key_and_differ_across_keys_and_buyers(
            uid in "[a-zA-Z0-9]{1,28}",
            key in "[!-~]{1,64}",
            other in "[!-~]{1,64}",
        ) {
            let ids = order_ids(&uid, &key);
            prop_assert_eq!(&ids, &order_ids(&uid, &key));
            prop_assert!(ids.order_id.starts_with("ord_") && ids.order_id.len() == 28);
            prop_assert_eq!(&ids.order_id[4..], &ids.payment_id[4..]);
            prop_assert!(ids.payment_id.starts_with("pay_"));
            if other != key {
                prop_assert_ne!(&ids, &order_ids(&uid, &other));
                prop_assert_ne!(&order_ids(&other, &key), &order_ids(&key, &other));
            }
        }

        #[test]
        fn only_the_buyer_sees_an_order(buyer in "[a-z]{1,8}", caller in "[a-z]{1,8}") {
            prop_assert_eq!(may_view(&buyer, &caller), buyer == caller);
        }
    }

    #[test]
    fn order_ids_are_the_ones_stored_before() {
        // Orders created before this rule moved here keep their ids on a replay.
        use sha2::{Digest, Sha256};
        let hash = hex::encode(Sha256::digest("u1\0k1".as_bytes()));
        assert_eq!(order_ids("u1", "k1").order_id, format!("ord_{}", &hash[..24]));
    }
}
