//! Stage: search. The demo user lists a product through the api (`becomeVendor`,
//! `createProduct`, `publishProduct`); the search function's replica picks it up from
//! the Firestore listen stream, and `searchProducts` with a misspelt query ("Lanturn" for
//! "lantern") finds it, with its category facet; `suggest` completes its title from a prefix.

use std::time::{Duration, Instant};

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
    let title = format!("Brass lantern {}", ctx.suffix);
    let t = Instant::now();
    // Listed through the api as a vendor lists one: become a vendor, create, publish.
    let listed = async {
        let token = &user.id_token;
        let handle = format!("lamps-{}", ctx.suffix.to_lowercase());
        ctx.call(token, "becomeVendor", json!({"name": "Demo Lamps", "handle": handle}), None)
            .await?;
        let created = ctx
            .call(
                token,
                "createProduct",
                json!({"title": title, "description": "A hand-made brass lantern",
                       "category": "home", "tags": ["lighting"],
                       "images": ["https://img.example.com/lantern.png"], "priceMinor": 3500,
                       "currency": "usd"}),
                None,
            )
            .await?;
        let product_id =
            created["productId"].as_str().ok_or("createProduct gave no productId")?.to_owned();
        let published =
            ctx.call(token, "publishProduct", json!({"productId": product_id}), None).await?;
        if published["status"] != "active" {
            return Err(format!("publishProduct answered {published}"));
        }
        Ok(product_id)
    }
    .await;
    let (id, listed) = match listed {
        Ok(id) => {
            (id.clone(), Ok(format!("products/{id} (becomeVendor, createProduct, publishProduct)")))
        }
        Err(e) => (String::new(), Err(e)),
    };
    if !report.record("a product is listed through the api (products/{productId})", t, listed) {
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
