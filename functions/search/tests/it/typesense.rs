//! The Typesense tier against `testkit::fake_typesense` (Typesense's documented API and error
//! shapes): the requests it sends (collections, version-guarded writes, tombstones, search
//! parameters) and the same behaviour as the embedded tier where the API allows, then the whole
//! function with `HEARTH_SEARCH_BACKEND=typesense` synced from Firestore.

use domain::search::{SearchInput, SuggestInput};
use search::engine::{Change, Engine, IndexedProduct, IndexedVendor};
use search::typesense::Typesense;
use serde_json::json;
use testkit::fake_typesense::FakeTypesense;

use crate::{Harness, ids, product};

fn indexed(id: &str, title: &str, category: &str, price: i64, version: i64) -> IndexedProduct {
    IndexedProduct {
        id: id.into(),
        title: title.into(),
        description: String::new(),
        tags: vec![],
        category: category.into(),
        vendor_id: "v1".into(),
        vendor_name: "Vera".into(),
        price_minor: price,
        currency: "usd".into(),
        in_stock: true,
        image: None,
        version,
    }
}

fn query(input: SearchInput) -> domain::search::ProductQuery {
    input.validate().unwrap()
}

#[tokio::test]
async fn requests_follow_the_contract_and_versions_guard_every_write() {
    let fake = FakeTypesense::start("key-1").await;
    let engine = Typesense::new(&fake.base_url, "key-1".to_owned().into()).unwrap();
    engine
        .replace_all(
            vec![
                indexed("p1", "Red shoes", "footwear", 500, 10),
                indexed("p2", "Sun hat", "hats", 300, 10),
            ],
            vec![IndexedVendor {
                id: "v1".into(),
                name: "Vera".into(),
                handle: "vera".into(),
                follower_count: 9,
                version: 10,
            }],
        )
        .await
        .unwrap();
    // Collections created with the API key; a second sync finds them there (409) and goes on.
    engine.ensure_collections().await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].uri, "/collections");
    let schema: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(schema["name"], "products");
    assert!(
        requests.iter().any(|r| r.method == "PATCH"
            && r.uri.contains("filter_by=id%3A%3D%5B%60p1%60%5D+%26%26+version%3A%3C10")),
        "{requests:#?}"
    );
    assert!(requests.iter().any(|r| r.method == "POST" && r.uri == "/collections/products/documents?action=create"));

    // An older version arriving late changes nothing; a newer one wins.
    engine
        .apply(vec![Change::Product(indexed("p1", "Old shoes", "footwear", 1, 5))])
        .await
        .unwrap();
    assert_eq!(fake.document("products", "p1").unwrap()["title"], "Red shoes");
    engine
        .apply(vec![Change::Product(indexed("p1", "Blue shoes", "footwear", 700, 11))])
        .await
        .unwrap();
    assert_eq!(fake.document("products", "p1").unwrap()["title"], "Blue shoes");
    // A removal is a tombstone: searches skip it, and an older upsert cannot resurrect it.
    engine.apply(vec![Change::RemoveProduct { id: "p1".into(), version: 12 }]).await.unwrap();
    engine
        .apply(vec![Change::Product(indexed("p1", "Blue shoes", "footwear", 700, 11))])
        .await
        .unwrap();
    assert_eq!(fake.document("products", "p1").unwrap()["deleted"], true);
    let all = engine.search(&query(SearchInput::default())).await.unwrap();
    assert_eq!(all.total, 1);

    // Search parameters: typo policy, filters, facets, sort, paging.
    engine
        .apply(vec![Change::Product(indexed("p3", "Running shoes", "footwear", 900, 1))])
        .await
        .unwrap();
    let found = engine
        .search(&query(SearchInput { query: "shooes".into(), ..Default::default() }))
        .await
        .unwrap();
    assert_eq!(found.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["p3"]);
    let last = fake.requests().last().unwrap().uri.clone();
    for param in [
        "num_typos=2",
        "min_len_1typo=4",
        "min_len_2typo=8",
        "prefix=true",
        "facet_by=category%2Cvendor_id",
        "query_by=title%2Ctags%2Cvendor_name%2Cdescription",
        "filter_by=deleted%3A%3Dfalse",
    ] {
        assert!(last.contains(param), "{param} in {last}");
    }
    let paged = engine
        .search(&query(SearchInput {
            limit: Some(1),
            sort: domain::search::Sort::PriceDesc,
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!((paged.total, paged.hits[0].id.as_str()), (2, "p3"));
    assert_eq!(paged.facets.category.len(), 2);
    let next = query(SearchInput {
        limit: Some(1),
        sort: domain::search::Sort::PriceDesc,
        cursor: paged.next_cursor.clone(),
        ..Default::default()
    });
    let second = engine.search(&next).await.unwrap();
    assert_eq!((second.hits[0].id.as_str(), second.next_cursor.as_deref()), ("p2", None));
    let filtered = engine
        .search(&query(SearchInput {
            category: Some("hats".into()),
            max_price: Some(300),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(filtered.total, 1);
    assert!(fake.requests().last().unwrap().uri.contains("category%3A%3D%5B%60hats%60%5D"));
    let s = engine
        .suggest(&SuggestInput { prefix: "ve".into(), limit: None }.validate().unwrap())
        .await
        .unwrap();
    assert_eq!((s[0].text.as_str(), s[0].popularity), ("Vera", 9));
}

#[tokio::test]
async fn typesense_errors_become_engine_errors_with_their_message() {
    let fake = FakeTypesense::start("key-1").await;
    let wrong = Typesense::new(&fake.base_url, "wrong".to_owned().into()).unwrap();
    let error = wrong.ensure_collections().await.unwrap_err().to_string();
    assert!(error.contains("401") && error.contains("x-typesense-api-key"), "{error}");
    let right = Typesense::new(&fake.base_url, "key-1".to_owned().into()).unwrap();
    let error = right.search(&query(SearchInput::default())).await.unwrap_err().to_string();
    assert!(error.contains("404"), "no collection yet: {error}");
    let unreachable = Typesense::new("http://127.0.0.1:9", "k".to_owned().into()).unwrap();
    assert!(unreachable.search(&query(SearchInput::default())).await.is_err());
}

#[tokio::test]
async fn the_function_on_typesense_syncs_from_firestore_and_answers() {
    let fake = FakeTypesense::start("key-1").await;
    let h = Harness::start(&[
        ("HEARTH_SEARCH_BACKEND", "typesense"),
        ("HEARTH_TYPESENSE_URL", fake.base_url.as_str()),
        ("HEARTH_TYPESENSE_API_KEY", "key-1"),
    ])
    .await;
    h.put("p1", &product("Red shoes", "footwear", "v1", 500)).await;
    let found = h.eventually(&h.app, json!({"query": "shooes"}), |r| r["total"] == 1).await;
    assert_eq!(ids(&found), ["p1"]);
    h.db.delete(&store::paths::product("p1").unwrap()).await.unwrap();
    h.eventually(&h.app, json!({"query": "shoes"}), |r| r["total"] == 0).await;
    assert_eq!(fake.document("products", "p1").unwrap()["deleted"], true);
}
