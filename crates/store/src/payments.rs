//! Orders and payments: creating an order from a buyer's reservations, recording a payment
//! attempt, and applying provider events exactly once in effect (rules in
//! `domain::payments`).
//!
//! ```text
//! orders/{orderId}     { uid, items: [{reservation_id, product_id, variant_id, quantity,
//!                        unit_price_minor}], amount_minor, currency, status, watermark,
//!                        state_changes, payments: [{payment_id, provider, provider_payment_id}],
//!                        current_payment_id, refund_requested, refunded_minor, last_event_id,
//!                        created_at, updated_at }
//! payments/{paymentId} { order_id, uid, provider, provider_payment_id, amount_minor, currency,
//!                        status, redirect_url, reconcile_due_at, reconcile_checks, created_at,
//!                        updated_at }
//! ```
//!
//! An event moves an order only when `domain::payments::decide` finds it is about the order's
//! money: its `(provider, provider payment id)` is one of the order's payments, and the merchant
//! reference, amount and currency the provider reports (where it reports them) match. Anything
//! else changes nothing and comes back as [`Applied::Suspect`].
//!
//! Pesapal payments carry `reconcile_due_at` while their outcome is unknown: the reconcile job
//! asks Pesapal for the status of every payment due (single-field index on that field; the
//! field is removed once the provider gives a final answer or the payment is too old).
//!
//! `apply_event` runs ONE transaction that reads the order (and, for a success, its
//! reservations), asks `domain::payments::apply`, and writes the order, the payment and the
//! committed reservations together; the order's watermark makes a redelivered or older event a
//! no-op, so effects happen once however often and in whatever order events arrive. A success
//! whose reservation expired first re-reserves the units outside the transaction (a
//! deterministic reservation id, so redeliveries reuse it) and then commits it; when the stock
//! is gone the order becomes `refund_pending`.

use chrono::{DateTime, Utc};
use domain::inventory::{ReservationStatus, Sku};
use domain::messages::{PaymentEventKind, PaymentProvider};
use domain::payments::{
    Decision, EventView, IgnoreReason, Mismatch, OrderStatus, OrderView, PaymentStatus, Watermark,
    decide,
};
use firestore::FirestoreInstant;
use firestore::gcloud_sdk::google::firestore::v1::structured_query::field_filter::Operator;
use serde::{Deserialize, Serialize};

use crate::db::{Db, decode, next_decoded};
use crate::error::Error;
use crate::inventory::{Inventory, Reservation, ReserveOutcome, to_instant};
use crate::paths::{self, DocPath};
use crate::rpc;
use crate::tx::Tx;

/// How long after a Pesapal payment is created the reconcile job first asks about it.
pub const FIRST_RECONCILE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The reservation holding the units (replaced when re-reserved).
    pub reservation_id: String,
    /// The product.
    pub product_id: String,
    /// The variant, if any.
    pub variant_id: Option<String>,
    /// Units.
    pub quantity: i64,
    /// Price per unit, minor units.
    pub unit_price_minor: i64,
    /// The product's vendor (absent on products without one, and on orders placed before
    /// orders carried vendors).
    #[serde(default)]
    pub vendor_id: Option<String>,
}

/// A payment attempt of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRef {
    /// `payments/{payment_id}`
    pub payment_id: String,
    /// Who takes the money.
    pub provider: PaymentProvider,
    /// The provider's id, once it answered.
    pub provider_payment_id: Option<String>,
}

/// `orders/{id}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Document id.
    pub id: String,
    /// The buyer.
    pub uid: String,
    /// What is bought.
    pub items: Vec<OrderItem>,
    /// Total, minor units.
    pub amount_minor: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// Where it is.
    pub status: OrderStatus,
    /// The last event applied.
    #[serde(default)]
    pub watermark: Option<Watermark>,
    /// How many times an event changed the status.
    #[serde(default)]
    pub state_changes: u32,
    /// Payment attempts, oldest first.
    #[serde(default)]
    pub payments: Vec<PaymentRef>,
    /// The latest attempt.
    #[serde(default)]
    pub current_payment_id: Option<String>,
    /// Paid with no stock left: the money must go back.
    #[serde(default)]
    pub refund_requested: bool,
    /// Refunded so far by partial refunds, minor units (a whole refund moves the status).
    #[serde(default)]
    pub refunded_minor: i64,
    /// The provider event that made the last change.
    #[serde(default)]
    pub last_event_id: Option<String>,
    /// The vendors of the items, sorted, each once (vendor order listings filter on it).
    #[serde(default)]
    pub vendor_ids: Vec<String>,
    /// Refunds asked for, oldest first (`store::refunds`; at most
    /// `domain::refunds::MAX_REFUNDS`).
    #[serde(default)]
    pub refunds: Vec<RefundEntry>,
    /// The provider event that last raised `refunded_minor`, and by how much (so a redelivery
    /// after a failed publish announces the same refund again).
    #[serde(default)]
    pub last_refund_event_id: Option<String>,
    /// See `last_refund_event_id`.
    #[serde(default)]
    pub last_refund_minor: i64,
    /// Created.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub created_at: FirestoreInstant,
    /// Last change.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub updated_at: FirestoreInstant,
}

/// One refund asked for on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundEntry {
    /// Unique; the provider's idempotency key.
    pub refund_id: String,
    /// Minor units.
    pub amount_minor: i64,
    /// Who asked (uid; empty for the system).
    pub requested_by: String,
    /// As what.
    pub requester: domain::refunds::Requester,
    /// Where it is.
    pub status: domain::refunds::RefundStatus,
    /// The provider's refund id, once it accepted.
    #[serde(default)]
    pub provider_refund_id: Option<String>,
    /// Why the provider refused, if it did.
    #[serde(default)]
    pub failure: Option<String>,
}

impl RefundEntry {
    /// As the refund rules see it.
    pub fn facts(&self) -> domain::refunds::Existing<'_> {
        domain::refunds::Existing {
            requested_by: &self.requested_by,
            amount_minor: self.amount_minor,
            status: self.status,
        }
    }
}

/// `payments/{id}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// Document id.
    pub id: String,
    /// The order.
    pub order_id: String,
    /// The buyer.
    pub uid: String,
    /// Who takes the money.
    pub provider: PaymentProvider,
    /// The provider's id, once it answered.
    #[serde(default)]
    pub provider_payment_id: Option<String>,
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// Where it is.
    pub status: PaymentStatus,
    /// Pesapal: where the buyer pays.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// When the reconcile job should next ask the provider (Pesapal payments whose outcome
    /// is not final yet); absent otherwise.
    #[serde(
        default,
        with = "firestore::serialize_as_optional_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub reconcile_due_at: Option<FirestoreInstant>,
    /// How many times the reconcile job asked.
    #[serde(default)]
    pub reconcile_checks: u32,
    /// Created.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub created_at: FirestoreInstant,
    /// Last change.
    #[serde(with = "firestore::serialize_as_timestamp")]
    pub updated_at: FirestoreInstant,
}

impl Order {
    /// When the order was placed.
    pub fn created(&self) -> DateTime<Utc> {
        crate::inventory::to_chrono(self.created_at)
    }

    /// The order's payment whose provider is `provider` and provider id `provider_payment_id`.
    pub fn payment_ref(
        &self,
        provider: PaymentProvider,
        provider_payment_id: &str,
    ) -> Option<&PaymentRef> {
        self.payments.iter().find(|p| {
            p.provider == provider && p.provider_payment_id.as_deref() == Some(provider_payment_id)
        })
    }
}

impl Payment {
    /// When the payment was created.
    pub fn created(&self) -> DateTime<Utc> {
        crate::inventory::to_chrono(self.created_at)
    }
}

/// The fields of `products/{p}` an order needs (price, variant prices, vendor).
#[derive(Debug, Clone, Deserialize)]
struct ProductPrice {
    price_minor: i64,
    currency: String,
    #[serde(default)]
    vendor_id: Option<String>,
    #[serde(default)]
    variants: Vec<domain::catalogue::Variant>,
}

impl ProductPrice {
    /// The unit price of `variant_id` (its own price, else the product's).
    fn unit_price(&self, variant_id: Option<&str>) -> i64 {
        variant_id
            .and_then(|id| self.variants.iter().find(|v| v.id == id))
            .and_then(|v| v.price_minor)
            .unwrap_or(self.price_minor)
    }
}

/// Why an order cannot be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRefused {
    /// No reservations given.
    Empty,
    /// A reservation does not exist or is not the buyer's.
    UnknownReservation(String),
    /// A reservation is no longer held (released, expired, sold).
    NotHeld(String),
    /// A product has no price.
    NoPrice(String),
    /// Products in different currencies.
    MixedCurrencies,
    /// The order exists with other contents.
    Conflict,
    /// A reservation is listed more than once.
    DuplicateReservation(String),
    /// The order cannot take a payment now (paid, refunded, failed for good), or the payment id
    /// is another order's.
    NotPayable,
}

/// A resolved provider event to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEvent {
    /// The provider.
    pub provider: PaymentProvider,
    /// Provider event id.
    pub event_id: String,
    /// Our order.
    pub order_id: String,
    /// Provider payment id.
    pub provider_payment_id: String,
    /// What happened (never `StatusChanged`: resolve hints first).
    pub kind: PaymentEventKind,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// The merchant reference (our order id) the provider reports for the payment, if any.
    pub merchant_reference: Option<String>,
    /// The amount the provider reports, minor units, if any.
    pub amount_minor: Option<i64>,
    /// The currency the provider reports, if any.
    pub currency: Option<String>,
    /// For a refund: refunded so far, minor units (cumulative), if the provider says.
    pub amount_refunded_minor: Option<i64>,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The order moved.
    Changed {
        /// Before.
        from: OrderStatus,
        /// The order after the change.
        order: Box<Order>,
        /// Units committed (sold) by this change.
        committed_units: i64,
    },
    /// Nothing changed.
    Ignored(IgnoreReason),
    /// Part of the amount was refunded: recorded on the order, status unchanged.
    PartiallyRefunded {
        /// Refunded so far, minor units.
        refunded_minor: i64,
        /// The order after it.
        order: Box<Order>,
    },
    /// The event is not about this order's money: nothing changed (a suspected forgery).
    Suspect(Mismatch),
    /// No such order.
    UnknownOrder,
}

/// Orders and payments on one database.
#[derive(Debug, Clone)]
pub struct Payments {
    db: Db,
    inventory: Inventory,
}

enum Attempt {
    Done(Applied),
    /// These items' reservations are no longer held: re-reserve, then try again.
    Lost(Vec<usize>),
}

/// The paths of `ids`' reservations.
fn reservation_paths(ids: &[String]) -> Result<Vec<DocPath>, Error> {
    Ok(ids.iter().map(|id| paths::reservation(id)).collect::<Result<_, _>>()?)
}

/// Whether `order` is `uid`'s and was made from `reservation_ids`, in that order.
fn same_order(order: &Order, uid: &str, reservation_ids: &[String]) -> bool {
    order.uid == uid
        && order.items.len() == reservation_ids.len()
        && order.items.iter().zip(reservation_ids).all(|(i, r)| &i.reservation_id == r)
}

/// A new order for `uid` from the `reservations` of `reservation_ids` (read by the caller, in
/// that order), priced from their products, which are read in one round trip. The refusal is
/// the first the items meet in order: a reservation's own, then its product's.
async fn price_order(
    tx: &Tx<'_>,
    uid: &str,
    order_id: &str,
    reservation_ids: &[String],
    reservations: Vec<Option<Reservation>>,
    now: DateTime<Utc>,
) -> Result<Result<Order, OrderRefused>, Error> {
    // The reservations up to the first that cannot be bought; their products are read together.
    let mut held = Vec::new();
    let mut refused = None;
    for (found, id) in reservations.into_iter().zip(reservation_ids) {
        match found.filter(|r| r.uid == uid) {
            None => {
                refused = Some(OrderRefused::UnknownReservation(id.clone()));
                break;
            }
            Some(r)
                if r.status != ReservationStatus::Held
                    || r.expires() <= now
                    || r.order_id.is_some() =>
            {
                refused = Some(OrderRefused::NotHeld(id.clone()));
                break;
            }
            Some(r) => held.push((id, r)),
        }
    }
    let mut product_ids: Vec<&str> = held.iter().map(|(_, r)| r.product_id.as_str()).collect();
    product_ids.sort_unstable();
    product_ids.dedup();
    let product_paths =
        product_ids.iter().map(|id| paths::product(id)).collect::<Result<Vec<_>, _>>()?;
    let prices: Vec<Option<ProductPrice>> =
        if product_paths.is_empty() { Vec::new() } else { tx.get_all(&product_paths).await? };
    let mut items = Vec::new();
    let mut currency: Option<String> = None;
    for (id, r) in &held {
        let price = product_ids
            .binary_search(&r.product_id.as_str())
            .ok()
            .and_then(|at| prices.get(at))
            .and_then(Option::as_ref);
        let Some(price) = price else {
            return Ok(Err(OrderRefused::NoPrice(r.product_id.clone())));
        };
        let price_currency = price.currency.to_lowercase();
        if currency.get_or_insert_with(|| price_currency.clone()) != &price_currency {
            return Ok(Err(OrderRefused::MixedCurrencies));
        }
        items.push(OrderItem {
            reservation_id: (*id).clone(),
            product_id: r.product_id.clone(),
            variant_id: r.variant_id.clone(),
            quantity: r.quantity,
            unit_price_minor: price.unit_price(r.variant_id.as_deref()),
            vendor_id: price.vendor_id.clone(),
        });
    }
    if let Some(refused) = refused {
        return Ok(Err(refused));
    }
    let mut vendor_ids: Vec<String> = items.iter().filter_map(|i| i.vendor_id.clone()).collect();
    vendor_ids.sort();
    vendor_ids.dedup();
    Ok(Ok(Order {
        id: order_id.to_owned(),
        vendor_ids,
        refunds: Vec::new(),
        last_refund_event_id: None,
        last_refund_minor: 0,
        uid: uid.to_owned(),
        amount_minor: items.iter().map(|i| i.quantity * i.unit_price_minor).sum(),
        items,
        currency: currency.unwrap_or_default(),
        status: OrderStatus::AwaitingPayment,
        watermark: None,
        state_changes: 0,
        payments: Vec::new(),
        current_payment_id: None,
        refund_requested: false,
        refunded_minor: 0,
        last_event_id: None,
        created_at: to_instant(now),
        updated_at: to_instant(now),
    }))
}

/// A new pending payment attempt `payment_id` on `order`, which now names it as its current one.
fn attach_payment(
    order: &mut Order,
    payment_id: &str,
    provider: PaymentProvider,
    now: DateTime<Utc>,
) -> Payment {
    order.payments.push(PaymentRef {
        payment_id: payment_id.to_owned(),
        provider,
        provider_payment_id: None,
    });
    order.current_payment_id = Some(payment_id.to_owned());
    order.updated_at = to_instant(now);
    Payment {
        id: payment_id.to_owned(),
        order_id: order.id.clone(),
        uid: order.uid.clone(),
        provider,
        provider_payment_id: None,
        amount_minor: order.amount_minor,
        currency: order.currency.clone(),
        status: PaymentStatus::Pending,
        redirect_url: None,
        reconcile_due_at: None,
        reconcile_checks: 0,
        created_at: to_instant(now),
        updated_at: to_instant(now),
    }
}

impl Payments {
    /// Orders and payments on `db`.
    pub fn new(db: &Db) -> Self {
        // A payment that arrives after its hold ended re-reserves its units: the buyer has paid,
        // so the cap on units held at once does not apply to that re-reservation.
        Self { db: db.clone(), inventory: Inventory::new(db).with_max_held_units(i64::MAX) }
    }

    /// Reads `orders/{id}`.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, Error> {
        self.db.get(&paths::order(id)?).await
    }

    /// Reads `payments/{id}`.
    pub async fn payment(&self, id: &str) -> Result<Option<Payment>, Error> {
        self.db.get(&paths::payment(id)?).await
    }

    /// Opens `orders/{order_id}` for `uid` and its payment attempt `payments/{payment_id}` with
    /// `provider`, in one transaction. The order is created from the buyer's held reservations,
    /// priced from the products, unless it exists with the same reservations (then it takes a
    /// new attempt if it still accepts payment). Idempotent: the same ids again return what the
    /// first call made.
    ///
    /// Round trips: the order, the payment and the reservations in one read, the products in a
    /// second, the commit (a repeat: the read and an empty commit).
    #[allow(clippy::too_many_arguments)]
    pub async fn open_order(
        &self,
        uid: &str,
        order_id: &str,
        payment_id: &str,
        reservation_ids: &[String],
        provider: PaymentProvider,
        now: DateTime<Utc>,
    ) -> Result<Result<(Order, Payment), OrderRefused>, Error> {
        if reservation_ids.is_empty() {
            return Ok(Err(OrderRefused::Empty));
        }
        if let Some(twice) = domain::payments::first_repeated(reservation_ids) {
            return Ok(Err(OrderRefused::DuplicateReservation(twice.clone())));
        }
        let order_path = paths::order(order_id)?;
        let payment_path = paths::payment(payment_id)?;
        let reservation_paths = reservation_paths(reservation_ids)?;
        let (order_path, payment_path, reservation_paths) =
            (&order_path, &payment_path, &reservation_paths);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let wanted: Vec<DocPath> = [order_path, payment_path]
                        .into_iter()
                        .chain(reservation_paths)
                        .cloned()
                        .collect();
                    let mut docs = tx.get_documents(&wanted).await?.into_iter();
                    let existing = next_decoded::<Order>(&mut docs, order_path)?;
                    let payment = next_decoded::<Payment>(&mut docs, payment_path)?;
                    if existing.as_ref().is_some_and(|o| !same_order(o, uid, reservation_ids)) {
                        return Ok(Err(OrderRefused::Conflict));
                    }
                    if let Some(payment) = payment {
                        // The attempt is made with its order, in one commit.
                        return Ok(match existing {
                            Some(order) if payment.order_id == order_id && payment.uid == uid => {
                                Ok((order, payment))
                            }
                            _ => Err(OrderRefused::NotPayable),
                        });
                    }
                    let (mut order, new) = match existing {
                        Some(order) => (order, false),
                        None => {
                            let reservations = reservation_paths
                                .iter()
                                .map(|path| next_decoded::<Reservation>(&mut docs, path))
                                .collect::<Result<Vec<_>, _>>()?;
                            match price_order(tx, uid, order_id, reservation_ids, reservations, now)
                                .await?
                            {
                                Ok(order) => (order, true),
                                Err(refused) => return Ok(Err(refused)),
                            }
                        }
                    };
                    if !order.status.accepts_payment() {
                        return Ok(Err(OrderRefused::NotPayable));
                    }
                    let payment = attach_payment(&mut order, payment_id, provider, now);
                    tx.create(payment_path, &payment)?;
                    if new {
                        tx.create(order_path, &order)?;
                    } else {
                        tx.set(order_path, &order)?;
                    }
                    Ok(Ok((order, payment)))
                })
            })
            .await
    }

    /// Records the provider's id for the payment attempt `payment_id` of `order_id` (after the
    /// provider answered).
    ///
    /// Round trips: the payment and the order in one read, the commit.
    pub async fn record_provider_payment(
        &self,
        order_id: &str,
        payment_id: &str,
        provider_payment_id: &str,
        redirect_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let payment_path = paths::payment(payment_id)?;
        let order_path = paths::order(order_id)?;
        let (payment_path, order_path) = (&payment_path, &order_path);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let mut docs = tx
                        .get_documents(&[payment_path.clone(), order_path.clone()])
                        .await?
                        .into_iter();
                    let Some(mut payment) = next_decoded::<Payment>(&mut docs, payment_path)?
                    else {
                        return Err(Error::Invalid(format!("payment {payment_id} does not exist")));
                    };
                    if payment.order_id != order_id {
                        return Err(Error::Invalid(format!(
                            "payment {payment_id} is not order {order_id}'s"
                        )));
                    }
                    let Some(mut order) = next_decoded::<Order>(&mut docs, order_path)? else {
                        return Err(Error::Invalid(format!("order {order_id} does not exist")));
                    };
                    payment.provider_payment_id = Some(provider_payment_id.to_owned());
                    payment.redirect_url = redirect_url.map(str::to_owned);
                    payment.updated_at = to_instant(now);
                    if payment.provider == PaymentProvider::Pesapal
                        && payment.status == PaymentStatus::Pending
                    {
                        // Pesapal's IPN may never come: the reconcile job asks after a while.
                        payment.reconcile_due_at = Some(to_instant(now + FIRST_RECONCILE));
                    }
                    for r in &mut order.payments {
                        if r.payment_id == payment_id {
                            r.provider_payment_id = Some(provider_payment_id.to_owned());
                        }
                    }
                    tx.set(payment_path, &payment)?;
                    tx.set(order_path, &order)?;
                    Ok(())
                })
            })
            .await
    }

    /// Applies a resolved provider event (see the module docs). `now` stamps the writes.
    pub async fn apply_event(
        &self,
        event: &ResolvedEvent,
        now: DateTime<Utc>,
    ) -> Result<Applied, Error> {
        let mut out_of_stock = false;
        for _round in 0..3 {
            match self.attempt(event, out_of_stock, now).await? {
                Attempt::Done(applied) => return Ok(applied),
                Attempt::Lost(items) => {
                    if !self.re_reserve(event, &items, now).await? {
                        out_of_stock = true;
                    }
                }
            }
        }
        Err(Error::rpc(crate::Code::Aborted, "reservations kept changing while applying a payment"))
    }

    /// Whether `orders/{order_id}` exists and one of its payments is `provider`'s
    /// `provider_payment_id` (one read).
    pub async fn holds_provider_payment(
        &self,
        order_id: &str,
        provider: PaymentProvider,
        provider_payment_id: &str,
    ) -> Result<bool, Error> {
        Ok(self
            .order(order_id)
            .await?
            .is_some_and(|order| order.payment_ref(provider, provider_payment_id).is_some()))
    }

    /// Makes the order's payment `provider_payment_id` due for the reconcile job at `at` at
    /// the latest (an earlier due time stays). `false` when the order holds no such payment.
    /// A payment whose outcome is already final is left alone.
    pub async fn reconcile_soon(
        &self,
        order_id: &str,
        provider: PaymentProvider,
        provider_payment_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let Some(order) = self.order(order_id).await? else { return Ok(false) };
        let Some(payment_ref) = order.payment_ref(provider, provider_payment_id) else {
            return Ok(false);
        };
        let path = paths::payment(&payment_ref.payment_id)?;
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut payment) = tx.get::<Payment>(path).await? else {
                        return Ok(false);
                    };
                    if !matches!(payment.status, PaymentStatus::Pending | PaymentStatus::Processing)
                    {
                        return Ok(true);
                    }
                    let due = to_instant(at);
                    if payment.reconcile_due_at.is_some_and(|d| d <= due) {
                        return Ok(true);
                    }
                    payment.reconcile_due_at = Some(due);
                    tx.set(path, &payment)?;
                    Ok::<_, Error>(true)
                })
            })
            .await
    }

    /// Payments whose outcome the reconcile job should ask the provider about now
    /// (`reconcile_due_at <= now`, oldest first, at most `limit`). One query on a single
    /// field, served by Firestore's automatic single-field index.
    pub async fn due_for_reconcile(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, Error> {
        let mut query = rpc::from(paths::names::PAYMENTS, false);
        query.r#where = rpc::and(vec![rpc::filter(
            "reconcile_due_at",
            Operator::LessThanOrEqual,
            rpc::timestamp(now),
        )]);
        query.order_by = vec![rpc::asc("reconcile_due_at")];
        query.limit = Some(i32::try_from(limit).unwrap_or(i32::MAX));
        let docs = rpc::run(&self.db, self.db.documents_root().to_owned(), query).await?;
        let mut due = Vec::with_capacity(docs.len());
        for doc in docs {
            let id = doc.name.rsplit('/').next().unwrap_or_default().to_owned();
            due.push(crate::db::decode(&paths::payment(&id)?, &doc)?);
        }
        Ok(due)
    }

    /// After the reconcile job asked about `payment_id`: `next` is when to ask again (`None`:
    /// never, the outcome is final or the payment too old). Counts the check. Changes nothing
    /// when the payment is gone or already settled by an event meanwhile.
    pub async fn reschedule_reconcile(
        &self,
        payment_id: &str,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let path = paths::payment(payment_id)?;
        let path = &path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut payment) = tx.get::<Payment>(path).await? else { return Ok(()) };
                    if payment.reconcile_due_at.is_none() {
                        return Ok(());
                    }
                    payment.reconcile_due_at = next.map(to_instant);
                    payment.reconcile_checks += 1;
                    payment.updated_at = to_instant(now);
                    tx.set(path, &payment)?;
                    Ok::<_, Error>(())
                })
            })
            .await
    }

    /// Reserves again the units of `items` under deterministic ids and points the order at
    /// them; `false` when the stock is gone.
    async fn re_reserve(
        &self,
        event: &ResolvedEvent,
        items: &[usize],
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let Some(order) = self.order(&event.order_id).await? else { return Ok(true) };
        let mut replaced = Vec::new();
        for &i in items {
            let Some(item) = order.items.get(i) else { continue };
            // Deterministic: a redelivery of the same payment finds (and reuses) it.
            let new_id = format!(
                "re-{}",
                crate::ledger::scoped_id(&order.id, &format!("{i}:{}", item.reservation_id))
            );
            let existing = self.inventory.reservation(&new_id).await?;
            let held = match existing {
                Some(r)
                    if r.status == ReservationStatus::Held
                        || r.order_id.as_deref() == Some(order.id.as_str()) =>
                {
                    true
                }
                Some(_) => false,
                None => {
                    let sku = Sku {
                        product_id: item.product_id.clone(),
                        variant_id: item.variant_id.clone(),
                    };
                    matches!(
                        self.inventory
                            .reserve(&order.uid, &sku, item.quantity, &new_id, now)
                            .await?,
                        ReserveOutcome::Reserved { .. }
                    )
                }
            };
            if !held {
                return Ok(false);
            }
            replaced.push((i, new_id));
        }
        let order_path = paths::order(&order.id)?;
        let (order_path, replaced) = (&order_path, &replaced);
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut order) = tx.get::<Order>(order_path).await? else { return Ok(()) };
                    for (i, id) in replaced {
                        if let Some(item) = order.items.get_mut(*i) {
                            item.reservation_id.clone_from(id);
                        }
                    }
                    tx.set(order_path, &order)?;
                    Ok::<_, Error>(())
                })
            })
            .await?;
        tracing::info!(order_id = %order.id, items = replaced.len(), "paid after the hold ended: units reserved again");
        Ok(true)
    }

    async fn attempt(
        &self,
        event: &ResolvedEvent,
        out_of_stock: bool,
        now: DateTime<Utc>,
    ) -> Result<Attempt, Error> {
        let order_path = paths::order(&event.order_id)?;
        let order_path = &order_path;
        self.db
            .run_transaction(|tx| {
                Box::pin(async move {
                    let Some(mut order) = tx.get::<Order>(order_path).await? else {
                        return Ok(Attempt::Done(Applied::UnknownOrder));
                    };
                    let payment_ref =
                        order.payment_ref(event.provider, &event.provider_payment_id).cloned();
                    let view = OrderView {
                        id: &order.id,
                        status: order.status,
                        watermark: order.watermark,
                        amount_minor: order.amount_minor,
                        currency: &order.currency,
                        holds_payment: payment_ref.is_some(),
                    };
                    let reported = EventView {
                        kind: event.kind,
                        occurred_at: event.occurred_at,
                        merchant_reference: event.merchant_reference.as_deref(),
                        amount_minor: event.amount_minor,
                        currency: event.currency.as_deref(),
                        amount_refunded_minor: event.amount_refunded_minor,
                    };
                    let (to, payment_status, commit_stock, watermark) =
                        match decide(&view, &reported) {
                            Decision::Ignore(reason) => {
                                return Ok(Attempt::Done(Applied::Ignored(reason)));
                            }
                            Decision::Suspect(mismatch) => {
                                return Ok(Attempt::Done(Applied::Suspect(mismatch)));
                            }
                            Decision::PartialRefund { refunded_minor } => {
                                if refunded_minor > order.refunded_minor {
                                    note_refunded(&mut order, refunded_minor, &event.event_id);
                                    order.updated_at = to_instant(now);
                                    tx.set(order_path, &order)?;
                                }
                                return Ok(Attempt::Done(Applied::PartiallyRefunded {
                                    refunded_minor: order.refunded_minor,
                                    order: Box::new(order),
                                }));
                            }
                            Decision::Transition { order, payment, commit_stock, watermark } => {
                                (order, payment, commit_stock, watermark)
                            }
                        };
                    let payment_path = match &payment_ref {
                        Some(p) => Some(paths::payment(&p.payment_id)?),
                        None => None,
                    };
                    let reservation_paths = if commit_stock && !out_of_stock {
                        order
                            .items
                            .iter()
                            .map(|item| paths::reservation(&item.reservation_id))
                            .collect::<Result<Vec<_>, _>>()?
                    } else {
                        Vec::new()
                    };
                    // The payment and the reservations in one round trip.
                    let wanted: Vec<DocPath> =
                        payment_path.iter().chain(&reservation_paths).cloned().collect();
                    let mut docs = tx.get_documents(&wanted).await?.into_iter();
                    let payment = match &payment_path {
                        Some(path) => docs
                            .next()
                            .flatten()
                            .map(|d| decode::<Payment>(path, &d))
                            .transpose()?,
                        None => None,
                    };
                    let from = order.status;
                    let mut committed_units = 0;
                    let mut final_status = to;
                    if commit_stock && out_of_stock {
                        final_status = OrderStatus::RefundPending;
                        order.refund_requested = true;
                    } else if commit_stock {
                        let mut reservations = Vec::new();
                        let mut lost = Vec::new();
                        for (i, path) in reservation_paths.into_iter().enumerate() {
                            let found = docs.next().flatten();
                            match found.map(|d| decode::<Reservation>(&path, &d)).transpose()? {
                                Some(r) if r.status == ReservationStatus::Held => {
                                    reservations.push((path, r));
                                }
                                Some(r)
                                    if r.status == ReservationStatus::Committed
                                        && r.order_id.as_deref() == Some(order.id.as_str()) => {}
                                _ => lost.push(i),
                            }
                        }
                        if !lost.is_empty() {
                            return Ok(Attempt::Lost(lost));
                        }
                        for (path, mut r) in reservations {
                            r.status = ReservationStatus::Committed;
                            r.order_id = Some(order.id.clone());
                            r.updated_at = to_instant(now);
                            committed_units += r.quantity;
                            tx.set(&path, &r)?;
                            // Sold units stop counting against the buyer's hold cap now.
                            tx.push_write(self.inventory.release_hold_write(&r)?);
                        }
                    }
                    if final_status == OrderStatus::Refunded {
                        let total = order.amount_minor.max(order.refunded_minor);
                        note_refunded(&mut order, total, &event.event_id);
                    }
                    order.status = final_status;
                    order.watermark = Some(watermark);
                    order.state_changes += 1;
                    order.last_event_id = Some(event.event_id.clone());
                    order.updated_at = to_instant(now);
                    tx.set(order_path, &order)?;
                    if let (Some(path), Some(mut payment)) = (payment_path, payment) {
                        payment.status = payment_status;
                        payment.updated_at = to_instant(now);
                        // A final answer: nothing left to reconcile.
                        if !matches!(
                            payment_status,
                            PaymentStatus::Pending | PaymentStatus::Processing
                        ) {
                            payment.reconcile_due_at = None;
                        }
                        tx.set(&path, &payment)?;
                    }
                    Ok(Attempt::Done(Applied::Changed {
                        from,
                        order: Box::new(order),
                        committed_units,
                    }))
                })
            })
            .await
    }
}

/// Records that the provider reports `refunded_total` refunded on the order (raised by the
/// event `event_id`): the refunds it covers become confirmed (`domain::refunds::confirmed_by`)
/// and the raise is remembered for the `order-refunded` announcement.
fn note_refunded(order: &mut Order, refunded_total: i64, event_id: &str) {
    let raised = refunded_total - order.refunded_minor;
    if raised <= 0 {
        return;
    }
    let facts: Vec<_> = order.refunds.iter().map(RefundEntry::facts).collect();
    for i in domain::refunds::confirmed_by(&facts, refunded_total) {
        order.refunds[i].status = domain::refunds::RefundStatus::Confirmed;
    }
    order.refunded_minor = refunded_total;
    order.last_refund_event_id = Some(event_id.to_owned());
    order.last_refund_minor = raised;
}
