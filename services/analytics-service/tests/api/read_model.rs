//! The fold: counts, revenue, latency, late and out-of-order events, duplicates, bad input.

use orderflow_events::{CancelReason, OrderId};
use orderflow_test_support::DbBackend;

use orderflow_test_support::service::WAIT;

use crate::helpers::*;

async fn orders_are_counted_with_revenue_latency_and_products(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let (a, b) = (OrderId::new(), OrderId::new());
    let t = minute(0, 1);
    app.publish(&created(a, &[("sku-001", 2), ("sku-002", 1)], t)).await;
    app.publish(&created(b, &[("sku-001", 1)], t)).await;
    app.publish(&confirmed(a, 4_500, "USD", t + time::Duration::milliseconds(250))).await;
    app.publish(&cancelled(b, CancelReason::OutOfStock, t + time::Duration::milliseconds(40))).await;

    let s = app.wait_summary("both orders ended", |s| s.totals.confirmed + s.totals.cancelled == 2).await;

    assert_eq!((s.totals.accepted, s.totals.confirmed, s.totals.cancelled), (2, 1, 1));
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.revenue_cents.get("USD"), Some(&4_500));
    assert_eq!(s.cancelled_by_reason.get("out_of_stock"), Some(&1));
    assert_eq!((s.latency_ms.p50, s.latency_ms.p99), (Some(40), Some(250)));
    assert_eq!(s.flow["created"], 2);
    assert_eq!(s.flow["confirmed"], 1);
    assert_eq!(s.flow["reserved"], 0);
    let top = &s.top_products[0];
    assert_eq!((top.product_id.as_str(), top.quantity, top.orders), ("sku-001", 3, 2));
    let now = minute_entry(&s, t);
    assert_eq!((now.accepted, now.confirmed, now.cancelled), (2, 1, 1));
    assert_eq!(now.revenue_cents.get("USD"), Some(&4_500));
    assert_eq!(s.per_minute.len(), 60);
}

#[tokio::test]
async fn a_confirmed_and_a_cancelled_order_are_counted_on_sqlite() {
    orders_are_counted_with_revenue_latency_and_products(DbBackend::Sqlite).await;
}

#[tokio::test]
async fn a_confirmed_and_a_cancelled_order_are_counted_on_postgres() {
    orders_are_counted_with_revenue_latency_and_products(DbBackend::Postgres).await;
}

async fn revenue_saturates_instead_of_overflowing(backend: DbBackend) {
    let app = spawn_app(backend).await;
    let t = minute(0, 0);
    for _ in 0..3 {
        app.publish(&confirmed(OrderId::new(), i64::MAX / 2, "USD", t)).await;
    }

    let s = app.wait_summary("three confirmations", |s| s.totals.confirmed == 3).await;

    assert_eq!(s.revenue_cents.get("USD"), Some(&i64::MAX));
    assert_eq!(minute_entry(&s, t).revenue_cents.get("USD"), Some(&i64::MAX));
}

#[tokio::test]
async fn revenue_saturates_on_sqlite() {
    revenue_saturates_instead_of_overflowing(DbBackend::Sqlite).await;
}

#[tokio::test]
async fn revenue_saturates_on_postgres() {
    revenue_saturates_instead_of_overflowing(DbBackend::Postgres).await;
}

#[tokio::test]
async fn late_and_out_of_order_events_land_in_their_own_minute() {
    let app = spawn_app(DbBackend::Sqlite).await;
    let order = OrderId::new();
    let t = minute(10, 30);
    // The terminal event arrives first, and both happened ten minutes ago.
    app.publish(&confirmed(order, 1_000, "EUR", t)).await;
    app.wait_summary("the confirmation counted", |s| s.totals.confirmed == 1).await;
    app.publish(&created(order, &[("sku-003", 1)], t - time::Duration::milliseconds(200))).await;

    let s = app.wait_summary("the creation counted", |s| s.totals.accepted == 1).await;

    assert_eq!(s.in_flight, 0);
    assert_eq!((s.latency_ms.p50, s.latency_ms.p99), (Some(200), Some(200)));
    let then = minute_entry(&s, t);
    assert_eq!((then.accepted, then.confirmed), (1, 1), "{:?}", s.per_minute);
    assert_eq!(then.revenue_cents.get("EUR"), Some(&1_000));
    assert_eq!(then.latency_ms.p50, Some(200));
    assert_eq!(s.per_minute.iter().map(|m| m.accepted).sum::<i64>(), 1, "nothing in any other minute");
}

#[tokio::test]
async fn a_duplicated_or_redelivered_event_is_counted_once() {
    let app = spawn_app(DbBackend::Sqlite).await;
    let order = OrderId::new();
    let create = created(order, &[("sku-001", 1)], minute(0, 0));
    app.publish(&create).await;
    app.publish_again(&create).await;
    let confirm = confirmed(order, 700, "USD", minute(0, 0));
    app.publish(&confirm).await;
    app.publish_again(&confirm).await;
    assert_eq!(app.stream_messages("ORDERS").await.len(), 4, "JetStream stored both copies");

    app.wait_until_quiet().await;

    let s = app.summary().await;
    assert_eq!((s.totals.accepted, s.totals.confirmed), (1, 1));
    assert_eq!(s.revenue_cents.get("USD"), Some(&700));
    assert_eq!(s.flow["created"], 1);
    assert_eq!(s.top_products[0].quantity, 1);
}

#[tokio::test]
async fn an_event_that_cannot_be_folded_is_dead_lettered_with_its_reason() {
    let app = spawn_app(DbBackend::Sqlite).await;
    app.js.publish("orders.created.v1", "{not json".into()).await.unwrap().await.unwrap();

    let dead = orderflow_test_support::eventually(WAIT, "a dead letter", || async {
        app.stream_messages("DLQ").await.into_iter().next()
    })
    .await
    .unwrap();

    let header = |name: &str| dead.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(dead.subject.as_str(), "dlq.orders.created.v1");
    assert_eq!(header("Orderflow-Dlq-Reason").as_deref(), Some("malformed"));
    assert_eq!(header("Orderflow-Consumer").as_deref(), Some("analytics-orders-created"));
    assert_eq!(app.summary().await.totals.accepted, 0);
}
