//! Event versions at the order service: what `POST /orders` publishes in each configuration, and
//! the v2 events it understands.

use orderflow_events::v2::{InventoryRejected, RejectReason, RejectedLine};
use orderflow_events::{Currency, OrderId, ProductId, Version};
use orderflow_test_support::{DbBackend, both_databases};
use serde_json::{Value, json};

use crate::helpers::{TestApp, order_body, spawn_app, spawn_app_with};

both_databases!(
    by_default_an_order_is_published_once_in_the_oldest_version_that_carries_it,
    dual_publishing_sends_an_order_in_v1_and_v2_as_one_event,
    an_order_with_a_currency_is_published_in_v2_only,
    a_currency_is_refused_when_orders_created_v2_is_not_published,
    a_currency_mismatch_cancels_the_order_and_is_announced_in_v2_only,
    both_versions_of_one_rejection_cancel_the_order_once,
);

async fn order(app: &TestApp, body: &Value) -> OrderId {
    let res = app.post_order(body).await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    OrderId::parse(body["order_id"].as_str().unwrap()).unwrap()
}

fn payload(msg: &async_nats::jetstream::message::StreamMessage) -> Value {
    serde_json::from_slice(&msg.payload).unwrap()
}

async fn by_default_an_order_is_published_once_in_the_oldest_version_that_carries_it(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = order(&app, &order_body()).await;

    let v1 = app.wait_messages("ORDERS", "orders.created.v1", 1).await;
    assert_eq!(payload(&v1[0])["data"]["order_id"], id.to_string());
    app.wait_until_quiet().await;
    assert!(app.messages_on("ORDERS", "orders.created.v2").await.is_empty(), "v1 carries it: no copy");
    app.stop().await.unwrap();
}

async fn dual_publishing_sends_an_order_in_v1_and_v2_as_one_event(backend: DbBackend) {
    let app = spawn_app_with(backend, |s| s.common.events.dual = true).await;
    let id = order(&app, &order_body()).await;

    let v1 = app.wait_messages("ORDERS", "orders.created.v1", 1).await;
    let v2 = app.wait_messages("ORDERS", "orders.created.v2", 1).await;
    let (v1, v2) = (payload(&v1[0]), payload(&v2[0]));
    assert_eq!(v1["id"], v2["id"], "one event, two versions");
    assert_eq!(
        (&v1["type"], &v2["type"]),
        (&json!("orderflow.orders.created.v1"), &json!("orderflow.orders.created.v2"))
    );
    assert_eq!(v1["data"]["order_id"], id.to_string());
    assert_eq!(v2["data"]["currency"], Value::Null);
    assert!(v1["data"].get("currency").is_none());
    app.stop().await.unwrap();
}

async fn an_order_with_a_currency_is_published_in_v2_only(backend: DbBackend) {
    // Even while dual-publishing.
    let app = spawn_app_with(backend, |s| s.common.events.dual = true).await;
    let mut body = order_body();
    body["currency"] = json!("EUR");
    order(&app, &body).await;

    let v2 = app.wait_messages("ORDERS", "orders.created.v2", 1).await;
    assert_eq!(payload(&v2[0])["data"]["currency"], "EUR");
    app.wait_until_quiet().await;
    // v1 cannot carry the currency: a v1 reader would reserve it in the products' currency.
    assert!(app.messages_on("ORDERS", "orders.created.v1").await.is_empty());
    app.stop().await.unwrap();
}

async fn a_currency_is_refused_when_orders_created_v2_is_not_published(backend: DbBackend) {
    let app = spawn_app_with(backend, |s| s.common.events.publish = vec![Version::V1]).await;
    let mut body = order_body();
    body["currency"] = json!("EUR");

    let res = app.post_order(&body).await;

    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("currency"), "{problem}");
    // Without a currency the same deployment takes the order, in v1 only.
    order(&app, &order_body()).await;
    app.wait_messages("ORDERS", "orders.created.v1", 1).await;
    app.wait_until_quiet().await;
    assert!(app.messages_on("ORDERS", "orders.created.v2").await.is_empty());
    app.stop().await.unwrap();
}

fn mismatch(order_id: OrderId) -> InventoryRejected {
    InventoryRejected {
        order_id,
        reason: RejectReason::CurrencyMismatch,
        product_ids: vec![ProductId::parse("sku-001").unwrap()],
        lines: vec![RejectedLine {
            product_id: ProductId::parse("sku-001").unwrap(),
            requested: 2,
            available: Some(10),
            currency: Some(Currency::usd()),
        }],
    }
}

async fn a_currency_mismatch_cancels_the_order_and_is_announced_in_v2_only(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = order(&app, &order_body()).await;

    app.publish_event(mismatch(id)).await;

    let order = app.wait_status(&id.to_string(), "cancelled").await;
    assert_eq!(order["reason"], "currency_mismatch");
    let cancelled = app.wait_messages("ORDERS", "orders.cancelled.v2", 1).await;
    assert_eq!(payload(&cancelled[0])["data"]["reason"], "currency_mismatch");
    app.wait_until_quiet().await;
    assert!(app.messages_on("ORDERS", "orders.cancelled.v1").await.is_empty());
    app.stop().await.unwrap();
}

async fn both_versions_of_one_rejection_cancel_the_order_once(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = order(&app, &order_body()).await;
    let rejected = InventoryRejected { reason: RejectReason::OutOfStock, ..mismatch(id) };

    // The v2 first, then the v1 of the same event (same id), as a dual-publishing inventory does.
    let v2 = app.publish_event(rejected.clone()).await;
    let v1 = v2.with_data(rejected.to_v1().unwrap());
    app.publish(&v1).await;

    let order = app.wait_status(&id.to_string(), "cancelled").await;
    assert_eq!(order["reason"], "out_of_stock");
    app.wait_until_quiet().await;
    assert_eq!(app.order_json(&id.to_string()).await["history"].as_array().unwrap().len(), 2);
    assert_eq!(app.messages_on("ORDERS", "orders.cancelled.v1").await.len(), 1);
    assert!(app.messages_on("ORDERS", "orders.cancelled.v2").await.is_empty());
    assert!(app.stream_messages("DLQ").await.is_empty());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_event_contract_is_served_beside_the_api() {
    let app = spawn_app(DbBackend::Sqlite).await;

    let res = app.get("/schemas/asyncapi.yaml").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/yaml");
    let document = res.text().await.unwrap();
    assert!(document.contains("asyncapi: 3.0.0"));
    assert!(document.contains("$ref: ./orders.created.v2.json"));
    // The relative reference resolves to the schema route beside it.
    let res = app.get("/schemas/orders.created.v2.json").await;
    assert_eq!(res.status(), 200);
    let schema: Value = res.json().await.unwrap();
    assert_eq!(schema["title"], "orderflow.orders.created.v2");
    assert_eq!(app.get("/schemas/orders.created.v9.json").await.status(), 404);
    app.stop().await.unwrap();
}
