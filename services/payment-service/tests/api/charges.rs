//! What one charge comes to: charged, declined, refused; and that the gateway is asked with the
//! order id as the idempotency key, once per order.

use orderflow_telemetry::trace::TraceContext;
use serde_json::json;

use crate::helpers::{charge_body, inventory_reserved, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_order_is_charged_with_its_order_id_as_the_idempotency_key() {
    let app = spawn_app().await;
    let reserved = inventory_reserved(2500);
    let order_id = reserved.data.order_id;

    app.publish(&reserved).await;

    let event = app.payment_event(order_id).await;
    assert_eq!(event.subject, "payments.completed.v1");
    assert_eq!(event.envelope["type"], "orderflow.payments.completed.v1");
    assert_eq!(event.envelope["source"], "orderflow/payment-service");
    assert_eq!(event.envelope["correlationid"], reserved.correlationid.as_str());
    assert_eq!(event.data()["amount_cents"], 2500);
    assert_eq!(event.data()["currency"], "USD");
    let charges = app.charges(order_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["idempotency_key"], order_id.to_string());
    assert_eq!(charges[0]["charge_id"], event.data()["charge_id"]);
    assert_eq!(charges[0]["amount_cents"], 2500);
    assert_eq!(charges[0]["status"], "succeeded");
    let row = app.payment_row(order_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("completed", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_charge_fails_the_payment_as_payment_declined_without_a_retry() {
    let app = spawn_app().await;
    app.set_faults(json!({"decline_rate": 1.0})).await;
    let reserved = inventory_reserved(1800);
    let order_id = reserved.data.order_id;

    app.publish(&reserved).await;

    let event = app.payment_event(order_id).await;
    assert_eq!(event.subject, "payments.failed.v1");
    assert_eq!(event.data()["reason"], "payment_declined");
    let row = app.payment_row(order_id).await.unwrap();
    assert_eq!(
        (row.status.as_str(), row.reason.as_deref(), row.attempts),
        ("failed", Some("payment_declined"), 1)
    );
    let charges = app.charges(order_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["status"], "declined");
    assert_eq!(row.charge_id.as_deref(), charges[0]["charge_id"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_gateway_refuses_with_a_4xx_is_not_retried_and_fails_the_payment() {
    let app = spawn_app().await;
    let reserved = inventory_reserved(2500);
    let order_id = reserved.data.order_id;
    // Someone already used the order id as a key for another amount: the gateway answers the
    // service's request with 422 idempotency-key-reused, which no retry can change.
    let earlier = app.charge_directly(&order_id.to_string(), charge_body(order_id, 999)).await;
    assert_eq!(earlier.status(), 200);

    app.publish(&reserved).await;

    let event = app.payment_event(order_id).await;
    assert_eq!(event.subject, "payments.failed.v1");
    assert_eq!(event.data()["reason"], "payment_unavailable");
    assert!(event.data()["detail"].as_str().unwrap().contains("422"), "{event:?}");
    let row = app.payment_row(order_id).await.unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 1));
    assert_eq!(row.charge_id, None);
    let charges = app.charges(order_id).await;
    assert_eq!(charges.len(), 1, "only the earlier charge: {charges:?}");
    assert_eq!(charges[0]["amount_cents"], 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_delivered_twice_is_charged_and_announced_once() {
    let app = spawn_app().await;
    let reserved = inventory_reserved(4200);
    let order_id = reserved.data.order_id;
    app.publish(&reserved).await;
    app.payment_event(order_id).await;

    app.publish_again(&reserved).await;

    app.wait_until_quiet().await;
    let events = app.events_for(order_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(app.charges(order_id).await.len(), 1);
    assert_eq!(app.payment_row(order_id).await.unwrap().attempts, 1);
}

/// The trace id of a `traceparent`, which must be a valid one.
fn trace_id(traceparent: &serde_json::Value) -> String {
    let tp = traceparent.as_str().unwrap_or_else(|| panic!("no traceparent: {traceparent}"));
    TraceContext::parse(tp).unwrap_or_else(|e| panic!("{tp}: {e}")).trace_id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_called_and_the_payment_event_published_in_the_reservations_trace() {
    let app = spawn_app().await;
    let reserved = inventory_reserved(2500);
    let order_id = reserved.data.order_id;

    app.publish(&reserved).await;

    let event = app.payment_event(order_id).await;
    let charges = app.charges(order_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    let order_trace = "0af7651916cd43dd8448eb211c80319c";
    assert_eq!(trace_id(&charges[0]["traceparent"]), order_trace, "the gateway call");
    assert_eq!(trace_id(&event.envelope["traceparent"]), order_trace, "the payment event");
    assert_eq!(event.traceparent_header.as_deref(), event.envelope["traceparent"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_without_a_traceparent_is_paid_in_a_new_trace_of_its_own() {
    let app = spawn_app().await;
    let reserved = inventory_reserved(2500).with_traceparent(None);
    let order_id = reserved.data.order_id;

    app.publish(&reserved).await;

    let event = app.payment_event(order_id).await;
    let charges = app.charges(order_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    let charged_in = trace_id(&charges[0]["traceparent"]);
    assert_eq!(trace_id(&event.envelope["traceparent"]), charged_in);
    assert_eq!(event.traceparent_header.as_deref(), event.envelope["traceparent"].as_str());
}
