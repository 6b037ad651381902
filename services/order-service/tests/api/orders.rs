use std::time::Duration;

use orderflow_test_support::DbBackend;
use serde_json::json;

use crate::helpers::{order_body, spawn_app};
use orderflow_test_support::both_databases;

both_databases!(
    an_accepted_order_is_pending_with_its_history_and_event,
    the_same_idempotency_key_and_body_return_the_first_response_without_a_second_order,
    the_same_idempotency_key_with_a_different_body_is_rejected,
    a_correlation_id_is_echoed_and_carried_into_the_event,
    a_correlation_id_is_generated_when_absent,
    an_idle_service_stops_cleanly_within_five_seconds,
    readiness_reports_every_dependency,
);

async fn an_accepted_order_is_pending_with_its_history_and_event(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let res = app.post_order(&json!({"customer_id": "c-1", "items": [{"product_id": "sku-001", "quantity": 2}], "priority": "express"})).await;

    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = res.json().await.unwrap();
    let id = body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "pending");
    assert_eq!(location, format!("/orders/{id}"));
    let order = app.order_json(&id).await;
    assert_eq!(order["status"], "pending");
    assert_eq!(order["reason"], serde_json::Value::Null);
    assert_eq!(order["total_cents"], serde_json::Value::Null);
    assert_eq!(order["items"], json!([{"product_id": "sku-001", "quantity": 2}]));
    assert_eq!(order["history"].as_array().unwrap().len(), 1);
    assert_eq!(order["history"][0]["status"], "pending");
    let events = app.wait_messages("ORDERS", "orders.created.v1.express", 1).await;
    let envelope: serde_json::Value = serde_json::from_slice(&events[0].payload).unwrap();
    assert_eq!(envelope["type"], "orderflow.orders.created.v1");
    assert_eq!(envelope["source"], "orderflow/order-service");
    assert_eq!(envelope["subject"], id);
    assert_eq!(envelope["data"]["priority"], "express");
    assert_eq!(events[0].headers.get("Nats-Msg-Id").unwrap().as_str(), envelope["id"].as_str().unwrap());
    app.stop().await.unwrap();
}

async fn the_same_idempotency_key_and_body_return_the_first_response_without_a_second_order(
    backend: DbBackend,
) {
    let app = spawn_app(backend).await;
    let send = || {
        app.http
            .post(format!("{}/orders", app.base))
            .header("Idempotency-Key", "key-1")
            .json(&order_body())
            .send()
    };

    let first = send().await.unwrap();
    let (s1, l1) = (first.status(), first.headers()["location"].clone());
    let b1: serde_json::Value = first.json().await.unwrap();
    let second = send().await.unwrap();

    assert_eq!(s1, 202);
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["location"], l1);
    let b2: serde_json::Value = second.json().await.unwrap();
    assert_eq!(b1, b2);
    // Both answers came after their writes committed; once the outbox is empty, every event
    // written is in the stream.
    app.wait_until_quiet().await;
    assert_eq!(app.rows_in("orders").await, 1, "one order");
    let created = app.messages_on("ORDERS", "orders.created.v1").await;
    assert_eq!(created.len(), 1, "one event");
    let envelope: serde_json::Value = serde_json::from_slice(&created[0].payload).unwrap();
    assert_eq!(envelope["subject"], b1["order_id"]);
    app.stop().await.unwrap();
}

async fn the_same_idempotency_key_with_a_different_body_is_rejected(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let post = |body: serde_json::Value| {
        app.http.post(format!("{}/orders", app.base)).header("Idempotency-Key", "key-2").json(&body).send()
    };
    assert_eq!(post(order_body()).await.unwrap().status(), 202);

    let res = post(json!({"customer_id": "c-2", "items": [{"product_id": "sku-001", "quantity": 2}]}))
        .await
        .unwrap();

    assert_eq!(res.status(), 422);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = res.json().await.unwrap();
    assert_eq!(p["type"], "https://orderflow.dev/problems/idempotency-key-reused");
    app.stop().await.unwrap();
}

async fn a_correlation_id_is_echoed_and_carried_into_the_event(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let res = app
        .http
        .post(format!("{}/orders", app.base))
        .header("X-Correlation-ID", "req-42:a.b_c")
        .json(&order_body())
        .send()
        .await
        .unwrap();

    assert_eq!(res.headers()["x-correlation-id"], "req-42:a.b_c");
    let events = app.wait_messages("ORDERS", "orders.created.v1", 1).await;
    let envelope: serde_json::Value = serde_json::from_slice(&events[0].payload).unwrap();
    assert_eq!(envelope["correlationid"], "req-42:a.b_c");
    assert_eq!(events[0].headers.get("X-Correlation-ID").unwrap().as_str(), "req-42:a.b_c");
    app.stop().await.unwrap();
}

async fn a_correlation_id_is_generated_when_absent(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let res = app.get_order("00000000-0000-0000-0000-000000000000").await;

    assert_eq!(res.status(), 404);
    let id = res.headers()["x-correlation-id"].to_str().unwrap();
    assert!(!id.is_empty() && id.len() <= 128);
    app.stop().await.unwrap();
}

async fn an_idle_service_stops_cleanly_within_five_seconds(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let started = std::time::Instant::now();

    let result = tokio::time::timeout(Duration::from_secs(5), app.stop()).await;

    assert!(result.expect("stopped within 5 s").is_ok(), "clean drain after {:?}", started.elapsed());
}

async fn readiness_reports_every_dependency(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let body = orderflow_test_support::eventually(Duration::from_secs(10), "ready", || async {
        let res = app.http.get(format!("{}/health/ready", app.base)).send().await.unwrap();
        let ok = res.status() == 200;
        let body: serde_json::Value = res.json().await.unwrap();
        ok.then_some(body)
    })
    .await
    .unwrap();

    assert_eq!(body["checks"]["nats"], "ok");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["consumers"], "ok");
    let live = app.http.get(format!("{}/health/live", app.base)).send().await.unwrap();
    assert_eq!(live.status(), 200);
    app.stop().await.unwrap();
}
