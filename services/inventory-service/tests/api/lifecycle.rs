//! Health and graceful shutdown.

use std::time::{Duration, Instant};

use orderflow_test_support::DbBackend;
use serde_json::Value;

use crate::helpers::spawn_app;

orderflow_test_support::both_databases!(
    readiness_is_200_with_every_check_ok_when_running,
    graceful_shutdown_returns_ok_promptly_when_idle,
);

async fn readiness_is_200_with_every_check_ok_when_running(backend: DbBackend) {
    let app = spawn_app(backend).await;

    app.wait_until_ready().await;

    assert_eq!(app.get("/health/live").await.status(), 200);
    let body: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    for check in ["nats", "database", "consumers"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
}

async fn graceful_shutdown_returns_ok_promptly_when_idle(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.wait_until_ready().await;
    let started = Instant::now();

    let result = app.stop().await;

    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(app.http.get(format!("{}/health/live", app.base)).send().await.is_err(), "still listening");
}

orderflow_test_support::both_databases!(shutdown_under_load_publishes_every_committed_event_before_returning);

async fn shutdown_under_load_publishes_every_committed_event_before_returning(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 1_000, 100).await;
    let orders: Vec<_> = (0..200)
        .map(|_| crate::helpers::order_created(&[("sku-a", 1)], orderflow_events::Priority::Standard))
        .collect();
    app.publish_all(&orders).await;
    app.wait_for_events(orders[0].data.order_id, 1).await;

    let result = app.stop().await;

    assert!(result.is_ok(), "{result:?}");
    let db = app.reopen_db().await;
    let backlog = orderflow_platform::OutboxRelay::backlog(&db).await.unwrap();
    assert_eq!(backlog.unsent, 0, "every committed event was published");
    let reserved_units: i64 = sqlx::query_scalar("SELECT reserved FROM products WHERE product_id = 'sku-a'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let mut published = 0;
    for order in &orders {
        published += app.events_for(order.data.order_id).await.len();
    }
    assert_eq!(i64::try_from(published).unwrap(), reserved_units, "one event per reservation, none lost");
    assert!(reserved_units > 0);
}
