//! A fresh store rebuilt from the streams equals the live one, on SQLite and PostgreSQL.

use analytics_service::{audit, rebuild};
use orderflow_events::{CancelReason, OrderId};
use orderflow_platform::Db;
use orderflow_test_support::{DbBackend, TestDb};

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
    let live = audit::tables(&app.db).await.unwrap();
    let summary = app.summary().await;
    assert_eq!(summary.totals.accepted, 10);
    assert_eq!(summary.in_flight, 1);

    let fresh_db = TestDb::new(backend).unwrap();
    let (url, schema) = fresh_db.for_service("analytics_rebuilt");
    let fresh = Db::connect(&url, &schema, &analytics_service::startup::MIGRATIONS).await.unwrap();
    let replayed = rebuild::replay(&app.js, &fresh).await.unwrap();

    assert_eq!(audit::tables(&fresh).await.unwrap(), live);
    assert_eq!(replayed.duplicates, 4, "{replayed:?}");
    assert_eq!(replayed.skipped, 0);

    // Into the live store, a replay changes nothing.
    let again = rebuild::replay(&app.js, &app.db).await.unwrap();
    assert_eq!(again.folded, 0, "{again:?}");
    assert_eq!(audit::tables(&app.db).await.unwrap(), live);
}

#[tokio::test]
async fn rebuild_equals_live_on_sqlite() {
    rebuild_equals_live(DbBackend::Sqlite).await;
}

#[tokio::test]
async fn rebuild_equals_live_on_postgres() {
    rebuild_equals_live(DbBackend::Postgres).await;
}
