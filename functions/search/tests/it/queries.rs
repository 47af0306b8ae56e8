//! `searchProducts` and `suggest` over HTTP: typo tolerance, exact filters and facets, sorting,
//! stable paging, the cache and its invalidation.

use serde_json::{Value, json};

use crate::{Harness, ids, ok_on, product, ready, vendor};

async fn catalogue(h: &Harness) {
    h.put_vendor("v1", &vendor("Vera Shoes", "vera"), 50).await;
    h.put_vendor("v2", &vendor("Hat House", "hats"), 5).await;
    h.put("p1", &product("Red running shoes", "footwear", "v1", 5_000)).await;
    h.put("p2", &product("Blue shoes", "footwear", "v1", 3_000)).await;
    h.put("p3", &product("Sun hat", "hats", "v2", 2_000)).await;
    let mut out = product("Green shoes", "footwear", "v2", 4_000);
    out.in_stock = false;
    h.put("p4", &out).await;
    let mut draft = product("Secret shoes", "footwear", "v1", 1_000);
    draft.status = domain::catalogue::ProductStatus::Draft;
    h.put("p5", &draft).await;
}

async fn search(h: &Harness, data: Value) -> Value {
    ok_on(h, &h.app, "searchProducts", data).await
}

fn facet(result: &Value, name: &str) -> Vec<(String, u64)> {
    result["facets"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["value"].as_str().unwrap().to_owned(), f["count"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_misspelt_query_finds_shoes_and_filters_and_facets_are_exact() {
    let h = Harness::start(&[]).await;
    catalogue(&h).await;
    // All four active products indexed (the draft never is).
    h.eventually(&h.app, json!({}), |r| r["total"] == 4).await;

    let found = search(&h, json!({"query": "shooes"})).await;
    let mut hits = ids(&found);
    hits.sort();
    assert_eq!(hits, ["p1", "p2", "p4"], "{found}");
    assert_eq!(facet(&found, "category"), [("footwear".to_owned(), 3)]);
    assert_eq!(facet(&found, "vendor"), [("v1".to_owned(), 2), ("v2".to_owned(), 1)]);

    let filtered = search(
        &h,
        json!({"query": "shooes", "vendorId": "v1", "minPrice": 3000, "maxPrice": 4999}),
    )
    .await;
    assert_eq!(ids(&filtered), ["p2"]);
    assert_eq!(filtered["total"], 1);
    let in_stock = search(&h, json!({"query": "shoes", "inStock": true})).await;
    assert_eq!(in_stock["total"], 2, "p4 is out of stock");
    let hats = search(&h, json!({"category": "hats"})).await;
    assert_eq!(ids(&hats), ["p3"]);
    assert_eq!(
        search(&h, json!({"query": "secret"})).await["total"],
        0,
        "drafts are not searchable"
    );

    // Sort by price, both ways, and stable paging with the cursor.
    let desc = search(&h, json!({"sort": "price_desc"})).await;
    assert_eq!(ids(&desc), ["p1", "p4", "p2", "p3"]);
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = search(&h, json!({"sort": "price_asc", "limit": 3, "cursor": cursor})).await;
        seen.extend(ids(&page));
        assert_eq!(page["total"], 4, "every page counts every match");
        cursor = page["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, ["p3", "p2", "p4", "p1"]);
}

#[tokio::test]
async fn cached_answers_are_dropped_when_a_touched_product_changes() {
    let h = Harness::start(&[("HEARTH_SEARCH_CACHE_TTL_SECS", "600")]).await;
    catalogue(&h).await;
    h.eventually(&h.app, json!({}), |r| r["total"] == 4).await;
    let hats = search(&h, json!({"category": "hats"})).await;
    assert_eq!(hats["total"], 1);
    // A long TTL: only invalidation can make the next answer differ.
    h.put("p6", &product("Straw hat", "hats", "v2", 1_500)).await;
    let after = h.eventually(&h.app, json!({"category": "hats"}), |r| r["total"] == 2).await;
    assert_eq!(ids(&after), ["p6", "p3"], "relevance without text: cheapest first");
}

#[tokio::test]
async fn suggest_completes_titles_and_vendor_names_by_follower_count() {
    let h = Harness::start(&[]).await;
    catalogue(&h).await;
    ready(&h, &h.app).await;
    h.eventually(&h.app, json!({}), |r| r["total"] == 4).await;
    let found = ok_on(&h, &h.app, "suggest", json!({"prefix": "h"})).await;
    let texts: Vec<&str> = found["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    // "Hat House" (vendor, 5 followers) and "Sun hat" (its product, 5) before nothing else.
    assert_eq!(texts, ["Hat House", "Sun hat"]);
    let found = ok_on(&h, &h.app, "suggest", json!({"prefix": "sh", "limit": 10})).await;
    let first = &found["suggestions"][0];
    assert_eq!(first["popularity"], 50, "Vera's products first: {found}");
}
