//! CORS of the api as deployed: the allowed origins come from the manifest's `cors` map
//! (`shared/functions.yaml`, the `production` list that Terraform exports as
//! `HEARTH_CORS_ORIGINS`). A browser's preflight for a callable with an `Idempotency-Key` is
//! answered for a listed origin, the real call then exposes `Idempotent-Replayed` and
//! `Retry-After`, and an origin that is not listed gets no `Access-Control-Allow-Origin`, so its browser
//! withholds every answer.

use std::path::Path;

use serde_json::{Value, json};

use crate::payments::Harness;

fn manifest_origins(environment: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/functions.yaml");
    let m = manifest::Manifest::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let origins = m.functions["api"].cors_origins(environment).join(",");
    assert!(!origins.is_empty(), "the manifest lists the api's {environment} origins");
    origins
}

fn preflight(h: &Harness, origin: &str) -> reqwest::RequestBuilder {
    h.app
        .client
        .request(reqwest::Method::OPTIONS, h.app.url("/initiatePayment"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,idempotency-key")
}

fn exposed(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("access-control-expose-headers")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn browsers_of_the_configured_origins_get_preflight_and_exposed_headers() {
    let origins = manifest_origins("production");
    let allowed = origins.split(',').next().unwrap().to_owned();
    let h = Harness::start(&[("HEARTH_CORS_ORIGINS", &origins)]).await;

    let r = preflight(&h, &allowed).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], allowed.as_str());
    let methods = r.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let headers =
        r.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for wanted in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(wanted), "{wanted} in {headers}");
    }
    assert!(r.headers().get("access-control-allow-credentials").is_none(), "no cookies");

    // The real call, replayed: the browser may read Idempotent-Replayed.
    h.product("kettle", 10).await;
    let reservation = h.reserve("ada", "kettle", 1).await;
    let pay = json!({"data": {"reservationIds": [reservation], "provider": "stripe"}});
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let r = h
            .app
            .client
            .post(h.app.url("/initiatePayment"))
            .header("origin", &allowed)
            .header("idempotency-key", "browser-key-1")
            .bearer_auth(h.token("ada"))
            .json(&pay)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["access-control-allow-origin"], allowed.as_str());
        let exposed = exposed(&r);
        for wanted in ["idempotent-replayed", "retry-after"] {
            assert!(exposed.contains(wanted), "{wanted} in {exposed}");
        }
        bodies.push((r.headers().get("idempotent-replayed").cloned(), r.json::<Value>().await));
    }
    assert_eq!(bodies[1].0.as_ref().map(|v| v.to_str().unwrap()), Some("true"));

    // An origin the manifest does not list: no CORS headers, so the browser blocks the answer.
    let evil = "https://evil.example";
    let r = preflight(&h, evil).send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = h
        .app
        .client
        .post(h.app.url("/getFeed"))
        .header("origin", evil)
        .bearer_auth(h.token("ada"))
        .json(&json!({"data": {}}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
