//! Refunds of paid orders: who may ask for how much, and which requested refunds a provider's
//! refunded total confirms.
//!
//! - The buyer may ask within a window after the order was placed (`window`), for any part of
//!   what is left: the order's amount less what was refunded and what is being refunded.
//! - A vendor of the order may ask at any time, but only for its own lines: the value of its
//!   items less what it already asked back (confirmed or in flight), and never more than what
//!   is left on the order.
//! - Only `paid` orders are refunded on request (`refund_pending` orders are refunded by the
//!   system, in full, and every other state holds no money).
//! - At most [`MAX_REFUNDS`] requests per order, so the order document stays bounded.
//!
//! A provider reports the cumulative amount refunded on a payment; [`confirmed_by`] turns that
//! into the requested refunds it covers, oldest first.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::payments::OrderStatus;

/// Most refund requests one order may carry.
pub const MAX_REFUNDS: usize = 10;

/// Where a requested refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum RefundStatus {
    /// Recorded; the provider has not been asked yet.
    Requested,
    /// The provider accepted it (its refund id is recorded); waiting for its confirmation.
    Submitted,
    /// The provider confirmed the money went back (its webhook).
    Confirmed,
    /// The provider refused it; nothing went back.
    Failed,
}

impl RefundStatus {
    /// Counts against what is left on the order (in flight or done).
    pub fn holds_amount(self) -> bool {
        !matches!(self, Self::Failed)
    }
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Requester {
    /// The buyer of the order.
    Buyer,
    /// A vendor of the order's items.
    Vendor,
    /// The system (paid without stock).
    System,
}

/// A refund already on the order, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing<'a> {
    /// Who asked (uid; empty for the system).
    pub requested_by: &'a str,
    /// Minor units.
    pub amount_minor: i64,
    /// Where it is.
    pub status: RefundStatus,
}

/// The order, as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFacts<'a> {
    /// Its status.
    pub status: OrderStatus,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// Its amount, minor units.
    pub amount_minor: i64,
    /// Refunded so far as the provider reported, minor units.
    pub refunded_minor: i64,
    /// The value of the asking vendor's items, minor units (vendors only).
    pub vendor_items_minor: i64,
    /// The refunds on it.
    pub refunds: Vec<Existing<'a>>,
}

/// Why a refund request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefused {
    /// The order is not paid (or already refunded).
    #[error("only paid orders can be refunded")]
    NotPaid,
    /// The buyer's window has passed.
    #[error("the refund window of {0} days has passed")]
    WindowPassed(i64),
    /// Zero or negative.
    #[error("the amount must be positive")]
    NotPositive,
    /// More than is left to refund (for this requester).
    #[error("at most {left} minor units can be refunded")]
    OverAmount {
        /// What may still be asked.
        left: i64,
    },
    /// Too many refunds on the order.
    #[error("an order takes at most {MAX_REFUNDS} refunds")]
    TooMany,
}

/// What is left to refund on the order: its amount less everything confirmed or in flight
/// (the provider's reported total counts when it is higher, e.g. a refund made elsewhere).
pub fn left_on_order(order: &OrderFacts<'_>) -> i64 {
    let held: i64 =
        order.refunds.iter().filter(|r| r.status.holds_amount()).map(|r| r.amount_minor).sum();
    (order.amount_minor - held.max(order.refunded_minor)).max(0)
}

/// The most `who` (`uid`, acting as `requester`) may ask back now.
pub fn may_ask(
    order: &OrderFacts<'_>,
    requester: Requester,
    uid: &str,
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Result<i64, RefundRefused> {
    if order.status != OrderStatus::Paid {
        return Err(RefundRefused::NotPaid);
    }
    if order.refunds.len() >= MAX_REFUNDS {
        return Err(RefundRefused::TooMany);
    }
    let left = left_on_order(order);
    match requester {
        Requester::Buyer => {
            if now > order.created_at + window {
                return Err(RefundRefused::WindowPassed(window.num_days()));
            }
            Ok(left)
        }
        Requester::Vendor => {
            let asked: i64 = order
                .refunds
                .iter()
                .filter(|r| r.requested_by == uid && r.status.holds_amount())
                .map(|r| r.amount_minor)
                .sum();
            Ok((order.vendor_items_minor - asked).clamp(0, left))
        }
        Requester::System => Ok(left),
    }
}

/// Checks a request of `amount` against [`may_ask`].
pub fn check_request(
    order: &OrderFacts<'_>,
    requester: Requester,
    uid: &str,
    amount_minor: i64,
    now: DateTime<Utc>,
    window: TimeDelta,
) -> Result<(), RefundRefused> {
    if amount_minor <= 0 {
        return Err(RefundRefused::NotPositive);
    }
    let left = may_ask(order, requester, uid, now, window)?;
    if amount_minor > left {
        return Err(RefundRefused::OverAmount { left });
    }
    Ok(())
}

/// The refunds (indices into `refunds`) that a provider's cumulative refunded total
/// `refunded_total` confirms: those in flight (submitted, or requested when the provider's
/// confirmation overtakes the refunder recording its answer), oldest first, while the
/// confirmed sum stays within the total. Already confirmed ones count first.
pub fn confirmed_by(refunds: &[Existing<'_>], refunded_total: i64) -> Vec<usize> {
    let mut covered: i64 = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Confirmed)
        .map(|r| r.amount_minor)
        .sum();
    let mut confirmed = Vec::new();
    for (i, r) in refunds.iter().enumerate() {
        let in_flight = matches!(r.status, RefundStatus::Submitted | RefundStatus::Requested);
        if in_flight && covered + r.amount_minor <= refunded_total {
            covered += r.amount_minor;
            confirmed.push(i);
        }
    }
    confirmed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + h * 3600, 0).unwrap()
    }

    fn order<'a>(refunds: Vec<Existing<'a>>) -> OrderFacts<'a> {
        OrderFacts {
            status: OrderStatus::Paid,
            created_at: at(0),
            amount_minor: 1_000,
            refunded_minor: 0,
            vendor_items_minor: 600,
            refunds,
        }
    }

    fn existing(by: &str, amount: i64, status: RefundStatus) -> Existing<'_> {
        Existing { requested_by: by, amount_minor: amount, status }
    }

    const WINDOW: TimeDelta = TimeDelta::days(30);

    #[test]
    fn buyers_ask_within_the_window_for_what_is_left() {
        let o = order(vec![existing("ada", 300, RefundStatus::Submitted)]);
        assert_eq!(may_ask(&o, Requester::Buyer, "ada", at(1), WINDOW), Ok(700));
        assert_eq!(check_request(&o, Requester::Buyer, "ada", 700, at(1), WINDOW), Ok(()));
        assert_eq!(
            check_request(&o, Requester::Buyer, "ada", 701, at(1), WINDOW),
            Err(RefundRefused::OverAmount { left: 700 })
        );
        assert_eq!(
            check_request(&o, Requester::Buyer, "ada", 0, at(1), WINDOW),
            Err(RefundRefused::NotPositive)
        );
        assert_eq!(
            may_ask(&o, Requester::Buyer, "ada", at(31 * 24), WINDOW),
            Err(RefundRefused::WindowPassed(30))
        );
        // A failed refund gives its amount back.
        let o = order(vec![existing("ada", 300, RefundStatus::Failed)]);
        assert_eq!(may_ask(&o, Requester::Buyer, "ada", at(1), WINDOW), Ok(1_000));
        // A refund made elsewhere (reported by the provider) counts too.
        let mut o = order(vec![]);
        o.refunded_minor = 400;
        assert_eq!(may_ask(&o, Requester::Buyer, "ada", at(1), WINDOW), Ok(600));
    }

    #[test]
    fn vendors_ask_for_their_own_lines_at_any_time() {
        let o = order(vec![
            existing("vera", 200, RefundStatus::Confirmed),
            existing("ada", 300, RefundStatus::Submitted),
        ]);
        assert_eq!(may_ask(&o, Requester::Vendor, "vera", at(100 * 24), WINDOW), Ok(400));
        assert_eq!(may_ask(&o, Requester::Vendor, "vic", at(1), WINDOW), Ok(500));
    }

    #[test]
    fn only_paid_orders_and_a_bounded_number_of_refunds() {
        let mut o = order(vec![]);
        o.status = OrderStatus::Refunded;
        assert_eq!(
            may_ask(&o, Requester::Buyer, "ada", at(1), WINDOW),
            Err(RefundRefused::NotPaid)
        );
        let many = vec![existing("ada", 1, RefundStatus::Failed); MAX_REFUNDS];
        assert_eq!(
            may_ask(&order(many), Requester::Buyer, "ada", at(1), WINDOW),
            Err(RefundRefused::TooMany)
        );
    }

    #[test]
    fn a_cumulative_total_confirms_submitted_refunds_oldest_first() {
        let refunds = vec![
            existing("ada", 300, RefundStatus::Submitted),
            existing("vera", 200, RefundStatus::Submitted),
            existing("ada", 100, RefundStatus::Failed),
        ];
        assert_eq!(confirmed_by(&refunds, 0), Vec::<usize>::new());
        assert_eq!(confirmed_by(&refunds, 300), vec![0]);
        assert_eq!(confirmed_by(&refunds, 500), vec![0, 1]);
        let mut later = refunds.clone();
        later[0].status = RefundStatus::Confirmed;
        assert_eq!(confirmed_by(&later, 300), Vec::<usize>::new());
        assert_eq!(confirmed_by(&later, 500), vec![1]);
    }
}
