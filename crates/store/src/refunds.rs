//! Refunds, recorded on their order (rules in `domain::refunds`).
//!
//! ```text
//! orders/{orderId}.refunds: [{ refund_id, amount_minor, requested_by, requester, status,
//!                              provider_refund_id, failure }]
//! ```
//!
//! A refund lives inside its order document (at most `domain::refunds::MAX_REFUNDS` of them),
//! so asking, submitting and confirming each read and write ONE document, and the amount left to
//! refund can never be asked twice by racing requests: asking and confirming in one
//! transaction; the provider's answer in one write guarded by the update time of the read that
//! found the refund (a transaction decides again when the order moved in between).
//!
//! - [`Refunds::request`]: the buyer or a vendor of the order asks (the api's `requestRefund`);
//!   the same refund id again answers the recorded refund (idempotent).
//! - [`Refunds::prepare`]: the refunder finds the refund it executes, or records the refund of a
//!   `refund_pending` order (paid without stock) under the id `oos_{orderId}`.
//! - [`Refunds::mark`]: the refunder records the provider's answer (submitted with its refund
//!   id, or failed with its reason); a refund only moves forward.
//! - Confirmation comes from the provider's webhook through `Payments::apply_event`, which
//!   raises `refunded_minor` and confirms the refunds it covers.

use chrono::{DateTime, TimeDelta, Utc};
use domain::payments::OrderStatus;
use domain::refunds::{OrderFacts, RefundRefused, RefundStatus, Requester};

use crate::db::{Db, decode};
use crate::error::{Code, Error};
use crate::inventory::{to_chrono, to_instant};
use crate::paths;
use crate::payments::{Order, PaymentRef, RefundEntry};
use firestore::gcloud_sdk::prost_types::Timestamp;

/// Why a refund request was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskRefused {
    /// No such order, or the caller is neither its buyer nor one of its vendors.
    NotFound,
    /// The rules refuse it.
    Refused(RefundRefused),
    /// The refund id was used with another order or amount.
    Conflict,
}

/// A recorded refund and what it refunds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The refund.
    pub entry: RefundEntry,
    /// The payment it refunds (the order's current payment).
    pub payment: PaymentRef,
    /// The buyer.
    pub uid: String,
    /// The order's currency.
    pub currency: String,
    /// True when this call recorded it (false: it was recorded before).
    pub created: bool,
    /// The order as this answer read it outside a transaction, for [`Refunds::mark`].
    pub seen: Option<Seen>,
}

/// Refund operations on one database.
#[derive(Debug, Clone)]
pub struct Refunds {
    db: Db,
}

/// The payment a refund of `order` returns money from.
fn paid_payment(order: &Order) -> Option<PaymentRef> {
    let current = order.current_payment_id.as_deref()?;
    order
        .payments
        .iter()
        .find(|p| p.payment_id == current && p.provider_payment_id.is_some())
        .cloned()
}

fn facts<'a>(order: &'a Order, vendor: &str) -> OrderFacts<'a> {
    OrderFacts {
        status: order.status,
        created_at: to_chrono(order.created_at),
        amount_minor: order.amount_minor,
        refunded_minor: order.refunded_minor,
        vendor_items_minor: order
            .items
            .iter()
            .filter(|i| i.vendor_id.as_deref() == Some(vendor))
            .map(|i| i.quantity * i.unit_price_minor)
            .sum(),
        refunds: order.refunds.iter().map(RefundEntry::facts).collect(),
    }
}

impl Refunds {
    /// Refunds on `db`.
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// `uid` asks for `amount_minor` back on `order_id` (`None`: everything they may ask for)
    /// under the unique `refund_id` (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub async fn request(
        &self,
        order_id: &str,
        uid: &str,
        amount_minor: Option<i64>,
        refund_id: &str,
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<Result<Recorded, AskRefused>, Error> {
        let path = paths::order(order_id)?;
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut order) = tx.get::<Order>(path).await? else {
                        return Ok(Err(AskRefused::NotFound));
                    };
                    let requester = if order.uid == uid {
                        Requester::Buyer
                    } else if order.vendor_ids.iter().any(|v| v == uid) {
                        Requester::Vendor
                    } else {
                        return Ok(Err(AskRefused::NotFound));
                    };
                    let Some(payment) = paid_payment(&order) else {
                        return Ok(Err(AskRefused::Refused(RefundRefused::NotPaid)));
                    };
                    if let Some(entry) = order.refunds.iter().find(|r| r.refund_id == refund_id) {
                        let same = entry.requested_by == uid
                            && amount_minor.is_none_or(|a| a == entry.amount_minor);
                        return Ok(if same {
                            Ok(Recorded {
                                entry: entry.clone(),
                                payment,
                                uid: order.uid.clone(),
                                currency: order.currency.clone(),
                                created: false,
                                seen: None,
                            })
                        } else {
                            Err(AskRefused::Conflict)
                        });
                    }
                    let rules = facts(&order, uid);
                    let amount = match amount_minor {
                        Some(a) => a,
                        None => {
                            match domain::refunds::may_ask(&rules, requester, uid, now, window) {
                                Ok(left) => left,
                                Err(refused) => return Ok(Err(AskRefused::Refused(refused))),
                            }
                        }
                    };
                    if let Err(refused) =
                        domain::refunds::check_request(&rules, requester, uid, amount, now, window)
                    {
                        return Ok(Err(AskRefused::Refused(refused)));
                    }
                    let entry = RefundEntry {
                        refund_id: refund_id.to_owned(),
                        amount_minor: amount,
                        requested_by: uid.to_owned(),
                        requester,
                        status: RefundStatus::Requested,
                        provider_refund_id: None,
                        failure: None,
                    };
                    order.refunds.push(entry.clone());
                    order.updated_at = to_instant(now);
                    tx.set(path, &order)?;
                    Ok::<_, Error>(Ok(Recorded {
                        entry,
                        payment,
                        uid: order.uid.clone(),
                        currency: order.currency.clone(),
                        created: true,
                        seen: None,
                    }))
                })
            })
            .await
    }

    /// The refund `refund_id` of `order_id` (`None` for the out-of-stock refund: recorded
    /// here, for what is left on the order, when the order is `refund_pending`). `None` when
    /// there is no such order, refund, or paid payment.
    ///
    /// A refund already recorded (every request of the api's) is answered from one plain read,
    /// kept in [`Recorded::seen`] for [`Refunds::mark`]; only recording the out-of-stock refund
    /// takes a transaction.
    pub async fn prepare(
        &self,
        order_id: &str,
        refund_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Recorded>, Error> {
        let path = paths::order(order_id)?;
        let path = &path;
        let oos_id = format!("oos_{order_id}");
        let oos_id = &oos_id;
        let Some(doc) = self.db.get_document(path, None).await? else { return Ok(None) };
        let order: Order = decode(path, &doc)?;
        match lookup(&order, refund_id, oos_id) {
            Lookup::Found(recorded) => {
                let seen = doc.update_time.map(|update_time| Seen { order, update_time });
                return Ok(Some(Recorded { seen, ..*recorded }));
            }
            Lookup::Missing => return Ok(None),
            Lookup::OutOfStock => {}
        }
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut order) = tx.get::<Order>(path).await? else { return Ok(None) };
                    match lookup(&order, refund_id, oos_id) {
                        Lookup::Found(recorded) => return Ok(Some(*recorded)),
                        Lookup::Missing => return Ok(None),
                        Lookup::OutOfStock => {}
                    }
                    let Some(payment) = paid_payment(&order) else { return Ok(None) };
                    let left = domain::refunds::left_on_order(&facts(&order, ""));
                    if left <= 0 {
                        return Ok(None);
                    }
                    let entry = RefundEntry {
                        refund_id: oos_id.clone(),
                        amount_minor: left,
                        requested_by: String::new(),
                        requester: Requester::System,
                        status: RefundStatus::Requested,
                        provider_refund_id: None,
                        failure: None,
                    };
                    let answer = Recorded {
                        entry: entry.clone(),
                        payment,
                        uid: order.uid.clone(),
                        currency: order.currency.clone(),
                        created: true,
                        seen: None,
                    };
                    order.refunds.push(entry);
                    order.updated_at = to_instant(now);
                    tx.set(path, &order)?;
                    Ok::<_, Error>(Some(answer))
                })
            })
            .await
    }

    /// Records the provider's answer to refund `refund_id`: `Submitted` with its refund id, or
    /// `Failed` with the reason. Only `requested` refunds move; answers whether this call
    /// moved it.
    ///
    /// With `seen` (the order as [`Refunds::prepare`] read it), one write guarded by that
    /// read's update time; when the order changed since (or without `seen`), a transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn mark(
        &self,
        order_id: &str,
        refund_id: &str,
        seen: Option<&Seen>,
        status: RefundStatus,
        provider_refund_id: Option<&str>,
        failure: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let path = paths::order(order_id)?;
        let path = &path;
        let answer = Answer { refund_id, status, provider_refund_id, failure, now };
        if let Some(seen) = seen.filter(|s| s.order.id == order_id) {
            let mut order = seen.order.clone();
            if answer.apply(&mut order) {
                let mut write = self.db.set_write(path, &order)?;
                write.current_document = Some(Db::update_time_precondition(seen.update_time));
                match self.db.commit(vec![write]).await {
                    Ok(()) => return Ok(true),
                    // The order moved (or went) since it was read: decide again on what it is now.
                    Err(e)
                        if matches!(e.code(), Some(Code::FailedPrecondition | Code::NotFound)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut order) = tx.get::<Order>(path).await? else { return Ok(false) };
                    if !answer.apply(&mut order) {
                        return Ok(false);
                    }
                    tx.set(path, &order)?;
                    Ok::<_, Error>(true)
                })
            })
            .await
    }
}

/// The order as [`Refunds::prepare`] read it and that read's update time.
#[derive(Debug, Clone)]
pub struct Seen {
    order: Order,
    update_time: Timestamp,
}

/// One version of one order: the same document at the same update time.
impl PartialEq for Seen {
    fn eq(&self, other: &Self) -> bool {
        self.order.id == other.order.id && self.update_time == other.update_time
    }
}

impl Eq for Seen {}

/// What [`lookup`] found on an order.
enum Lookup {
    /// The refund is recorded.
    Found(Box<Recorded>),
    /// No such refund, or nothing to refund from.
    Missing,
    /// The out-of-stock refund is to be recorded.
    OutOfStock,
}

/// The refund `refund_id` (`None`: the out-of-stock refund `oos_id`) on `order`.
fn lookup(order: &Order, refund_id: Option<&str>, oos_id: &str) -> Lookup {
    let Some(payment) = paid_payment(order) else { return Lookup::Missing };
    let wanted = refund_id.unwrap_or(oos_id);
    if let Some(entry) = order.refunds.iter().find(|r| r.refund_id == wanted) {
        return Lookup::Found(Box::new(Recorded {
            entry: entry.clone(),
            payment,
            uid: order.uid.clone(),
            currency: order.currency.clone(),
            created: false,
            seen: None,
        }));
    }
    if refund_id.is_some() || order.status != OrderStatus::RefundPending {
        return Lookup::Missing;
    }
    Lookup::OutOfStock
}

/// The provider's answer to a refund, for [`Refunds::mark`].
#[derive(Clone, Copy)]
struct Answer<'a> {
    refund_id: &'a str,
    status: RefundStatus,
    provider_refund_id: Option<&'a str>,
    failure: Option<&'a str>,
    now: DateTime<Utc>,
}

impl Answer<'_> {
    /// Moves the refund on `order`; false when there is nothing to move.
    fn apply(&self, order: &mut Order) -> bool {
        let Some(entry) = order.refunds.iter_mut().find(|r| r.refund_id == self.refund_id) else {
            return false;
        };
        match entry.status {
            RefundStatus::Requested => {
                entry.status = self.status;
                entry.provider_refund_id = self.provider_refund_id.map(str::to_owned);
                entry.failure = self.failure.map(str::to_owned);
            }
            // The provider's confirmation overtook its answer: keep the id.
            RefundStatus::Confirmed if entry.provider_refund_id.is_none() => {
                entry.provider_refund_id = self.provider_refund_id.map(str::to_owned);
            }
            _ => return false,
        }
        order.updated_at = to_instant(self.now);
        true
    }
}
