//! Bad input gets a 4xx problem+json, never a 5xx, and never creates an order.

use orderflow_test_support::DbBackend;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};
use orderflow_test_support::both_databases;

both_databases!(
    every_bad_request_is_a_4xx_problem_and_creates_nothing,
    malformed_path_ids_and_headers_are_rejected
);

async fn every_bad_request_is_a_4xx_problem_and_creates_nothing(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let long = "x".repeat(65);
    let many: Vec<_> = (0..101).map(|i| json!({"product_id": format!("p{i}"), "quantity": 1})).collect();
    let item =
        |q: serde_json::Value| json!({"customer_id": "c", "items": [{"product_id": "p", "quantity": q}]});
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("malformed JSON", app.raw("{\"customer_id\": ", "application/json"), 400),
        ("not an object", app.raw("[1,2]", "application/json"), 422),
        ("empty items", app.json(json!({"customer_id": "c", "items": []})), 422),
        ("101 items", app.json(json!({"customer_id": "c", "items": many})), 422),
        ("quantity 0", app.json(item(json!(0))), 422),
        ("negative quantity", app.json(item(json!(-1))), 422),
        ("huge quantity", app.json(item(json!(1_000_001))), 422),
        ("enormous quantity", app.json(item(json!(1e30))), 422),
        ("fractional quantity", app.json(item(json!(1.5))), 422),
        ("string quantity", app.json(item(json!("2"))), 422),
        ("missing customer", app.json(json!({"items": [{"product_id": "p", "quantity": 1}]})), 422),
        ("missing items", app.json(json!({"customer_id": "c"})), 422),
        ("missing product id", app.json(json!({"customer_id": "c", "items": [{"quantity": 1}]})), 422),
        ("empty customer", app.json(json!({"customer_id": "", "items": [{"product_id": "p", "quantity": 1}]})), 422),
        ("over-long customer", app.json(json!({"customer_id": long, "items": [{"product_id": "p", "quantity": 1}]})), 422),
        ("over-long product", app.json(json!({"customer_id": "c", "items": [{"product_id": long, "quantity": 1}]})), 422),
        ("unknown field", app.json(json!({"customer_id": "c", "items": [{"product_id": "p", "quantity": 1}], "x": 1})), 422),
        ("unknown item field", app.json(json!({"customer_id": "c", "items": [{"product_id": "p", "quantity": 1, "x": 1}]})), 422),
        ("bad priority", app.json(json!({"customer_id": "c", "items": [{"product_id": "p", "quantity": 1}], "priority": "rush"})), 422),
        ("null items", app.json(json!({"customer_id": "c", "items": null})), 422),
        ("oversize body", app.raw(&format!("{{\"customer_id\": \"{}\"}}", "a".repeat(70 * 1024)), "application/json"), 413),
        ("wrong content type", app.raw("{\"customer_id\": \"c\"}", "text/plain"), 415),
        ("no content type", app.http.post(format!("{}/orders", app.base)).body("{}"), 415),
    ];

    for (what, req, want) in cases {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let ctype = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(ctype.as_deref(), Some("application/problem+json"), "{what}");
        assert_eq!(body["status"], want, "{what}");
        assert!(body["type"].as_str().unwrap().starts_with("https://orderflow.dev/problems/"), "{what}");
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{what}");
    }

    // A created order would have been committed, with its event in the outbox, before its
    // response: once the service is quiet, such an event would be in the stream.
    assert_nothing_was_created(&app).await;
    app.stop().await.unwrap();
}

async fn malformed_path_ids_and_headers_are_rejected(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let bad_id = app.get_order("not-a-uuid").await;
    let bad_corr = app
        .http
        .post(format!("{}/orders", app.base))
        .header("X-Correlation-ID", "has space")
        .json(&crate::helpers::order_body())
        .send()
        .await
        .unwrap();
    let long_corr = app
        .http
        .get(format!("{}/orders/00000000-0000-0000-0000-000000000000", app.base))
        .header("X-Correlation-ID", "a".repeat(129))
        .send()
        .await
        .unwrap();
    let bad_key = app
        .http
        .post(format!("{}/orders", app.base))
        .header("Idempotency-Key", "k".repeat(300))
        .json(&crate::helpers::order_body())
        .send()
        .await
        .unwrap();

    for (what, res) in
        [("id", bad_id), ("correlation", bad_corr), ("long correlation", long_corr), ("key", bad_key)]
    {
        assert_eq!(res.status(), 400, "{what}");
        assert_eq!(res.headers()["content-type"], "application/problem+json", "{what}");
    }
    assert_nothing_was_created(&app).await;
    app.stop().await.unwrap();
}

impl crate::helpers::TestApp {
    fn raw(&self, body: &str, content_type: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/orders", self.base))
            .header("content-type", content_type)
            .body(body.to_owned())
    }

    fn json(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/orders", self.base)).json(&body)
    }
}

/// Once the service is quiet, no order row, no outbox row and no event exist.
async fn assert_nothing_was_created(app: &TestApp) {
    app.wait_until_quiet().await;
    assert_eq!(app.rows_in("orders").await, 0, "no order was created");
    assert_eq!(app.rows_in("outbox").await, 0, "no event was written");
    assert!(
        orderflow_test_support::stream_messages(&app.js, "ORDERS").await.is_empty(),
        "no event was published"
    );
}
