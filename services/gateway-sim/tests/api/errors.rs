use reqwest::StatusCode;

use crate::helpers::{assert_problem, charge_body, spawn_app};

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/charges"))
        .header("Idempotency-Key", "key-1")
        .header("content-type", "application/json")
        .body(r#"{"order_id": "order-1","#)
        .send()
        .await
        .unwrap();

    assert_problem(response, StatusCode::BAD_REQUEST, "malformed-json").await;
}

#[tokio::test]
async fn a_wrong_content_type_is_a_415_problem() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/charges"))
        .header("Idempotency-Key", "key-1")
        .header("content-type", "text/plain")
        .body(charge_body("order-1", 1).to_string())
        .send()
        .await
        .unwrap();

    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_problem() {
    let app = spawn_app().await;
    let body =
        format!(r#"{{"order_id": "{}", "amount_cents": 1, "currency": "USD"}}"#, "x".repeat(70 * 1024));

    let response = app
        .client
        .post(app.url("/charges"))
        .header("Idempotency-Key", "key-1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
}

#[tokio::test]
async fn missing_or_invalid_fields_are_a_422_problem() {
    let app = spawn_app().await;
    let invalid = [
        serde_json::json!({"order_id": "order-1", "currency": "USD"}),
        serde_json::json!({"order_id": "order-1", "amount_cents": -1, "currency": "USD"}),
        serde_json::json!({"order_id": "order-1", "amount_cents": 1.5, "currency": "USD"}),
        serde_json::json!({"order_id": "order-1", "amount_cents": 1, "currency": "usd"}),
        serde_json::json!({"order_id": "", "amount_cents": 1, "currency": "USD"}),
        serde_json::json!({"order_id": "o".repeat(65), "amount_cents": 1, "currency": "USD"}),
        serde_json::json!({"order_id": "order-1", "amount_cents": 1, "currency": "USD", "extra": true}),
    ];

    for body in invalid {
        let response = app.charge("key-1", &body).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    }
    assert!(app.get_json("/admin/charges").await["charges"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;

    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    let wrong_method = app.client.get(app.url("/charges")).send().await.unwrap();

    assert_problem(missing, StatusCode::NOT_FOUND, "not-found").await;
    assert_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
}
