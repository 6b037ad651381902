//! The order's state machine driven by the other services' events.

use std::time::Duration;

use orderflow_events::{
    ChargeId, Currency, InventoryRejected, OrderId, PaymentCompleted, PaymentFailed, PaymentFailureReason,
    PaymentId, ProductId, RejectReason,
};
use orderflow_test_support::{DbBackend, eventually};

use crate::helpers::{order_body, spawn_app};
use orderflow_test_support::both_databases;

const WAIT: Duration = Duration::from_secs(30);

both_databases!(
    a_rejected_reservation_cancels_the_order_with_its_reason,
    a_completed_payment_confirms_the_order_with_its_total,
    a_failed_payment_cancels_the_order,
    the_same_event_delivered_twice_has_one_effect,
    an_event_that_contradicts_a_terminal_order_is_dead_lettered,
);

async fn new_order(app: &crate::helpers::TestApp) -> OrderId {
    let res = app.post_order(&order_body()).await;
    let body: serde_json::Value = res.json().await.unwrap();
    OrderId::parse(body["order_id"].as_str().unwrap()).unwrap()
}

fn completed(order_id: OrderId) -> PaymentCompleted {
    PaymentCompleted {
        order_id,
        payment_id: PaymentId::new(),
        charge_id: ChargeId::parse("ch_1").unwrap(),
        amount_cents: 2598,
        currency: Currency::usd(),
    }
}

async fn a_rejected_reservation_cancels_the_order_with_its_reason(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = new_order(&app).await;

    app.publish_event(InventoryRejected {
        order_id: id,
        reason: RejectReason::OutOfStock,
        product_ids: vec![ProductId::parse("sku-001").unwrap()],
    })
    .await;

    let order = app.wait_status(&id.to_string(), "cancelled").await;
    assert_eq!(order["reason"], "out_of_stock");
    assert_eq!(order["history"].as_array().unwrap().len(), 2);
    let events = app.wait_messages("ORDERS", "orders.cancelled.v1", 1).await;
    let env: serde_json::Value = serde_json::from_slice(&events[0].payload).unwrap();
    assert_eq!(env["data"]["reason"], "out_of_stock");
    assert_eq!(env["correlationid"], "test-corr");
    app.stop().await.unwrap();
}

async fn a_completed_payment_confirms_the_order_with_its_total(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = new_order(&app).await;

    app.publish_event(completed(id)).await;

    let order = app.wait_status(&id.to_string(), "confirmed").await;
    assert_eq!(order["total_cents"], 2598);
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["reason"], serde_json::Value::Null);
    let statuses: Vec<_> = order["history"].as_array().unwrap().iter().map(|h| h["status"].clone()).collect();
    assert_eq!(statuses, ["pending", "confirmed"]);
    app.wait_messages("ORDERS", "orders.confirmed.v1", 1).await;
    app.stop().await.unwrap();
}

async fn a_failed_payment_cancels_the_order(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = new_order(&app).await;

    app.publish_event(PaymentFailed {
        order_id: id,
        reason: PaymentFailureReason::PaymentDeclined,
        detail: Some("card declined".into()),
    })
    .await;

    let order = app.wait_status(&id.to_string(), "cancelled").await;
    assert_eq!(order["reason"], "payment_declined");
    app.stop().await.unwrap();
}

async fn the_same_event_delivered_twice_has_one_effect(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = new_order(&app).await;
    let env = app.publish_event(completed(id)).await;
    app.wait_status(&id.to_string(), "confirmed").await;

    // The same event again under another message id: past JetStream's de-duplication, so only
    // the inbox stands between it and a second effect.
    let again = app.publish_again(&env).await;
    assert!(!again.duplicate, "stored a second time");
    // Handled means acked or dead-lettered: either way the consumer's ack floor passes it, after
    // whatever its handling wrote (in the same transaction as the inbox row) has been relayed.
    eventually(WAIT, "the second delivery handled", || async {
        let info = app.consumer_info("PAYMENTS", "order-payments-completed").await;
        (info.ack_floor.stream_sequence >= again.sequence).then_some(())
    })
    .await
    .unwrap();
    app.wait_until_quiet().await;

    let order = app.order_json(&id.to_string()).await;
    assert_eq!(order["history"].as_array().unwrap().len(), 2);
    assert_eq!(app.messages_on("ORDERS", "orders.confirmed.v1").await.len(), 1);
    assert!(app.messages_on("DLQ", "dlq.payments.completed.v1").await.is_empty());
    app.stop().await.unwrap();
}

async fn an_event_that_contradicts_a_terminal_order_is_dead_lettered(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let id = new_order(&app).await;
    app.publish_event(completed(id)).await;
    app.wait_status(&id.to_string(), "confirmed").await;

    app.publish_event(PaymentFailed {
        order_id: id,
        reason: PaymentFailureReason::PaymentDeclined,
        detail: None,
    })
    .await;

    let dlq = app.wait_messages("DLQ", "dlq.payments.failed.v1", 1).await;
    assert_eq!(dlq[0].headers.get("Orderflow-Dlq-Reason").unwrap().as_str(), "permanent_error");
    assert_eq!(app.order_json(&id.to_string()).await["status"], "confirmed");
    app.stop().await.unwrap();
}
