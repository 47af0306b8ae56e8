//! The catalogue callables against the Firestore emulator: becoming a vendor (unique handles),
//! the product lifecycle with its validation errors, foreign-owned and forged writes, vendor
//! profile changes copied onto products, listing pages and cursors, and stock added while
//! reservations run.

use std::collections::BTreeSet;

use domain::inventory::Sku;
use serde_json::{Value, json};
use store::inventory::{Inventory, ReserveOutcome};

use crate::payments::Harness;

/// Valid product fields priced `price` USD cents.
pub(crate) fn fields(price: i64) -> Value {
    json!({
        "title": "Clay pot",
        "description": "Hand made",
        "category": "kitchen",
        "tags": ["clay"],
        "images": ["https://img.example.com/pot.png"],
        "priceMinor": price,
        "currency": "usd",
    })
}

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

async fn refused(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}

async fn vendor(h: &Harness, uid: &str) {
    let r = h.call(uid, "becomeVendor", json!({"name": uid, "handle": uid})).await;
    assert_eq!(ok(r).await["created"], true);
}

async fn product(h: &Harness, uid: &str, fields: Value) -> String {
    let created = ok(h.call(uid, "createProduct", fields).await).await;
    created["productId"].as_str().unwrap().to_owned()
}

fn no_cache() -> [(&'static str, &'static str); 1] {
    [("HEARTH_CATALOGUE_CACHE_SECS", "0")]
}

#[tokio::test]
async fn a_vendor_lists_a_product_through_its_whole_life() {
    let h = Harness::start(&no_cache()).await;
    // Not a vendor yet.
    let r = h.call("vera", "createProduct", fields(500)).await;
    assert!(refused(r, 400, "FAILED_PRECONDITION").await.contains("becomeVendor"));
    vendor(&h, "vera").await;
    // Once only: the same call answers the stored profile; another user cannot take the handle.
    let again = ok(h.call("vera", "becomeVendor", json!({"name": "X", "handle": "vera"})).await);
    assert_eq!(again.await["created"], false);
    let r = h.call("mallory", "becomeVendor", json!({"name": "M", "handle": "vera"})).await;
    refused(r, 409, "ALREADY_EXISTS").await;

    // Validation names the field.
    for (change, field) in [
        (json!({"priceMinor": -1}), "priceMinor"),
        (json!({"priceMinor": 0}), "priceMinor"),
        (json!({"priceMinor": 10_000_000_000_i64}), "priceMinor"),
        (json!({"currency": "USD"}), "currency"),
        (json!({"currency": "btc"}), "currency"),
        (json!({"images": ["http://img.example.com/a.png"]}), "images"),
        (json!({"title": ""}), "title"),
        (json!({"category": "Kitchen Stuff"}), "category"),
        (json!({"variants": [{"id": "l", "name": "L"}, {"id": "l", "name": "L2"}]}), "variant"),
    ] {
        let mut bad = fields(500);
        for (k, v) in change.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let message = refused(h.call("vera", "createProduct", bad).await, 400, "INVALID_ARGUMENT");
        assert!(message.await.contains(field), "{change}");
    }

    let mut with_variants = fields(500);
    with_variants["variants"] = json!([{"id": "small", "name": "Small"}, {"id": "large", "name": "Large", "priceMinor": 900}]);
    let id = product(&h, "vera", with_variants).await;
    let stored = store::catalogue::Catalogue::new(&h.db).product(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, domain::catalogue::ProductStatus::Draft);
    assert_eq!((stored.vendor_id.as_str(), stored.vendor_name.as_str()), ("vera", "vera"));
    // Drafts are not listed.
    let page = ok(h.call("bob", "listProducts", json!({})).await).await;
    assert_eq!(page["products"], json!([]));

    // Stock: a product with variants needs one; an unknown one is refused.
    let r = h.call("vera", "addStock", json!({"productId": id, "units": 5})).await;
    refused(r, 400, "INVALID_ARGUMENT").await;
    let r =
        h.call("vera", "addStock", json!({"productId": id, "variantId": "xl", "units": 5})).await;
    refused(r, 400, "INVALID_ARGUMENT").await;
    let r = h.call("vera", "addStock", json!({"productId": id, "variantId": "large", "units": 0}));
    refused(r.await, 400, "INVALID_ARGUMENT").await;
    let added = ok(h
        .call(
            "vera",
            "addStock",
            json!({"productId": id, "variantId": "large", "units": 5, "shards": 3}),
        )
        .await)
    .await;
    assert_eq!(added["shards"], 3);
    let sku = Sku::variant(id.clone(), "large");
    assert_eq!(Inventory::new(&h.db).availability(&sku).await.unwrap().unwrap().0, 5);

    ok(h.call("vera", "publishProduct", json!({"productId": id})).await).await;
    let page = ok(h.call("bob", "listProducts", json!({"vendorId": "vera"})).await).await;
    assert_eq!(page["products"][0]["productId"], id.as_str());
    assert_eq!(page["products"][0]["inStock"], true);
    // Sold out: the next reservation that finds nothing left turns the summary off.
    let reserve = json!({"productId": id, "variantId": "large", "quantity": 5});
    ok(h.call("bob", "reserveInventory", reserve.clone()).await).await;
    refused(h.call("ada", "reserveInventory", reserve).await, 400, "FAILED_PRECONDITION").await;
    let catalogue = store::catalogue::Catalogue::new(&h.db);
    for _ in 0..50 {
        if !catalogue.product(&id).await.unwrap().unwrap().in_stock {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = ok(h.call("bob", "listProducts", json!({"vendorId": "vera"})).await).await;
    assert_eq!(page["products"][0]["inStock"], false);
    ok(h.call("vera", "addStock", json!({"productId": id, "variantId": "large", "units": 2}))
        .await)
    .await;
    let page = ok(h.call("bob", "listProducts", json!({"vendorId": "vera"})).await).await;
    assert_eq!(page["products"][0]["inStock"], true);
    assert_eq!(page["products"][0]["variants"][1]["priceMinor"], 900);

    // Another vendor cannot touch it.
    vendor(&h, "mallory").await;
    for (name, data) in [
        ("updateProduct", json!({"productId": id, "fields": fields(1)})),
        ("archiveProduct", json!({"productId": id})),
        ("addStock", json!({"productId": id, "variantId": "large", "units": 1})),
        ("setStock", json!({"productId": id, "variantId": "large", "units": 0})),
    ] {
        refused(h.call("mallory", name, data).await, 403, "PERMISSION_DENIED").await;
    }
    // The vendor's profile change reaches its products.
    let updated = ok(h
        .call(
            "vera",
            "updateVendor",
            json!({"name": "Vera's Pots", "avatarUrl": "https://img.example.com/v.png"}),
        )
        .await)
    .await;
    assert_eq!(updated["productsUpdated"], 1);
    let page = ok(h.call("bob", "listProducts", json!({"vendorId": "vera"})).await).await;
    assert_eq!(page["products"][0]["vendorName"], "Vera's Pots");
    assert_eq!(page["products"][0]["vendorAvatarUrl"], "https://img.example.com/v.png");

    // Update keeps the status; archive withdraws it for good.
    let mut new_fields = fields(700);
    new_fields["title"] = json!("Bigger pot");
    new_fields["variants"] = json!([{"id": "large", "name": "Large"}]);
    let after =
        ok(h.call("vera", "updateProduct", json!({"productId": id, "fields": new_fields})).await);
    let after = after.await;
    assert_eq!(
        (after["title"].as_str(), after["status"].as_str()),
        (Some("Bigger pot"), Some("active"))
    );
    ok(h.call("vera", "archiveProduct", json!({"productId": id})).await).await;
    let page = ok(h.call("bob", "listProducts", json!({})).await).await;
    assert_eq!(page["products"], json!([]));
    let r = h.call("vera", "publishProduct", json!({"productId": id})).await;
    refused(r, 400, "FAILED_PRECONDITION").await;
    let r =
        h.call("vera", "updateProduct", json!({"productId": "nope", "fields": fields(1)})).await;
    refused(r, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn listing_pages_by_category_vendor_and_price_with_stable_cursors() {
    let h = Harness::start(&no_cache()).await;
    vendor(&h, "vera").await;
    vendor(&h, "vic").await;
    let mut ids = Vec::new();
    for (uid, price, category) in [
        ("vera", 300, "kitchen"),
        ("vera", 100, "kitchen"),
        ("vic", 200, "kitchen"),
        ("vic", 200, "garden"),
        ("vera", 200, "kitchen"),
        ("vic", 900, "kitchen"),
    ] {
        let mut f = fields(price);
        f["category"] = json!(category);
        let id = product(&h, uid, f).await;
        ok(h.call(uid, "publishProduct", json!({"productId": id})).await).await;
        ids.push(id);
    }
    // A draft in the category is never listed.
    product(&h, "vera", fields(150)).await;

    let walk = |filter: Value| {
        let h = &h;
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut data = filter.clone();
                data["limit"] = json!(2);
                if let Some(c) = &cursor {
                    data["cursor"] = json!(c);
                }
                let page = ok(h.call("bob", "listProducts", data).await).await;
                for p in page["products"].as_array().unwrap() {
                    seen.push((
                        p["priceMinor"].as_i64().unwrap(),
                        p["productId"].as_str().unwrap().to_owned(),
                    ));
                }
                match page["nextCursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => return seen,
                }
            }
        }
    };
    let all = walk(json!({"category": "kitchen"})).await;
    let prices: Vec<i64> = all.iter().map(|(p, _)| *p).collect();
    assert_eq!(prices, vec![100, 200, 200, 300, 900]);
    let unique: BTreeSet<&String> = all.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), 5, "no product twice across pages");

    let vic = walk(json!({"vendorId": "vic", "category": "kitchen"})).await;
    assert_eq!(vic.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![200, 900]);
    let range = walk(json!({"minPriceMinor": 200, "maxPriceMinor": 300})).await;
    assert_eq!(range.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![200, 200, 200, 300]);
    let by_vendor = walk(json!({"vendorId": "vera", "maxPriceMinor": 250})).await;
    assert_eq!(by_vendor.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![100, 200]);

    // A product inserted behind the cursor does not shift the next page.
    let first =
        ok(h.call("bob", "listProducts", json!({"category": "kitchen", "limit": 2})).await).await;
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let early = product(&h, "vera", fields(50)).await;
    ok(h.call("vera", "publishProduct", json!({"productId": early})).await).await;
    let next = ok(h
        .call("bob", "listProducts", json!({"category": "kitchen", "limit": 2, "cursor": cursor}))
        .await)
    .await;
    let next_prices: Vec<i64> = next["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["priceMinor"].as_i64().unwrap())
        .collect();
    assert_eq!(next_prices, vec![200, 300]);

    for bad in [
        json!({"cursor": "garbage"}),
        json!({"limit": 0}),
        json!({"limit": 51}),
        json!({"minPriceMinor": -1}),
        json!({"category": "Not A Token"}),
    ] {
        refused(h.call("bob", "listProducts", bad).await, 400, "INVALID_ARGUMENT").await;
    }
}

#[tokio::test]
async fn a_listing_page_is_cached_for_its_ttl() {
    let h = Harness::start(&[("HEARTH_CATALOGUE_CACHE_SECS", "60")]).await;
    vendor(&h, "vera").await;
    let id = product(&h, "vera", fields(100)).await;
    ok(h.call("vera", "publishProduct", json!({"productId": id})).await).await;
    let first = ok(h.call("bob", "listProducts", json!({})).await).await;
    assert_eq!(first["products"].as_array().unwrap().len(), 1);
    ok(h.call("vera", "archiveProduct", json!({"productId": id})).await).await;
    // Within the TTL this instance answers the page it has; a fresh instance reads Firestore.
    let cached = ok(h.call("bob", "listProducts", json!({})).await).await;
    assert_eq!(cached["products"].as_array().unwrap().len(), 1);
    let other = h.another_instance().await;
    let token = h.token("bob");
    let fresh = crate::payments::call_at(&other, &token, "listProducts", json!({}), None).await;
    assert_eq!(ok(fresh).await["products"], json!([]));
}

/// Units added (and shards grown) while buyers reserve: every unit is either reserved or
/// still available at the end, none lost and none invented.
#[tokio::test]
async fn stock_added_while_reservations_run_loses_no_unit() {
    let h = Harness::start(&[]).await;
    let inventory = Inventory::new(&h.db);
    let sku = Sku::product("hot");
    inventory.set_stock(&sku, 10, 1).await.unwrap();
    let buyers = (0..24).map(|i| {
        let inventory = inventory.clone();
        let sku = sku.clone();
        tokio::spawn(async move {
            let mut got = 0;
            for round in 0..3 {
                let id = format!("res-{i}-{round}");
                match inventory
                    .reserve(&format!("buyer{i}"), &sku, 1, &id, chrono::Utc::now())
                    .await
                {
                    Ok(ReserveOutcome::Reserved { .. }) => got += 1,
                    Ok(_) => {}
                    Err(e) => assert!(e.is_retryable(), "{e}"),
                }
            }
            got
        })
    });
    let buyers: Vec<_> = buyers.collect();
    let mut added = 10;
    for (units, shards) in [(7, 2), (11, 4), (5, 8), (13, 8)] {
        let count = inventory.add_stock(&sku, units, shards).await.unwrap();
        assert_eq!(count, shards);
        added += units;
    }
    let mut reserved = 0;
    for b in buyers {
        reserved += b.await.unwrap();
    }
    let (available, shards) = inventory.availability(&sku).await.unwrap().unwrap();
    assert_eq!(shards.len(), 8, "the SKU grew to 8 shards");
    assert!(shards.iter().all(|s| *s >= 0), "{shards:?}");
    assert_eq!(reserved + available, added, "reserved {reserved} + available {available}");
    assert!(reserved > 0);
}
