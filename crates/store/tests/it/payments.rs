//! Opening an order and its payment attempt in one transaction (`Payments::open_order`): what it
//! makes, what a repeat returns, what it refuses (and that a refusal writes nothing), and that
//! concurrent opens of the same ids make one order and one payment.

use chrono::Utc;
use domain::inventory::Sku;
use domain::messages::PaymentProvider;
use domain::payments::{OrderStatus, PaymentStatus};
use futures::future::join_all;
use serde_json::json;
use store::Db;
use store::inventory::{Inventory, ReserveOutcome};
use store::paths;
use store::payments::{Order, OrderRefused, Payment, Payments};

/// A product at `price_minor` in `currency`, optionally with variants `(id, own price)`, and
/// `stock` units of every SKU.
async fn product(db: &Db, id: &str, price_minor: i64, currency: &str, variants: &[(&str, i64)]) {
    let variants: Vec<_> = variants
        .iter()
        .map(|(v, price)| json!({"id": v, "name": v, "price_minor": price}))
        .collect();
    db.set(
        &paths::product(id).unwrap(),
        &json!({"price_minor": price_minor, "currency": currency, "vendor_id": format!("v-{id}"),
                "variants": variants}),
    )
    .await
    .unwrap();
}

/// `uid` holds `quantity` of `sku` as reservation `id`.
async fn hold(db: &Db, uid: &str, sku: &Sku, quantity: i64, id: &str) {
    let inventory = Inventory::new(db);
    if inventory.availability(sku).await.unwrap().is_none() {
        inventory.set_stock(sku, 50, 2).await.unwrap();
    }
    let outcome = inventory.reserve(uid, sku, quantity, id, Utc::now()).await.unwrap();
    assert!(matches!(outcome, ReserveOutcome::Reserved { .. }), "{outcome:?}");
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

async fn open(
    p: &Payments,
    uid: &str,
    order: &str,
    payment: &str,
    reservations: &[&str],
) -> Result<(Order, Payment), OrderRefused> {
    p.open_order(uid, order, payment, &ids(reservations), PaymentProvider::Stripe, Utc::now())
        .await
        .unwrap()
}

async fn nothing_written(p: &Payments, order: &str, payment: &str) {
    assert_eq!(p.order(order).await.unwrap(), None, "order {order} was written");
    assert!(p.payment(payment).await.unwrap().is_none(), "payment {payment} was written");
}

/// Three lines, two of one product (read once) and one at a variant's own price: the order is
/// priced, the payment is pending for its amount, the order names it, and a repeat returns both
/// unchanged without a second attempt.
#[tokio::test]
async fn an_order_and_its_payment_are_opened_together_and_a_repeat_returns_them() {
    let db = crate::fresh_db().await;
    let p = Payments::new(&db);
    product(&db, "mug", 1_200, "USD", &[]).await;
    product(&db, "lamp", 4_000, "usd", &[("red", 4_500)]).await;
    hold(&db, "ann", &Sku::product("mug"), 2, "r1").await;
    hold(&db, "ann", &Sku::variant("lamp", "red"), 1, "r2").await;
    hold(&db, "ann", &Sku::product("mug"), 1, "r3").await;

    let (order, payment) = open(&p, "ann", "o1", "pay1", &["r1", "r2", "r3"]).await.unwrap();
    assert_eq!(order.amount_minor, 2 * 1_200 + 4_500 + 1_200);
    assert_eq!(order.currency, "usd");
    assert_eq!(order.status, OrderStatus::AwaitingPayment);
    let lines: Vec<_> =
        order.items.iter().map(|i| (i.reservation_id.as_str(), i.unit_price_minor)).collect();
    assert_eq!(lines, [("r1", 1_200), ("r2", 4_500), ("r3", 1_200)]);
    assert_eq!(order.vendor_ids, ["v-lamp", "v-mug"]);
    assert_eq!(order.current_payment_id.as_deref(), Some("pay1"));
    assert_eq!(order.payments.len(), 1);
    assert_eq!(
        (payment.order_id.as_str(), payment.uid.as_str(), payment.status),
        ("o1", "ann", PaymentStatus::Pending)
    );
    assert_eq!((payment.amount_minor, payment.currency.as_str()), (order.amount_minor, "usd"));
    // What was returned is what was stored.
    assert_eq!(p.order("o1").await.unwrap().as_ref(), Some(&order));
    assert_eq!(p.payment("pay1").await.unwrap().as_ref(), Some(&payment));

    let (again, again_payment) = open(&p, "ann", "o1", "pay1", &["r1", "r2", "r3"]).await.unwrap();
    assert_eq!((again, again_payment), (order.clone(), payment));
    assert_eq!(p.order("o1").await.unwrap(), Some(order), "a repeat changes nothing");
}

/// Each refusal is the first the lines meet in order (a reservation's own, then its product's),
/// and no refusal writes the order or the payment.
#[tokio::test]
async fn refusals_follow_the_lines_in_order_and_write_nothing() {
    let db = crate::fresh_db().await;
    let p = Payments::new(&db);
    product(&db, "mug", 1_200, "usd", &[]).await;
    product(&db, "rug", 9_000, "eur", &[]).await;
    hold(&db, "ann", &Sku::product("mug"), 1, "mug-1").await;
    hold(&db, "ann", &Sku::product("mug"), 1, "mug-2").await;
    hold(&db, "ann", &Sku::product("rug"), 1, "rug-1").await;
    // A hold on a product whose document has no price (it was never listed).
    hold(&db, "ann", &Sku::product("ghost"), 1, "ghost-1").await;
    hold(&db, "bob", &Sku::product("mug"), 1, "bob-1").await;
    hold(&db, "ann", &Sku::product("mug"), 1, "gone").await;
    Inventory::new(&db).release("gone", "ann", Utc::now()).await.unwrap();

    let cases: &[(&[&str], OrderRefused)] = &[
        (&["nope"], OrderRefused::UnknownReservation("nope".into())),
        (&["bob-1"], OrderRefused::UnknownReservation("bob-1".into())),
        (&["mug-1", "gone"], OrderRefused::NotHeld("gone".into())),
        (&["ghost-1", "gone"], OrderRefused::NoPrice("ghost".into())),
        (&["gone", "ghost-1"], OrderRefused::NotHeld("gone".into())),
        (&["mug-1", "rug-1"], OrderRefused::MixedCurrencies),
        (&["mug-1", "rug-1", "nope"], OrderRefused::MixedCurrencies),
        (&[], OrderRefused::Empty),
        (&["mug-1", "mug-2", "mug-1"], OrderRefused::DuplicateReservation("mug-1".into())),
    ];
    for (i, (lines, refused)) in cases.iter().enumerate() {
        let (order, payment) = (format!("o{i}"), format!("pay{i}"));
        let got = open(&p, "ann", &order, &payment, lines).await;
        assert_eq!(got.err().as_ref(), Some(refused), "{lines:?}");
        nothing_written(&p, &order, &payment).await;
    }
    // The held reservations are still free to order.
    open(&p, "ann", "ok", "pay-ok", &["mug-1", "mug-2"]).await.unwrap();
}

/// The same order id with other reservations is a conflict; a payment id of another order, or
/// an order that no longer takes payments, is not payable; neither changes what is stored.
#[tokio::test]
async fn conflicts_and_orders_that_take_no_payment_change_nothing() {
    let db = crate::fresh_db().await;
    let p = Payments::new(&db);
    product(&db, "mug", 1_200, "usd", &[]).await;
    for r in ["r1", "r2", "r3"] {
        hold(&db, "ann", &Sku::product("mug"), 1, r).await;
    }
    let (order, _) = open(&p, "ann", "o1", "pay1", &["r1"]).await.unwrap();
    assert_eq!(open(&p, "ann", "o1", "pay1", &["r2"]).await.err(), Some(OrderRefused::Conflict));
    assert_eq!(open(&p, "bob", "o1", "pay1", &["r1"]).await.err(), Some(OrderRefused::Conflict));
    // pay1 belongs to o1: another order cannot take it over.
    open(&p, "ann", "o2", "pay2", &["r2"]).await.unwrap();
    assert_eq!(open(&p, "ann", "o2", "pay1", &["r2"]).await.err(), Some(OrderRefused::NotPayable));
    assert_eq!(p.order("o1").await.unwrap(), Some(order.clone()));

    // A paid order takes no new attempt.
    let mut paid = order;
    paid.status = OrderStatus::Paid;
    db.set(&paths::order("o1").unwrap(), &paid).await.unwrap();
    assert_eq!(open(&p, "ann", "o1", "pay9", &["r1"]).await.err(), Some(OrderRefused::NotPayable));
    assert!(p.payment("pay9").await.unwrap().is_none());
    assert_eq!(p.order("o1").await.unwrap(), Some(paid));
}

/// Twelve concurrent opens of the same ids (a client retrying while its first call runs): all
/// answer the same order and payment, and exactly one attempt is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_make_one_order_and_one_payment() {
    let db = crate::fresh_db().await;
    let p = Payments::new(&db);
    product(&db, "mug", 1_200, "usd", &[]).await;
    hold(&db, "ann", &Sku::product("mug"), 3, "r1").await;
    let answers = join_all((0..12).map(|_| open(&p, "ann", "o1", "pay1", &["r1"]))).await;
    let stored = p.order("o1").await.unwrap().unwrap();
    assert_eq!(stored.payments.len(), 1, "{stored:?}");
    let payment = p.payment("pay1").await.unwrap().unwrap();
    for answer in answers {
        let (order, got) = answer.unwrap();
        assert_eq!((order.id.as_str(), order.amount_minor), ("o1", 3_600));
        assert_eq!(got, payment);
    }
}
