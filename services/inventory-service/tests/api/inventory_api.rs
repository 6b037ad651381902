//! The HTTP API: products are created, restocked and read; every bad request is a problem+json.

use orderflow_test_support::DbBackend;
use orderflow_test_support::service::TEST_ADMIN_TOKEN;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

orderflow_test_support::both_databases!(
    a_product_put_is_returned_by_get_with_its_stock_and_price,
    a_second_put_restocks_and_keeps_the_currency_when_none_is_given,
    the_catalog_lists_every_product_sorted_by_id,
    invalid_bodies_are_rejected_with_422_problem_json,
    malformed_json_is_400_and_a_wrong_content_type_is_415,
    changing_a_product_needs_the_admin_token,
    an_unknown_product_is_a_404_problem,
    a_product_id_over_64_characters_is_a_400_invalid_parameter,
    the_openapi_document_is_served_as_json_and_describes_every_route,
);

async fn assert_problem(res: reqwest::Response, status: u16, type_slug: &str) -> Value {
    assert_eq!(res.status(), status);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], format!("https://orderflow.dev/problems/{type_slug}"));
    assert_eq!(body["status"], status);
    body
}

async fn a_product_put_is_returned_by_get_with_its_stock_and_price(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let res = app
        .put_product("sku-001", json!({"available": 10, "unit_price_cents": 1999, "currency": "EUR"}))
        .await;

    assert_eq!(res.status(), 200);
    let expected = json!({
        "product_id": "sku-001", "available": 10, "reserved": 0, "committed": 0,
        "unit_price_cents": 1999, "currency": "EUR"
    });
    assert_eq!(res.json::<Value>().await.unwrap(), expected);
    assert_eq!(app.product("sku-001").await, expected);
}

async fn a_second_put_restocks_and_keeps_the_currency_when_none_is_given(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.put_product("sku-1", json!({"available": 1, "unit_price_cents": 5, "currency": "GBP"})).await;

    let res = app.put_product("sku-1", json!({"available": 7, "unit_price_cents": 6})).await;

    assert_eq!(res.status(), 200);
    let p: Value = res.json().await.unwrap();
    assert_eq!((p["available"].as_i64(), p["unit_price_cents"].as_i64()), (Some(7), Some(6)));
    assert_eq!(p["currency"], "GBP");
    app.stock("sku-new", 1, 1).await;
    assert_eq!(app.product("sku-new").await["currency"], "USD");
}

async fn the_catalog_lists_every_product_sorted_by_id(backend: DbBackend) {
    let app = spawn_app(backend).await;
    for id in ["sku-b", "SKU-c", "sku-a"] {
        app.stock(id, 1, 100).await;
    }

    let res = app.get("/inventory").await;

    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let ids: Vec<&str> =
        body["products"].as_array().unwrap().iter().map(|p| p["product_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["SKU-c", "sku-a", "sku-b"]);
}

async fn invalid_bodies_are_rejected_with_422_problem_json(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let cases = [
        json!({"available": -1, "unit_price_cents": 1}),
        json!({"available": 1, "unit_price_cents": -1}),
        json!({"available": 1}),
        json!({"unit_price_cents": 1}),
        json!({"available": 1, "unit_price_cents": 1, "colour": "red"}),
        json!({"available": 1, "unit_price_cents": 1, "currency": "usd"}),
        json!({"available": "1", "unit_price_cents": 1}),
        json!({"available": 1.5, "unit_price_cents": 1}),
        json!({"available": 1, "unit_price_cents": 10_000_000_001_i64}),
        json!({"available": 1_000_000_000_001_i64, "unit_price_cents": 1}),
        json!([1, 2]),
    ];

    for body in cases {
        let res = app.put_product("sku-1", body.clone()).await;
        let problem = assert_problem(res, 422, "validation-failed").await;
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}: {problem}");
    }
    assert_eq!(app.get("/inventory/sku-1").await.status(), 404, "nothing was created");
}

async fn malformed_json_is_400_and_a_wrong_content_type_is_415(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let url = format!("{}/inventory/sku-1", app.base);

    let res = app
        .http
        .put(&url)
        .bearer_auth(TEST_ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"available\": ")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed-json").await;

    let put = || app.http.put(&url).bearer_auth(TEST_ADMIN_TOKEN);
    let res = put().header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_problem(res, 415, "unsupported-media-type").await;

    let big =
        format!("{{\"available\": 1, \"unit_price_cents\": 1, \"currency\": \"{}\"}}", "x".repeat(70_000));
    let res = put().header("content-type", "application/json").body(big).send().await.unwrap();
    assert_problem(res, 413, "payload-too-large").await;
}

async fn changing_a_product_needs_the_admin_token(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-1", 10, 500).await;
    let url = app.url("/inventory/sku-1");
    let body = json!({"available": 0, "unit_price_cents": 1});

    let without = app.http.put(&url).json(&body).send().await.unwrap();
    assert_eq!(without.headers()["www-authenticate"], "Bearer realm=\"orderflow\"");
    assert_problem(without, 401, "unauthorized").await;
    let wrong =
        app.http.put(&url).bearer_auth("test-admin-token-0123456788").json(&body).send().await.unwrap();
    assert_problem(wrong, 401, "unauthorized").await;
    let basic = app.http.put(&url).header("authorization", format!("Basic {TEST_ADMIN_TOKEN}")).json(&body);
    assert_problem(basic.send().await.unwrap(), 401, "unauthorized").await;

    let product: Value = app.get("/inventory/sku-1").await.json().await.unwrap();
    assert_eq!((product["available"].as_i64(), product["unit_price_cents"].as_i64()), (Some(10), Some(500)));
    assert_eq!(app.put_product("sku-1", body).await.status(), 200, "with the token it goes through");
}

async fn an_unknown_product_is_a_404_problem(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let res = app.get("/inventory/no-such-sku").await;

    assert_problem(res, 404, "not-found").await;
}

async fn a_product_id_over_64_characters_is_a_400_invalid_parameter(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let long = "p".repeat(65);

    assert_problem(app.get(&format!("/inventory/{long}")).await, 400, "invalid-parameter").await;
    let res = app.put_product(&long, json!({"available": 1, "unit_price_cents": 1})).await;
    assert_problem(res, 400, "invalid-parameter").await;
    app.stock(&"p".repeat(64), 1, 1).await;
}

async fn the_openapi_document_is_served_as_json_and_describes_every_route(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let res = app.get("/openapi.json").await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/inventory", "/inventory/{product_id}", "/health/live", "/health/ready", "/openapi.json"] {
        assert!(doc["paths"][path].is_object(), "{path} is not described");
    }
    assert!(doc["paths"]["/inventory/{product_id}"]["put"]["responses"]["422"].is_object());
    let product = &doc["components"]["schemas"]["Product"]["required"];
    let fields: Vec<&str> = product.as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(fields, ["product_id", "available", "reserved", "committed", "unit_price_cents", "currency"]);
}

orderflow_test_support::both_databases!(the_demo_catalog_is_seeded_once_and_never_resets_stock);

async fn the_demo_catalog_is_seeded_once_and_never_resets_stock(backend: DbBackend) {
    use inventory_service::domain::{StockLevel, UnitPrice};
    use orderflow_events::{Currency, ProductId};

    let app = spawn_app(backend).await;

    assert_eq!(inventory_service::seed_demo_catalog(&app.db).await.unwrap(), 40);
    let restocked = inventory_service::upsert_product(
        &app.db,
        ProductId::parse("sku-001").unwrap(),
        StockLevel::parse(3).unwrap(),
        UnitPrice::parse(42).unwrap(),
        Currency::usd(),
    )
    .await
    .unwrap();
    assert_eq!(inventory_service::seed_demo_catalog(&app.db).await.unwrap(), 0);

    assert_eq!((restocked.available, restocked.unit_price_cents), (3, 42));
    assert_eq!(app.stock_of("sku-001").await, (3, 0, 0), "seeding again kept the restocked level");
    let body: Value = app.get("/inventory").await.json().await.unwrap();
    let products = body["products"].as_array().unwrap();
    assert_eq!(products.len(), 40);
    assert_eq!(products[39]["product_id"], "sku-040");
}
