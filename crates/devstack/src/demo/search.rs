//! Stage 4: search. A vendor's product is listed (written to `products/{productId}` through
//! `store`, the document the catalogue writes); the search function's replica picks it up from
//! the Firestore listen stream, and `searchProducts` with a misspelt query ("Lanturn" for
//! "lantern") finds it, with its category facet; `suggest` completes its title from a prefix.

use std::time::{Duration, Instant};

use domain::catalogue::{Product, ProductStatus};
use serde_json::{Value, json};

use super::signup::SignedUp;
use super::{Ctx, DemoReport, callable_answer, eventually};

/// How long a write may take to become searchable (listen stream -> index).
const SEARCHABLE_WITHIN: Duration = Duration::from_secs(30);

/// Calls the search function's callable `name` as `user`.
async fn call(ctx: &Ctx, user: &SignedUp, name: &str, data: Value) -> Result<Value, String> {
    let url = format!("{}/{name}", ctx.url("search")?);
    let response = ctx
        .http
        .post(&url)
        .bearer_auth(&user.id_token)
        .json(&json!({ "data": data }))
        .send()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    callable_answer(status, &text).map_err(|e| format!("{name}: {e}"))
}

/// Runs the stage for `user`.
pub async fn run(ctx: &Ctx, report: &mut DemoReport, user: &SignedUp) {
    let id = format!("lantern-{}", ctx.suffix);
    let title = format!("Brass lantern {}", ctx.suffix);
    let product = Product {
        vendor_id: user.uid.clone(),
        vendor_name: "Demo vendor".into(),
        vendor_avatar_url: None,
        title: title.clone(),
        description: "A hand-made brass lantern".into(),
        category: "home".into(),
        tags: vec!["lighting".into()],
        images: vec![],
        price_minor: 3_500,
        currency: "usd".into(),
        variants: vec![],
        status: ProductStatus::Active,
        in_stock: true,
    };
    let t = Instant::now();
    let listed = async {
        let path = store::paths::product(&id).map_err(|e| e.to_string())?;
        ctx.db.set(&path, &product).await.map_err(|e| e.to_string())?;
        Ok(format!("products/{id}"))
    }
    .await;
    if !report.record("a product is listed (products/{productId})", t, listed) {
        return;
    }
    let t = Instant::now();
    let found = eventually(SEARCHABLE_WITHIN, "searchProducts finds it", || async {
        let query = json!({"query": format!("Lanturn {}", ctx.suffix), "category": "home"});
        // Not ready yet (UNAVAILABLE) or not indexed yet: try again.
        let Ok(result) = call(ctx, user, "searchProducts", query).await else { return Ok(None) };
        let hit = result["hits"].as_array().into_iter().flatten().any(|h| h["id"] == id.as_str());
        Ok(hit.then(|| {
            format!(
                "\"Lanturn\" found {id} ({} match, facet home: {})",
                result["total"], result["facets"]["category"][0]["count"]
            )
        }))
    })
    .await;
    if !report.record("searchProducts with a typo finds it", t, found) {
        return;
    }
    let t = Instant::now();
    let suggested = async {
        let result =
            call(ctx, user, "suggest", json!({"prefix": "brass lan", "limit": 10})).await?;
        let texts: Vec<&str> = result["suggestions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["text"].as_str())
            .collect();
        if texts.contains(&title.as_str()) {
            Ok(format!("\"brass lan\" -> {title}"))
        } else {
            Err(format!("suggest did not offer {title}: {texts:?}"))
        }
    }
    .await;
    report.record("suggest completes its title", t, suggested);
}
