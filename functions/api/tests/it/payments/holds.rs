//! The cap on units one user holds at once (`domain::inventory::may_hold`): without it one
//! account could hold about 3,000 units of a flash sale (20 reservations a minute, 10 units
//! each, 15 minutes). Over the cap: `FAILED_PRECONDITION` with `details.maxHeldUnits`; released,
//! expired and swept holds stop counting; parallel reservations cannot pass it.

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use store::inventory::{Inventory, ReserveOutcome};

use super::Harness;

fn reserve_data(product: &str, quantity: i64) -> Value {
    json!({"productId": product, "quantity": quantity})
}

/// Regression: the fourth full reservation (40 units held) used to be granted.
#[tokio::test]
async fn one_user_holds_at_most_the_cap_and_releasing_frees_it() {
    let h = Harness::start(&[]).await;
    h.product("kettle", 1_000).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.reserve("hoarder", "kettle", 10).await);
    }
    let refused = h.call("hoarder", "reserveInventory", reserve_data("kettle", 1)).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["status"], "FAILED_PRECONDITION", "{body}");
    assert_eq!(body["error"]["details"]["heldUnits"], 30, "{body}");
    assert_eq!(body["error"]["details"]["maxHeldUnits"], 30, "{body}");
    // Nothing was taken from stock by the refusal.
    let (available, _) = Inventory::new(&h.db)
        .availability(&domain::inventory::Sku::product("kettle"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(available, 970);
    // Another user is not affected; releasing frees the hoarder's room.
    h.reserve("honest", "kettle", 10).await;
    let released = h.call("hoarder", "releaseReservation", json!({"reservationId": ids[0]})).await;
    assert_eq!(released.status(), 200);
    h.reserve("hoarder", "kettle", 10).await;
}

#[tokio::test]
async fn parallel_reservations_of_one_user_cannot_pass_the_cap() {
    let h = Harness::start(&[("HEARTH_MAX_HELD_UNITS", "10")]).await;
    h.product("lamp", 1_000).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, token) =
            (h.app.client.clone(), h.app.url("/reserveInventory"), h.token("racer"));
        calls.spawn(async move {
            let body = json!({"data": reserve_data("lamp", 2)});
            client.post(url).bearer_auth(token).json(&body).send().await.unwrap()
        });
    }
    let mut granted = 0;
    for response in calls.join_all().await {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status.as_u16() {
            200 => granted += body["result"]["quantity"].as_i64().unwrap(),
            _ => assert_eq!(body["error"]["status"], "FAILED_PRECONDITION", "{body}"),
        }
    }
    assert_eq!(granted, 10, "exactly the cap is held");
    let (available, _) = Inventory::new(&h.db)
        .availability(&domain::inventory::Sku::product("lamp"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(available, 990, "no unit left stock beyond the granted ones");
}

#[tokio::test]
async fn expired_holds_stop_counting_and_the_sweep_clears_them() {
    let h = Harness::start(&[("HEARTH_MAX_HELD_UNITS", "10")]).await;
    let sku = h.product("pan", 100).await;
    let inventory = Inventory::new(&h.db).with_max_held_units(10);
    // A hold made 20 minutes ago ended 5 minutes ago: it no longer counts, swept or not.
    let long_ago = Utc::now() - TimeDelta::minutes(20);
    let old = inventory.reserve("sleeper", &sku, 10, "res_old", long_ago).await.unwrap();
    assert!(matches!(old, ReserveOutcome::Reserved { .. }), "{old:?}");
    h.reserve("sleeper", "pan", 10).await;
    let full = h.call("sleeper", "reserveInventory", reserve_data("pan", 1)).await;
    assert_eq!(full.status(), 400);
    // The expiry sweep returns the old units and removes its hold.
    let report = inventory.sweep_expired(Utc::now(), 10).await.unwrap();
    assert_eq!(report.expired, 1);
    let holds: Value = h.db.get(&store::paths::holds("sleeper").unwrap()).await.unwrap().unwrap();
    assert_eq!(holds["held"].as_object().unwrap().len(), 1, "{holds}");
}
