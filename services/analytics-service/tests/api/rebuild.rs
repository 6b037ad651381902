//! A fresh store rebuilt from the streams equals the live one — after duplicates, events out of
//! order and a real JetStream redelivery — on SQLite and PostgreSQL.

use std::time::Duration;

use analytics_service::{audit, rebuild};
use async_nats::jetstream::consumer::PullConsumer;
use futures_util::StreamExt as _;
use orderflow_events::{CancelReason, OrderId};
use orderflow_platform::Db;
use orderflow_test_support::service::WAIT;
use orderflow_test_support::{DbBackend, TestDb, eventually};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

async fn rebuild_equals_live(backend: DbBackend) {
    let app = spawn_app(backend).await;
    // Ten orders over three minutes: confirmed, cancelled for each reason, one still in flight,
    // some events duplicated and some arriving before their order's creation.
    for i in 0..10_i64 {
        let order = OrderId::new();
        let at = minute(i % 3, i);
        let product = format!("sku-00{i}");
        let create = created(order, &[("sku-001", 1), (product.as_str(), 2)], at);
        let end = at + time::Duration::milliseconds(100 * (i + 1));
        if i % 4 == 0 {
            app.publish(&confirmed(order, 1_000 + i, if i == 8 { "EUR" } else { "USD" }, end)).await;
        }
        app.publish(&create).await;
        if i % 3 == 0 {
            app.publish_again(&create).await;
        }
        match i % 4 {
            1 => {
                app.publish(&cancelled(order, CancelReason::OutOfStock, end)).await;
            }
            2 => {
                app.publish(&cancelled(order, CancelReason::PaymentDeclined, end)).await;
            }
            3 if i != 7 => {
                app.publish(&cancelled(order, CancelReason::PaymentUnavailable, end)).await;
            }
            _ => {}
        }
    }
    app.wait_until_quiet().await;

    // A real redelivery: with the service stopped, one more order's creation is taken from its
    // durable consumer and never acked (an instance that died holding it); the next instance
    // gets it again after the consumer's back-off.
    app.stop().await.unwrap();
    app.publish(&created(OrderId::new(), &[("sku-001", 1)], minute(0, 0))).await;
    let durable: PullConsumer =
        app.js.get_stream("ORDERS").await.unwrap().get_consumer("analytics-orders-created").await.unwrap();
    let mut taken =
        durable.batch().max_messages(1).expires(Duration::from_secs(10)).messages().await.unwrap();
    let _held = taken.next().await.unwrap().unwrap();
    let next = analytics_service::Application::build(app.settings().clone()).await.unwrap();
    let db = next.db().clone();
    let stop = CancellationToken::new();
    let running = tokio::spawn(next.run_until_stopped(stop.clone()));
    let stored = app.messages_on("ORDERS", "orders.created.v1").await.len() as u64;
    eventually(WAIT, "the held message delivered again, and every delivery acked", || async {
        let info = app.consumer_info("ORDERS", "analytics-orders-created").await;
        let deliveries = info.delivered.consumer_sequence;
        (deliveries == stored + 1 && info.ack_floor.consumer_sequence == deliveries && info.num_pending == 0)
            .then_some(())
    })
    .await
    .unwrap();

    let live = audit::tables(&db).await.unwrap();
    let summary = analytics_service::summary::read(&db, time::OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(summary.totals.accepted, 11);
    assert_eq!(summary.in_flight, 2);

    let fresh_db = TestDb::new(backend).unwrap();
    let (url, schema) = fresh_db.for_service("analytics_rebuilt");
    let fresh = Db::connect(&url, &schema, &analytics_service::startup::MIGRATIONS).await.unwrap();
    let replayed = rebuild::replay(&app.js, &fresh).await.unwrap();

    assert_eq!(audit::tables(&fresh).await.unwrap(), live);
    assert_eq!(replayed.duplicates, 4, "{replayed:?}");
    assert_eq!(replayed.skipped, 0);

    // Into the live store, a replay changes nothing.
    let again = rebuild::replay(&app.js, &db).await.unwrap();
    assert_eq!(again.folded, 0, "{again:?}");
    assert_eq!(audit::tables(&db).await.unwrap(), live);
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn rebuild_equals_live_on_sqlite() {
    rebuild_equals_live(DbBackend::Sqlite).await;
}

#[tokio::test]
async fn rebuild_equals_live_on_postgres() {
    rebuild_equals_live(DbBackend::Postgres).await;
}
