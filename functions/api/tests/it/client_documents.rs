//! The document types of the generated client package (`api::clients`) are what the real code
//! paths store: an order written by `initiatePayment` and a feed entry written by a follow's
//! backfill decode into `OrderDocument` and `FeedEntryDocument` with unknown fields refused
//! and every declared field present, so a field added, renamed or dropped in `store` fails here.

use api::clients::{FeedEntryDocument, OrderDocument};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::payments::Harness;

/// The stored document at `path` as its declared client type: the firestore crate's own
/// `_firestore_*` fields (not part of the document) removed, then a strict decode.
async fn decode_stored<T: DeserializeOwned>(h: &Harness, path: &store::DocPath) -> T {
    let mut doc: Value = h.db.get(path).await.unwrap().expect("the document exists");
    doc.as_object_mut().unwrap().retain(|name, _| !name.starts_with("_firestore_"));
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!("{} does not match its client type: {e}\n{doc:#}", path.relative())
    })
}

#[tokio::test]
async fn orders_and_feed_entries_match_their_client_types() {
    let h = Harness::start(&[]).await;
    h.product("kettle", 5).await;
    let r = h.reserve("ada", "kettle", 2).await;
    let paid = h
        .call_with_key(
            "ada",
            "initiatePayment",
            json!({"reservationIds": [r], "provider": "stripe"}),
            "doc-1",
        )
        .await;
    let paid: Value = paid.json().await.unwrap();
    let order_id = paid["result"]["orderId"].as_str().unwrap();
    let order: OrderDocument = decode_stored(&h, &store::paths::order(order_id).unwrap()).await;
    assert_eq!(order.uid, "ada");
    assert_eq!(order.amount_minor, 2500);
    assert_eq!(order.items.len(), 1);
    assert_eq!(order.payments.len(), 1);

    store::feed::Feeds::new(&h.db)
        .write_post("p1", &store::feed::PostRecord::new("baker", true, chrono::Utc::now(), "rye"))
        .await
        .unwrap();
    let followed = h.call("ada", "followVendor", json!({"vendorId": "baker"})).await;
    assert_eq!(followed.json::<Value>().await.unwrap()["result"]["backfilled"], 1);
    let entry: FeedEntryDocument =
        decode_stored(&h, &store::paths::feed_post("ada", "p1").unwrap()).await;
    assert_eq!(entry.post_id, "p1");
    assert_eq!(entry.vendor_id, "baker");
}
