//! reserveInventory, releaseReservation, getOrder.

use serde_json::{Value, json};

use super::{Harness, error_status};

#[tokio::test]
async fn reserve_release_and_refusals() {
    let h = Harness::start(&[]).await;
    h.product("mug", 3).await;
    let response =
        h.call("ada", "reserveInventory", json!({"productId": "mug", "quantity": 2})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let id = body["result"]["reservationId"].as_str().unwrap().to_owned();
    assert_eq!(body["result"]["quantity"], 2);
    assert!(body["result"]["expiresAt"].as_str().unwrap().ends_with('Z'));

    let sold_out =
        h.call("bob", "reserveInventory", json!({"productId": "mug", "quantity": 2})).await;
    assert_eq!(sold_out.status(), 400);
    let body: Value = sold_out.json().await.unwrap();
    assert_eq!(body["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(body["error"]["details"]["available"], 1);

    let stranger = h.call("bob", "releaseReservation", json!({"reservationId": id})).await;
    assert_eq!(stranger.status(), 403);
    let released = h.call("ada", "releaseReservation", json!({"reservationId": id})).await;
    assert_eq!(released.status(), 200);
    assert_eq!(
        released.json::<Value>().await.unwrap()["result"],
        json!({"released": true, "status": "released"})
    );
    let again = h.call("ada", "releaseReservation", json!({"reservationId": id})).await;
    assert_eq!(
        again.json::<Value>().await.unwrap()["result"],
        json!({"released": false, "status": "released"})
    );
    // The units are back.
    h.reserve("bob", "mug", 3).await;

    for (data, status) in [
        (json!({"productId": "mug", "quantity": 11}), "INVALID_ARGUMENT"),
        (json!({"productId": "mug", "quantity": 0}), "INVALID_ARGUMENT"),
        (json!({"productId": "mug"}), "INVALID_ARGUMENT"),
        (json!({"productId": "mug", "quantity": 1, "price": 0}), "INVALID_ARGUMENT"),
        (json!({"productId": "ghost", "quantity": 1}), "NOT_FOUND"),
        (json!({"productId": "a/b", "quantity": 1}), "INVALID_ARGUMENT"),
    ] {
        let response = h.call("ada", "reserveInventory", data.clone()).await;
        assert_eq!(error_status(response).await, status, "{data}");
    }
    let unauthenticated = h
        .app
        .client
        .post(h.app.url("/reserveInventory"))
        .json(&json!({"data": {"productId": "mug", "quantity": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn get_order_shows_only_the_buyers_own_orders() {
    let h = Harness::start(&[]).await;
    h.product("pan", 5).await;
    let reservation = h.reserve("ada", "pan", 2).await;
    let paid = h
        .call_with_key(
            "ada",
            "initiatePayment",
            json!({"reservationIds": [reservation], "provider": "stripe"}),
            "k-1",
        )
        .await;
    assert_eq!(paid.status(), 200);
    let order_id =
        paid.json::<Value>().await.unwrap()["result"]["orderId"].as_str().unwrap().to_owned();
    let own = h.call("ada", "getOrder", json!({"orderId": order_id})).await;
    assert_eq!(own.status(), 200);
    let order = own.json::<Value>().await.unwrap()["result"].clone();
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["amountMinor"], 2500);
    assert_eq!(order["items"][0]["quantity"], 2);
    let other = h.call("bob", "getOrder", json!({"orderId": order_id})).await;
    assert_eq!(error_status(other).await, "NOT_FOUND");
    let missing = h.call("ada", "getOrder", json!({"orderId": "ord_nope"})).await;
    assert_eq!(error_status(missing).await, "NOT_FOUND");
}
