//! Stage 4: the marketplace from listing to money back. A second user signs up and becomes a
//! vendor (`becomeVendor`), creates a product, adds stock over two shards and publishes it; the
//! demo's user finds it with `listProducts` (by vendor, in stock), reserves and pays it (the
//! PaymentIntent is confirmed at the fake Stripe and its signed `payment_intent.succeeded`
//! webhook goes to payment-webhook); the vendor sees the paid order in `listVendorOrders` and
//! the day's sale in `getVendorSales` (kept by the `order-paid` consumer); the buyer asks for
//! the money back with `requestRefund`, payment-processor executes the refund at the fake
//! Stripe (`refund-requests`), the signed `charge.refunded` webhook confirms it and the order
//! ends `refunded`.

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::payments::OrderStatus;
use domain::refunds::RefundStatus;
use serde_json::{Value, json};
use store::payments::{Order, Payments};

use super::payments::{retrieve_intent, signing_secret};
use super::signup::{SignedUp, sign_up};
use super::{Ctx, DemoReport, eventually};

/// The product's price, minor units (USD).
const PRICE_MINOR: i64 = 1_500;
/// How long an asynchronous step may take (webhook -> Pub/Sub -> devstack push -> function).
const WITHIN: Duration = Duration::from_secs(45);

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn field(v: &Value, name: &str) -> Result<String, String> {
    v[name].as_str().map(str::to_owned).ok_or_else(|| format!("no {name} in {v}"))
}

/// Runs the stage with `buyer` (the signed-up user of the first stage).
pub async fn run(ctx: &Ctx, report: &mut DemoReport, buyer: &SignedUp) {
    let email = format!("seller-{}@example.com", ctx.suffix);
    let password = format!("pw-{}-Vendor!", ctx.suffix);
    let Some(vendor) = sign_up(ctx, report, "a vendor signs up", &email, &password).await else {
        return;
    };

    let t = Instant::now();
    let listed = list_product(ctx, &vendor).await;
    let step = "becomeVendor, createProduct, addStock over 2 shards, publishProduct";
    let Some(product_id) = keep(report, step, t, listed) else { return };

    let t = Instant::now();
    let found = browse(ctx, buyer, &vendor, &product_id).await;
    if !report.record("the buyer finds it with listProducts (by vendor, in stock)", t, found) {
        return;
    }

    let t = Instant::now();
    let bought = buy(ctx, buyer, &product_id).await;
    let step = "reserveInventory, initiatePayment, a signed payment_intent.succeeded: order paid";
    let Some((order_id, intent)) = keep(report, step, t, bought) else { return };

    let t = Instant::now();
    let seen = vendor_sees(ctx, &vendor, &order_id).await;
    report.record("the vendor sees the order (listVendorOrders) and the day's sale", t, seen);

    let t = Instant::now();
    let refunded = refund(ctx, buyer, &order_id, &intent).await;
    report.record(
        "requestRefund, executed at the fake Stripe, confirmed by charge.refunded: refunded",
        t,
        refunded,
    );
}

/// Records `result` and passes its value on when it passed.
fn keep<T>(
    report: &mut DemoReport,
    step: &str,
    started: Instant,
    result: Result<(T, String), String>,
) -> Option<T> {
    match result {
        Ok((value, detail)) => report.record(step, started, Ok(detail)).then_some(value),
        Err(e) => {
            report.record(step, started, Err(e));
            None
        }
    }
}

async fn list_product(ctx: &Ctx, vendor: &SignedUp) -> Result<(String, String), String> {
    let token = &vendor.id_token;
    let handle = format!("demo-{}", ctx.suffix.to_lowercase());
    ctx.call(token, "becomeVendor", json!({"name": "Demo Pottery", "handle": handle}), None)
        .await?;
    let created = ctx
        .call(
            token,
            "createProduct",
            json!({"title": "Clay pot", "description": "Hand made", "category": "kitchen",
                   "images": ["https://img.example.com/pot.png"], "priceMinor": PRICE_MINOR,
                   "currency": "usd"}),
            None,
        )
        .await?;
    let product_id = field(&created, "productId")?;
    if created["status"] != "draft" || created["vendorName"] != "Demo Pottery" {
        return Err(format!("createProduct answered {created}"));
    }
    let stock = ctx
        .call(token, "addStock", json!({"productId": product_id, "units": 3, "shards": 2}), None)
        .await?;
    let published =
        ctx.call(token, "publishProduct", json!({"productId": product_id}), None).await?;
    if published["status"] != "active" || published["inStock"] != true {
        return Err(format!("publishProduct answered {published}"));
    }
    Ok((
        product_id.clone(),
        format!("products/{product_id} active, 3 units over {} shards", stock["shards"]),
    ))
}

async fn browse(
    ctx: &Ctx,
    buyer: &SignedUp,
    vendor: &SignedUp,
    product_id: &str,
) -> Result<String, String> {
    let page = ctx
        .call(&buyer.id_token, "listProducts", json!({"vendorId": vendor.uid, "limit": 10}), None)
        .await?;
    let products = page["products"].as_array().cloned().unwrap_or_default();
    let found = products.iter().find(|p| p["productId"] == product_id);
    match found {
        Some(p) if p["inStock"] == true && p["priceMinor"] == PRICE_MINOR => Ok(format!(
            "{} product(s) of {}; {product_id} at {PRICE_MINOR} usd, in stock",
            products.len(),
            p["vendorName"]
        )),
        _ => Err(format!("listProducts answered {page}")),
    }
}

async fn buy(
    ctx: &Ctx,
    buyer: &SignedUp,
    product_id: &str,
) -> Result<((String, Value), String), String> {
    let token = &buyer.id_token;
    let reserved = ctx
        .call(token, "reserveInventory", json!({"productId": product_id, "quantity": 1}), None)
        .await?;
    let reservation = field(&reserved, "reservationId")?;
    let key = format!("demo-{}-shop", ctx.suffix);
    let started = ctx
        .call(
            token,
            "initiatePayment",
            json!({"reservationIds": [reservation], "provider": "stripe"}),
            Some(&key),
        )
        .await?;
    let (order_id, intent_id) =
        (field(&started, "orderId")?, field(&started, "providerPaymentId")?);
    // The buyer's card is confirmed at the fake Stripe, which then reports the success.
    let provider = ctx.target.provider.as_deref().ok_or("this stack runs no fake provider")?;
    let api_key = stripe_key(ctx)?;
    let confirmed = ctx
        .http
        .post(format!("{provider}/v1/payment_intents/{intent_id}/confirm"))
        .bearer_auth(&api_key)
        .send()
        .await
        .map_err(text)?;
    if !confirmed.status().is_success() {
        return Err(format!("confirming {intent_id}: HTTP {}", confirmed.status()));
    }
    let intent = retrieve_intent(ctx, &intent_id).await?;
    let event = testkit::fake_provider::stripe_event_for(
        intent.clone(),
        &format!("evt_shop_paid_{}", ctx.suffix),
        "payment_intent.succeeded",
        Utc::now().timestamp(),
    );
    webhook(ctx, &event).await?;
    let order = order_where(ctx, &order_id, "paid", |o| o.status == OrderStatus::Paid).await?;
    if order.vendor_ids.is_empty() {
        return Err(format!("orders/{order_id} carries no vendor"));
    }
    Ok((
        (order_id.clone(), intent),
        format!(
            "orders/{order_id} paid, {} usd, vendors {:?}",
            order.amount_minor, order.vendor_ids
        ),
    ))
}

async fn vendor_sees(ctx: &Ctx, vendor: &SignedUp, order_id: &str) -> Result<String, String> {
    let token = &vendor.id_token;
    let page = ctx.call(token, "listVendorOrders", json!({"status": "paid"}), None).await?;
    if !page["orders"].as_array().is_some_and(|o| o.iter().any(|o| o["orderId"] == order_id)) {
        return Err(format!("listVendorOrders answered {page}"));
    }
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let sales = eventually(WITHIN, "the day's sales counted", || async {
        let sales = ctx
            .call(
                token,
                "getVendorSales",
                json!({"fromDay": today, "toDay": today, "currency": "usd"}),
                None,
            )
            .await?;
        Ok(sales["days"].as_array().and_then(|d| d.first()).cloned())
    })
    .await?;
    Ok(format!(
        "orders/{order_id} listed as paid; {today}: {} order(s), {} usd",
        sales["orders"], sales["amountMinor"]
    ))
}

async fn refund(
    ctx: &Ctx,
    buyer: &SignedUp,
    order_id: &str,
    intent: &Value,
) -> Result<String, String> {
    let asked = ctx
        .call(
            &buyer.id_token,
            "requestRefund",
            json!({"orderId": order_id, "requestId": "changed-my-mind"}),
            None,
        )
        .await?;
    if asked["amountMinor"] != PRICE_MINOR || asked["status"] != "requested" {
        return Err(format!("requestRefund answered {asked}"));
    }
    let submitted = order_where(ctx, order_id, "its refund submitted", |o| {
        o.refunds.first().is_some_and(|r| r.status == RefundStatus::Submitted)
    })
    .await?;
    let provider_refund = submitted.refunds[0].provider_refund_id.clone().unwrap_or_default();
    // Stripe reports the refund on the charge; a refund comes after the payment it returns.
    let event = testkit::fake_provider::charge_refunded_event_for(
        intent,
        PRICE_MINOR,
        &format!("evt_shop_refund_{}", ctx.suffix),
        Utc::now().timestamp() + 1,
    );
    webhook(ctx, &event).await?;
    let refunded =
        order_where(ctx, order_id, "refunded", |o| o.status == OrderStatus::Refunded).await?;
    let order = ctx.call(&buyer.id_token, "getOrder", json!({"orderId": order_id}), None).await?;
    if order["status"] != "refunded" {
        return Err(format!("getOrder answered {order}"));
    }
    Ok(format!(
        "refund {} as {provider_refund} at Stripe; orders/{order_id} refunded ({} of {} usd)",
        asked["refundId"], refunded.refunded_minor, refunded.amount_minor
    ))
}

/// The api's Stripe key (the fake checks its shape).
fn stripe_key(ctx: &Ctx) -> Result<String, String> {
    let plan = ctx.plan()?;
    plan.functions
        .iter()
        .find(|f| f.name == "api")
        .and_then(|f| f.env.get("HEARTH_STRIPE_SECRET_KEY"))
        .cloned()
        .ok_or_else(|| "the api has no HEARTH_STRIPE_SECRET_KEY".to_owned())
}

/// Posts `event` to payment-webhook signed as Stripe does.
async fn webhook(ctx: &Ctx, event: &Value) -> Result<(), String> {
    let plan = ctx.plan()?;
    let secrets = plan
        .functions
        .iter()
        .find(|f| f.name == "payment-webhook")
        .and_then(|f| f.env.get("HEARTH_STRIPE_WEBHOOK_SECRETS"))
        .ok_or("payment-webhook has no HEARTH_STRIPE_WEBHOOK_SECRETS")?;
    let secret = signing_secret(secrets).ok_or("HEARTH_STRIPE_WEBHOOK_SECRETS is empty")?;
    let url = format!("{}/stripe", ctx.url("payment-webhook")?);
    let response = testkit::fake_provider::post_stripe_webhook(&ctx.http, &url, secret, event)
        .await
        .map_err(|e| format!("payment-webhook unreachable: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("payment-webhook answered HTTP {}", response.status()))
    }
}

/// Waits until `orders/{order_id}` satisfies `ok` (described as `what`).
async fn order_where(
    ctx: &Ctx,
    order_id: &str,
    what: &str,
    ok: impl Fn(&Order) -> bool,
) -> Result<Order, String> {
    let payments = Payments::new(&ctx.db);
    let ok = &ok;
    eventually(WITHIN, &format!("orders/{order_id} {what}"), || {
        let payments = payments.clone();
        async move {
            let order = payments.order(order_id).await.map_err(text)?;
            Ok(order.filter(|o| ok(o)))
        }
    })
    .await
}
