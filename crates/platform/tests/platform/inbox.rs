//! Inbox pruning against real SQLite and PostgreSQL: rows past the horizon go (in several
//! batches), rows inside it stay, so a duplicate inside the horizon is still a no-op.

use std::time::Duration;

use orderflow_platform::inbox::{self, PRUNE_BATCH};
use orderflow_platform::{Db, SqlError, args, format_rfc3339};
use orderflow_test_support::{DbBackend, TestDb};
use tokio_util::sync::CancellationToken;

async fn open(backend: DbBackend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).unwrap();
    let (url, schema) = test_db.for_service("inbox");
    let db = Db::connect(&url, &schema, &[]).await.unwrap();
    (test_db, db)
}

/// Inserts `ids` as processed by `handler` at `at`.
async fn processed_at(db: &Db, handler: &'static str, ids: Vec<String>, at: time::OffsetDateTime) {
    let at = format_rfc3339(at);
    db.write(move |tx| {
        Box::pin(async move {
            for id in &ids {
                tx.execute(
                    "INSERT INTO inbox (handler, event_id, processed_at) VALUES ($1, $2, $3)",
                    args![handler, id, &at],
                )
                .await?;
            }
            Ok::<_, SqlError>(())
        })
    })
    .await
    .unwrap();
}

async fn first_time(db: &Db, handler: &'static str, id: &'static str) -> bool {
    db.write(move |tx| Box::pin(async move { inbox::first_time(tx, handler, id).await })).await.unwrap()
}

async fn count(db: &Db) -> i64 {
    db.read(|tx| Box::pin(async move { tx.query_one("SELECT COUNT(*) FROM inbox", &[]).await?.int(0) }))
        .await
        .unwrap()
}

async fn pruning_forgets_rows_past_the_horizon_and_keeps_duplicates_inside_it_idempotent(backend: DbBackend) {
    // Arrange: more old rows than one batch holds, and rows an hour inside the horizon.
    let (_guard, db) = open(backend).await;
    let now = time::OffsetDateTime::now_utc();
    let horizon = time::Duration::try_from(inbox::horizon()).unwrap();
    let hour = time::Duration::hours(1);
    let old: Vec<String> = (0..PRUNE_BATCH * 2 + 7).map(|i| format!("old-{i:05}")).collect();
    processed_at(&db, "h", old, now - horizon - hour).await;
    processed_at(&db, "h", vec!["old-claim".into()], now - horizon - hour).await;
    processed_at(&db, "h", vec!["recent".into()], now - horizon + hour).await;
    processed_at(&db, "inventory-orders-created:order", vec!["order-1".into()], now - horizon + hour).await;

    // Act
    let deleted = inbox::prune(&db, now - horizon, &CancellationToken::new()).await.unwrap();

    // Assert
    assert_eq!(deleted, u64::try_from(PRUNE_BATCH * 2 + 8).unwrap());
    assert_eq!(count(&db).await, 2);
    assert!(!first_time(&db, "h", "recent").await, "a duplicate inside the horizon must stay a no-op");
    assert!(!first_time(&db, "inventory-orders-created:order", "order-1").await);
    assert!(first_time(&db, "h", "old-claim").await, "past the horizon the row is gone");
}

async fn a_prune_with_nothing_to_do_deletes_nothing(backend: DbBackend) {
    let (_guard, db) = open(backend).await;
    assert!(first_time(&db, "h", "fresh").await);

    let deleted = inbox::prune(
        &db,
        time::OffsetDateTime::now_utc() - Duration::from_secs(60),
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    assert_eq!(deleted, 0);
    assert!(!first_time(&db, "h", "fresh").await);
}

orderflow_test_support::both_databases!(
    pruning_forgets_rows_past_the_horizon_and_keeps_duplicates_inside_it_idempotent,
    a_prune_with_nothing_to_do_deletes_nothing,
);
