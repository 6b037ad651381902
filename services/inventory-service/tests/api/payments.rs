//! `payments.completed` commits a reservation; `payments.failed` releases it and announces
//! `inventory.released`; impossible payments are dead-lettered.

use orderflow_events::{
    ChargeId, CorrelationId, Currency, Envelope, OrderId, PaymentCompleted, PaymentFailed,
    PaymentFailureReason, PaymentId, Priority,
};
use orderflow_test_support::{DbBackend, eventually};

use crate::helpers::{Received, TestApp, WAIT, order_created, spawn_app};

orderflow_test_support::both_databases!(
    a_completed_payment_commits_the_reservation_once_even_when_delivered_twice,
    a_failed_payment_releases_the_reservation_and_emits_inventory_released,
    a_failed_express_payment_is_released_on_the_express_lane,
    a_completed_payment_without_a_reservation_is_dead_lettered,
);

/// Reserves `quantity` of `sku` for a new order; returns the order id and the reserved event.
async fn reserve(app: &TestApp, sku: &str, quantity: u32, priority: Priority) -> (OrderId, Received) {
    let order = order_created(&[(sku, quantity)], priority);
    app.publish_on_lane(&order, priority == Priority::Express).await;
    let events = app.wait_for_events(order.data.order_id, 1).await;
    assert!(events[0].subject.starts_with("inventory.reserved.v1"), "{events:?}");
    (order.data.order_id, events[0].clone())
}

fn completed(order_id: OrderId, amount_cents: i64) -> Envelope<PaymentCompleted> {
    let data = PaymentCompleted {
        order_id,
        payment_id: PaymentId::new(),
        charge_id: ChargeId::parse("ch_test_1").unwrap(),
        amount_cents,
        currency: Currency::usd(),
    };
    Envelope::new("orderflow/payment-service", CorrelationId::generate(), data)
}

fn failed(order_id: OrderId) -> Envelope<PaymentFailed> {
    let data = PaymentFailed { order_id, reason: PaymentFailureReason::PaymentDeclined, detail: None };
    Envelope::new("orderflow/payment-service", CorrelationId::parse("corr-failed-1").unwrap(), data)
}

async fn a_completed_payment_commits_the_reservation_once_even_when_delivered_twice(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 500).await;
    let (order_id, _) = reserve(&app, "sku-a", 4, Priority::Standard).await;
    let payment = completed(order_id, 2_000);

    app.publish_with_msg_id(&payment, "payment-1").await;
    app.publish_with_msg_id(&payment, "payment-1-again").await;

    eventually(WAIT, "stock committed", || async {
        (app.stock_of("sku-a").await == (6, 0, 4)).then_some(())
    })
    .await
    .unwrap();
    app.wait_until_quiet().await;
    assert_eq!(app.stock_of("sku-a").await, (6, 0, 4));
    assert_eq!(app.events_for(order_id).await.len(), 1, "committing emits nothing");
    assert!(app.dead_letters().await.is_empty());
}

async fn a_failed_payment_releases_the_reservation_and_emits_inventory_released(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 500).await;
    let (order_id, reserved) = reserve(&app, "sku-a", 4, Priority::Standard).await;
    assert_eq!(app.stock_of("sku-a").await, (6, 4, 0));
    let failure = failed(order_id);

    app.publish(&failure).await;

    let events = app.wait_for_events(order_id, 2).await;
    let released = &events[1];
    assert_eq!(released.subject, "inventory.released.v1");
    assert_eq!(released.envelope["type"], "orderflow.inventory.released.v1");
    assert_eq!(released.envelope["correlationid"], "corr-failed-1");
    assert_eq!(released.data()["order_id"], order_id.to_string());
    assert_eq!(released.data()["reservation_id"], reserved.data()["reservation_id"]);
    assert_eq!(app.stock_of("sku-a").await, (10, 0, 0));

    app.publish_with_msg_id(&failure, "failed-again").await;
    app.wait_until_quiet().await;
    assert_eq!(app.events_for(order_id).await.len(), 2, "a replayed failure releases nothing more");
    assert_eq!(app.stock_of("sku-a").await, (10, 0, 0));
}

async fn a_failed_express_payment_is_released_on_the_express_lane(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 500).await;
    let (order_id, reserved) = reserve(&app, "sku-a", 1, Priority::Express).await;
    assert_eq!(reserved.subject, "inventory.reserved.v1.express");

    // The payment service answers on the standard lane here: the reservation remembers the lane.
    app.publish(&failed(order_id)).await;

    let events = app.wait_for_events(order_id, 2).await;
    assert_eq!(events[1].subject, "inventory.released.v1.express");
}

async fn a_completed_payment_without_a_reservation_is_dead_lettered(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let payment = completed(OrderId::new(), 100);

    app.publish(&payment).await;

    let letter =
        eventually(WAIT, "the payment in the DLQ", || async { app.dead_letters().await.into_iter().next() })
            .await
            .unwrap();
    assert_eq!(letter.subject, "dlq.payments.completed.v1");
    assert_eq!(letter.dlq_reason.as_deref(), Some("permanent_error"));
    assert_eq!(letter.envelope["id"], payment.id.to_string());
}
