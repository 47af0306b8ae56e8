//! `/metrics` (OpenMetrics text) and `/metrics.json` after a mix of requests.

use serde_json::json;

use crate::helpers::{json_body, spawn};
use crate::metrics_auth::{reader_config, reader_token};

#[tokio::test]
async fn metrics_count_requests_errors_and_latency_per_route() {
    let jwks = testkit::jwks::JwksServer::start(&[testkit::keys::primary()], 300).await;
    let (app, _, _) = spawn(&reader_config(&jwks.url())).await;
    for id in ["a", "b", "c"] {
        assert_eq!(
            app.client.get(app.url(&format!("/items/{id}"))).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(app.client.get(app.url("/retry")).send().await.unwrap().status(), 503);
    assert_eq!(app.client.get(app.url("/reject")).send().await.unwrap().status(), 400);
    assert_eq!(
        app.client
            .post(app.url("/permanent"))
            .json(&json!({"id": "e"}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.client.get(app.url("/no/such/path/123")).send().await.unwrap().status(), 404);

    let r = app.client.get(app.url("/metrics")).bearer_auth(reader_token()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    for line in [
        r#"hearth_http_requests_total{method="GET",route="/items/{id}",status_class="2xx"} 3"#,
        r#"hearth_http_requests_total{method="GET",route="/retry",status_class="5xx"} 1"#,
        r#"hearth_http_request_errors_total{method="GET",route="/retry",status_class="5xx"} 1"#,
        r#"hearth_http_requests_total{method="GET",route="/reject",status_class="4xx"} 1"#,
        r#"hearth_http_request_errors_total{method="POST",route="/permanent",status_class="2xx"} 1"#,
        r#"hearth_http_requests_total{method="GET",route="<unmatched>",status_class="4xx"} 1"#,
        r#"hearth_http_request_duration_seconds_count{method="GET",route="/items/{id}",status_class="2xx"} 3"#,
        r#"hearth_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/items/{id}",status_class="2xx"} 3"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("/items/a"), "raw paths must not become labels");
    assert!(
        !text.contains(r#"hearth_http_request_errors_total{method="GET",route="/reject""#),
        "4xx is not an error"
    );

    let r =
        app.client.get(app.url("/metrics.json")).bearer_auth(reader_token()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let json = json_body(r).await;
    let routes = json["routes"].as_array().unwrap();
    let find = |method: &str, route: &str| {
        routes
            .iter()
            .find(|r| r["method"] == method && r["route"] == route)
            .unwrap_or_else(|| panic!("{method} {route} in {json}"))
    };
    let items = find("GET", "/items/{id}");
    assert_eq!(items["count"], 3);
    assert_eq!(items["errors"], 0);
    assert_eq!(items["error_rate"], 0.0);
    for q in ["p50", "p95", "p99"] {
        let v = items["latency_ms"][q].as_f64().unwrap();
        assert!(v > 0.0 && v < 1000.0, "{q}={v}");
    }
    assert!(items["latency_ms"]["p50"].as_f64() <= items["latency_ms"]["p99"].as_f64());
    assert_eq!(find("GET", "/retry")["error_rate"], 1.0);
    assert_eq!(find("POST", "/permanent")["error_rate"], 1.0);
    assert_eq!(find("GET", "/reject")["error_rate"], 0.0);
}
