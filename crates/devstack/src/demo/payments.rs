//! Stage 3: reserve and pay. A product with sharded stock is set up through `store` (as the
//! vendor tooling does); `reserveInventory` holds units; `initiatePayment` creates the order and
//! a PaymentIntent at the fake Stripe; a correctly signed `payment_intent.succeeded` webhook
//! goes to payment-webhook, devstack pushes the `payment-events` message to payment-processor,
//! and the order becomes paid with its reservation committed. Before that, a forged Pesapal IPN
//! (a tracking id the fake Pesapal issued for another order, naming the demo's order) is refused
//! by payment-webhook and leaves the order as it was. A second reservation is never
//! paid: `expire-reservations` (run through devstack's Scheduler runner) leaves it alone while
//! held and returns its units once its hold has ended.
//!
//! The hold is `domain::inventory::RESERVATION_TTL` (15 minutes), a constant without a
//! configuration knob, so the demo ends it by moving the reservation's `expires_at` into the
//! past (the only write the demo makes to a server-owned document, and it says so in its
//! check) instead of waiting 15 minutes.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::inventory::{ReservationStatus, Sku};
use domain::payments::{OrderStatus, PaymentStatus};
use serde_json::{Value, json};
use store::inventory::{Inventory, Reservation};
use store::payments::Payments;
use tokio_util::sync::CancellationToken;

use super::signup::SignedUp;
use super::{Ctx, DemoReport, eventually};
use crate::jobs::{self, Clock};

/// Units the demo product starts with.
const STOCK: i64 = 5;
/// Its price, minor units (USD).
const PRICE_MINOR: i64 = 1250;
/// Units the paid reservation takes.
const PAID_UNITS: i64 = 2;
/// Units the abandoned reservation takes.
const ABANDONED_UNITS: i64 = 1;
/// How long the payment may take to land (webhook -> Pub/Sub -> devstack push -> processor).
const PAID_WITHIN: Duration = Duration::from_secs(45);

/// The cleanup job that returns abandoned reservations.
pub const EXPIRE_JOB: &str = "expire-reservations";

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The first signing secret of a `HEARTH_STRIPE_WEBHOOK_SECRETS` value (a comma list during a
/// rotation; Stripe signs with the newest, listed first).
pub fn signing_secret(secrets: &str) -> Option<&str> {
    secrets.split(',').map(str::trim).find(|s| !s.is_empty())
}

/// Checks a PaymentIntent as the fake Stripe holds it against the order it pays.
pub fn check_intent(intent: &Value, order_id: &str, amount_minor: i64) -> Result<(), String> {
    let problems: Vec<String> = [
        (intent["metadata"]["order_id"] != order_id)
            .then(|| format!("metadata.order_id is {}", intent["metadata"]["order_id"])),
        (intent["amount"] != amount_minor).then(|| format!("amount is {}", intent["amount"])),
        (intent["currency"] != "usd").then(|| format!("currency is {}", intent["currency"])),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("intent {}: {}", intent["id"], problems.join("; ")))
    }
}

struct Started {
    order_id: String,
    intent_id: String,
    amount_minor: i64,
}

/// Runs the stage for `user`.
pub async fn run(ctx: &Ctx, report: &mut DemoReport, user: &SignedUp) {
    let inventory = Inventory::new(&ctx.db);
    let sku = Sku::product(format!("demo-bread-{}", ctx.suffix));

    let t = Instant::now();
    let seeded = seed_product(ctx, &inventory, &sku).await;
    let step = format!("a product with {STOCK} units over 2 stock shards (store::inventory)");
    if !report.record(&step, t, seeded) {
        return;
    }

    let t = Instant::now();
    let reserved = reserve(ctx, &inventory, user, &sku, PAID_UNITS, STOCK).await;
    let step = format!("reserveInventory holds {PAID_UNITS} units: stock goes down");
    let (ok, reservation) = record_value(report, &step, t, reserved);
    let Some(reservation) = reservation.filter(|_| ok) else { return };

    let t = Instant::now();
    let started = initiate(ctx, user, &reservation).await;
    let step = "initiatePayment: order awaiting payment, PaymentIntent at the fake Stripe";
    let (_, started) = record_value(report, step, t, started);
    let Some(started) = started else { return };

    let t = Instant::now();
    let forged = forged_ipn(ctx, &started).await;
    let step = "a forged Pesapal IPN (another order's tracking id naming this order) is refused";
    if !report.record(step, t, forged) {
        return;
    }

    let t = Instant::now();
    let sent = send_webhook(ctx, &started).await;
    if !report.record("payment-webhook accepts a signed payment_intent.succeeded", t, sent) {
        return;
    }

    let t = Instant::now();
    let paid = paid(ctx, &inventory, user, &started, &reservation).await;
    report.record(
        "payment-events pushed to payment-processor: order paid, reservation committed",
        t,
        paid,
    );

    abandoned(ctx, report, &inventory, user, &sku, &reservation).await;
}

/// Records `result` (its text part) and passes its value on.
fn record_value<T>(
    report: &mut DemoReport,
    step: &str,
    started: Instant,
    result: Result<(T, String), String>,
) -> (bool, Option<T>) {
    match result {
        Ok((value, detail)) => (report.record(step, started, Ok(detail)), Some(value)),
        Err(e) => (report.record(step, started, Err(e)), None),
    }
}

async fn available(inventory: &Inventory, sku: &Sku) -> Result<i64, String> {
    inventory
        .availability(sku)
        .await
        .map_err(text)?
        .map(|(units, _)| units)
        .ok_or_else(|| format!("{} has no stock document", sku.product_id))
}

async fn seed_product(ctx: &Ctx, inventory: &Inventory, sku: &Sku) -> Result<String, String> {
    let product = store::paths::product(&sku.product_id).map_err(text)?;
    ctx.db
        .set(&product, &json!({"price_minor": PRICE_MINOR, "currency": "usd"}))
        .await
        .map_err(text)?;
    inventory.set_stock(sku, STOCK, 2).await.map_err(text)?;
    match available(inventory, sku).await? {
        STOCK => {
            Ok(format!("{} at {PRICE_MINOR} minor units, {STOCK} available", product.relative()))
        }
        other => Err(format!("{other} available after setting {STOCK}")),
    }
}

/// Reserves `quantity` through the api; checks the reservation document and that stock went
/// from `before` down by `quantity`.
async fn reserve(
    ctx: &Ctx,
    inventory: &Inventory,
    user: &SignedUp,
    sku: &Sku,
    quantity: i64,
    before: i64,
) -> Result<(String, String), String> {
    let result = ctx
        .call(
            &user.id_token,
            "reserveInventory",
            json!({"productId": sku.product_id, "quantity": quantity}),
            None,
        )
        .await?;
    let id = result["reservationId"]
        .as_str()
        .ok_or_else(|| format!("no reservationId in {result}"))?
        .to_owned();
    let held = inventory
        .reservation(&id)
        .await
        .map_err(text)?
        .ok_or_else(|| format!("reservations/{id} is missing"))?;
    if held.status != ReservationStatus::Held || held.quantity != quantity || held.uid != user.uid {
        return Err(format!(
            "reservations/{id} is {:?} x{} for {}",
            held.status, held.quantity, held.uid
        ));
    }
    let after = available(inventory, sku).await?;
    if after != before - quantity {
        return Err(format!("stock {before} -> {after}, expected {}", before - quantity));
    }
    Ok((
        id.clone(),
        format!("reservations/{id} held until {}; stock {before} -> {after}", held.expires()),
    ))
}

async fn initiate(
    ctx: &Ctx,
    user: &SignedUp,
    reservation: &str,
) -> Result<(Started, String), String> {
    let key = format!("demo-{}-pay", ctx.suffix);
    let result = ctx
        .call(
            &user.id_token,
            "initiatePayment",
            json!({"reservationIds": [reservation], "provider": "stripe"}),
            Some(&key),
        )
        .await?;
    let field = |name: &str| {
        result[name].as_str().map(str::to_owned).ok_or_else(|| format!("no {name} in {result}"))
    };
    let (order_id, intent_id) = (field("orderId")?, field("providerPaymentId")?);
    let amount_minor = PRICE_MINOR * PAID_UNITS;
    if result["amountMinor"] != amount_minor || result["status"] != "pending" {
        return Err(format!("initiatePayment answered {result}"));
    }
    let order = Payments::new(&ctx.db)
        .order(&order_id)
        .await
        .map_err(text)?
        .ok_or_else(|| format!("orders/{order_id} is missing"))?;
    if order.status != OrderStatus::AwaitingPayment || order.amount_minor != amount_minor {
        return Err(format!("orders/{order_id} is {:?}, {}", order.status, order.amount_minor));
    }
    let intent = retrieve_intent(ctx, &intent_id).await?;
    check_intent(&intent, &order_id, amount_minor)?;
    let detail =
        format!("orders/{order_id} awaiting_payment, {amount_minor} usd; intent {intent_id}");
    Ok((Started { order_id, intent_id, amount_minor }, detail))
}

/// `GET /v1/payment_intents/{id}` at the fake Stripe, with the key the api was given.
pub(crate) async fn retrieve_intent(ctx: &Ctx, intent_id: &str) -> Result<Value, String> {
    let provider =
        ctx.target.provider.as_deref().ok_or("this stack runs no fake payment provider")?;
    let plan = ctx.plan()?;
    let key = plan
        .functions
        .iter()
        .find(|f| f.name == "api")
        .and_then(|f| f.env.get("HEARTH_STRIPE_SECRET_KEY"))
        .ok_or("the api has no HEARTH_STRIPE_SECRET_KEY")?;
    let response = ctx
        .http
        .get(format!("{provider}/v1/payment_intents/{intent_id}"))
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| format!("the fake provider is unreachable: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("the fake Stripe answered HTTP {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(text)
}

/// The review's forgery: an attacker holds a Pesapal tracking id of their own (here, one the
/// fake Pesapal issues for another merchant reference) and sends an unsigned IPN naming the
/// demo's order. payment-webhook must refuse it (404, `status` 500) and the order must stay as
/// it was; the signed Stripe payment that follows still pays it.
async fn forged_ipn(ctx: &Ctx, started: &Started) -> Result<String, String> {
    let provider =
        ctx.target.provider.as_deref().ok_or("this stack runs no fake payment provider")?;
    let token: Value = ctx
        .http
        .post(format!("{provider}/api/Auth/RequestToken"))
        .json(&json!({"consumer_key": "attacker", "consumer_secret": "attacker"}))
        .send()
        .await
        .map_err(|e| format!("the fake Pesapal is unreachable: {e}"))?
        .json()
        .await
        .map_err(text)?;
    let token = token["token"].as_str().ok_or_else(|| format!("no token in {token}"))?;
    let submitted: Value = ctx
        .http
        .post(format!("{provider}/api/Transactions/SubmitOrderRequest"))
        .bearer_auth(token)
        .json(&json!({"id": format!("attacker-cheap-{}", ctx.suffix), "currency": "USD",
                      "amount": 0.5, "description": "a cheap item", "callback_url": "https://x.test/",
                      "notification_id": "attacker", "billing_address": {"email_address": "a@x.test"}}))
        .send()
        .await
        .map_err(text)?
        .json()
        .await
        .map_err(text)?;
    let tracking = submitted["order_tracking_id"]
        .as_str()
        .ok_or_else(|| format!("no order_tracking_id in {submitted}"))?;
    let order_id = &started.order_id;
    let url = format!("{}/pesapal", ctx.url("payment-webhook")?);
    let response = ctx
        .http
        .get(&url)
        .query(&[
            ("OrderTrackingId", tracking),
            ("OrderMerchantReference", order_id.as_str()),
            ("OrderNotificationType", "IPNCHANGE"),
        ])
        .send()
        .await
        .map_err(|e| format!("payment-webhook unreachable: {e}"))?;
    let status = response.status();
    let ack: Value = response.json().await.unwrap_or_default();
    if status != http::StatusCode::NOT_FOUND || ack["status"] != 500 {
        return Err(format!("the forged IPN was answered HTTP {status}: {ack}"));
    }
    let order = Payments::new(&ctx.db)
        .order(order_id)
        .await
        .map_err(text)?
        .ok_or_else(|| format!("orders/{order_id} is missing"))?;
    if order.status != OrderStatus::AwaitingPayment || order.state_changes != 0 {
        return Err(format!("orders/{order_id} is {:?} after the forged IPN", order.status));
    }
    Ok(format!(
        "tracking id {tracking} (issued for another order) naming {order_id}: HTTP {status}, ack status 500; the order still awaits payment"
    ))
}

async fn send_webhook(ctx: &Ctx, started: &Started) -> Result<String, String> {
    let plan = ctx.plan()?;
    let secrets = plan
        .functions
        .iter()
        .find(|f| f.name == "payment-webhook")
        .and_then(|f| f.env.get("HEARTH_STRIPE_WEBHOOK_SECRETS"))
        .ok_or("payment-webhook has no HEARTH_STRIPE_WEBHOOK_SECRETS")?;
    let secret = signing_secret(secrets).ok_or("HEARTH_STRIPE_WEBHOOK_SECRETS is empty")?;
    let intent = retrieve_intent(ctx, &started.intent_id).await?;
    let event_id = format!("evt_demo_{}", ctx.suffix);
    let event = testkit::fake_provider::stripe_event_for(
        intent,
        &event_id,
        "payment_intent.succeeded",
        Utc::now().timestamp(),
    );
    let url = format!("{}/stripe", ctx.url("payment-webhook")?);
    let response = testkit::fake_provider::post_stripe_webhook(&ctx.http, &url, secret, &event)
        .await
        .map_err(|e| format!("payment-webhook unreachable: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(format!("{event_id} for {}: HTTP {status}", started.order_id))
    } else {
        Err(format!("HTTP {status}: {}", response.text().await.unwrap_or_default()))
    }
}

async fn paid(
    ctx: &Ctx,
    inventory: &Inventory,
    user: &SignedUp,
    started: &Started,
    reservation: &str,
) -> Result<String, String> {
    let payments = Payments::new(&ctx.db);
    let order_id = &started.order_id;
    let order = eventually(PAID_WITHIN, &format!("orders/{order_id} paid"), || async {
        let order = payments.order(order_id).await.map_err(text)?;
        Ok(order.filter(|o| o.status == OrderStatus::Paid))
    })
    .await?;
    let payment_id = order.current_payment_id.clone().ok_or("the order has no current payment")?;
    let payment = payments
        .payment(&payment_id)
        .await
        .map_err(text)?
        .ok_or_else(|| format!("payments/{payment_id} is missing"))?;
    if payment.status != PaymentStatus::Succeeded
        || payment.provider_payment_id.as_deref() != Some(started.intent_id.as_str())
    {
        return Err(format!(
            "payments/{payment_id} is {:?} for {:?}",
            payment.status, payment.provider_payment_id
        ));
    }
    let committed = inventory
        .reservation(reservation)
        .await
        .map_err(text)?
        .ok_or_else(|| format!("reservations/{reservation} is missing"))?;
    if committed.status != ReservationStatus::Committed
        || committed.order_id.as_deref() != Some(order_id.as_str())
    {
        return Err(format!(
            "reservations/{reservation} is {:?} for order {:?}",
            committed.status, committed.order_id
        ));
    }
    let answer = ctx.call(&user.id_token, "getOrder", json!({"orderId": order_id}), None).await?;
    if answer["status"] != "paid" || answer["amountMinor"] != started.amount_minor {
        return Err(format!("getOrder answered {answer}"));
    }
    let units = available(inventory, &committed.sku()).await?;
    if units != STOCK - PAID_UNITS {
        return Err(format!("stock is {units} after the sale, expected {}", STOCK - PAID_UNITS));
    }
    Ok(format!(
        "orders/{order_id} paid; payments/{payment_id} succeeded; reservations/{reservation} committed; getOrder says paid"
    ))
}

/// The abandoned reservation: held, untouched by the job while its hold runs, returned by it
/// once the hold has ended.
async fn abandoned(
    ctx: &Ctx,
    report: &mut DemoReport,
    inventory: &Inventory,
    user: &SignedUp,
    sku: &Sku,
    paid_reservation: &str,
) {
    let before = STOCK - PAID_UNITS;
    let t = Instant::now();
    let reserved = reserve(ctx, inventory, user, sku, ABANDONED_UNITS, before).await;
    let (ok, id) = record_value(report, "a second reservation is made and never paid", t, reserved);
    let Some(id) = id.filter(|_| ok) else { return };

    let t = Instant::now();
    let early = async {
        run_job(ctx).await?;
        let r = reservation(inventory, &id).await?;
        if r.status != ReservationStatus::Held {
            return Err(format!("reservations/{id} is {:?} before its hold ended", r.status));
        }
        let units = available(inventory, sku).await?;
        if units != before - ABANDONED_UNITS {
            return Err(format!("stock is {units}, expected {}", before - ABANDONED_UNITS));
        }
        Ok(format!("reservations/{id} still held until {}; stock stays {units}", r.expires()))
    }
    .await;
    let step = format!("{EXPIRE_JOB} (Scheduler run) leaves a reservation whose hold runs");
    if !report.record(&step, t, early) {
        return;
    }

    let t = Instant::now();
    let expired = async {
        end_hold(ctx, inventory, &id).await?;
        run_job(ctx).await?;
        let r = reservation(inventory, &id).await?;
        if r.status != ReservationStatus::Expired {
            return Err(format!("reservations/{id} is {:?} after the job", r.status));
        }
        let units = available(inventory, sku).await?;
        if units != before {
            return Err(format!("stock is {units} after the job, expected {before}"));
        }
        let sold = reservation(inventory, paid_reservation).await?;
        if sold.status != ReservationStatus::Committed {
            return Err(format!("the paid reservation became {:?}", sold.status));
        }
        Ok(format!(
            "reservations/{id} expired, {ABANDONED_UNITS} unit back: stock {} -> {units}; the paid one stays committed",
            before - ABANDONED_UNITS
        ))
    }
    .await;
    let step = format!(
        "hold ended (expires_at moved back: the 15 min hold has no config knob): {EXPIRE_JOB} returns it to stock"
    );
    report.record(&step, t, expired);
}

async fn reservation(inventory: &Inventory, id: &str) -> Result<Reservation, String> {
    inventory
        .reservation(id)
        .await
        .map_err(text)?
        .ok_or_else(|| format!("reservations/{id} is missing"))
}

/// Ends the hold of `id` now: `expires_at` one second in the past.
async fn end_hold(ctx: &Ctx, inventory: &Inventory, id: &str) -> Result<(), String> {
    let mut r = reservation(inventory, id).await?;
    let past = Utc::now() - chrono::TimeDelta::seconds(1);
    r.expires_at =
        firestore::FirestoreInstant::from_microsecond(past.timestamp_micros()).map_err(text)?;
    ctx.db.set(&store::paths::reservation(id).map_err(text)?, &r).await.map_err(text)
}

/// Runs the cleanup job once, as Cloud Scheduler does (devstack's runner: Scheduler headers,
/// OIDC token, retries).
async fn run_job(ctx: &Ctx) -> Result<(), String> {
    let plan = ctx.plan()?;
    let job = plan
        .jobs
        .iter()
        .find(|j| j.job == EXPIRE_JOB)
        .ok_or_else(|| format!("the manifest schedules no `{EXPIRE_JOB}`"))?;
    let now = Utc::now();
    let clock = Clock::new(Instant::now(), now, 1.0);
    let cancel = CancellationToken::new();
    match jobs::run_once(&ctx.http, &ctx.target.project, job, now, &clock, &cancel).await {
        Some(status) if (200..300).contains(&status) => Ok(()),
        Some(status) => Err(format!("{EXPIRE_JOB} answered HTTP {status}")),
        None => Err(format!("{EXPIRE_JOB} did not answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_signs_with_the_first_listed_secret() {
        assert_eq!(signing_secret("whsec_new, whsec_old"), Some("whsec_new"));
        assert_eq!(signing_secret(" ,whsec_a"), Some("whsec_a"));
        assert_eq!(signing_secret(""), None);
    }

    #[test]
    fn the_intent_must_carry_the_order_and_its_amount() {
        let intent = json!({"id": "pi_1", "amount": 2500, "currency": "usd",
                            "metadata": {"order_id": "ord_1"}});
        assert_eq!(check_intent(&intent, "ord_1", 2500), Ok(()));
        let err = check_intent(&intent, "ord_2", 100).unwrap_err();
        assert!(err.contains("metadata.order_id") && err.contains("amount is 2500"), "{err}");
        let mut eur = intent;
        eur["currency"] = json!("eur");
        assert!(check_intent(&eur, "ord_1", 2500).unwrap_err().contains("currency"));
    }
}
