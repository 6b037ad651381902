//! Transient gateway failures (5xx, timeouts) are retried with backoff until the order is
//! charged; the order id as idempotency key keeps it to one charge.

use serde_json::json;

use crate::helpers::{Options, WAIT, inventory_reserved, spawn_app, spawn_app_with};
use orderflow_test_support::eventually;

/// Waits until the breaker has counted at least one failed gateway call: the service has met the
/// fault at least once.
async fn wait_for_a_failed_call(app: &crate::helpers::TestApp) {
    eventually(WAIT, "a failed gateway call", || async {
        let snapshot = app.breaker.snapshot();
        (snapshot.window.failures > 0 || snapshot.times_opened > 0).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_server_error_is_retried_until_the_order_is_charged() {
    let app = spawn_app().await;
    app.set_faults(json!({"error_rate": 1.0})).await;
    let reserved = inventory_reserved(3100);
    let order_id = reserved.data.order_id;
    app.publish(&reserved).await;
    wait_for_a_failed_call(&app).await;

    app.set_faults(json!({"error_rate": 0.0})).await;

    let event = app.payment_event(order_id).await;
    assert_eq!(event.subject, "payments.completed.v1");
    let row = app.payment_row(order_id).await.unwrap();
    assert_eq!(row.status, "completed");
    assert!(row.attempts >= 2, "the 500 was retried: {row:?}");
    let charges = app.charges(order_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_timeout_is_retried_and_the_order_is_charged_once() {
    let app =
        spawn_app_with(Options { settings: Some(|s| s.gateway_timeout_ms = 300), ..Options::default() })
            .await;
    // Slower than the service waits: the first call times out on the service's side (the
    // gateway still records its charge once the latency is over).
    app.set_faults(json!({"latency_ms": 2000})).await;
    let reserved = inventory_reserved(2600);
    let order_id = reserved.data.order_id;
    app.publish(&reserved).await;
    wait_for_a_failed_call(&app).await;

    app.set_faults(json!({"latency_ms": 0})).await;

    let event = app.payment_event(order_id).await;
    assert_eq!(event.subject, "payments.completed.v1");
    let row = app.payment_row(order_id).await.unwrap();
    assert!(row.attempts >= 2, "the timeout was retried: {row:?}");
    // Every attempt carried the same key, so the gateway made one charge, the one announced.
    let charges = app.charges(order_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["charge_id"], event.data()["charge_id"]);
    assert_eq!(charges[0]["idempotency_key"], order_id.to_string());
}
