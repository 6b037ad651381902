//! Group commit ([`Db::write`]) against real SQLite and PostgreSQL: units that succeed commit
//! together, a unit that fails (or whose statement fails) is rolled back alone, and a unit may
//! undo part of its own work with a nested savepoint.

use orderflow_platform::{Db, SqlError, Tx, WriteError, args};
use orderflow_test_support::{DbBackend, TestDb};

async fn open(backend: DbBackend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).unwrap();
    let (url, schema) = test_db.for_service("writer");
    let db = Db::connect(&url, &schema, &[]).await.unwrap();
    (test_db, db)
}

async fn insert(tx: &mut Tx, handler: &str, id: &str) -> Result<(), SqlError> {
    tx.execute(
        "INSERT INTO inbox (handler, event_id, processed_at) VALUES ($1, $2, 'now')",
        args![handler, id],
    )
    .await
    .map(|_| ())
}

async fn stored(db: &Db, handler: &str) -> Vec<String> {
    let handler = handler.to_owned();
    let rows = db
        .read(move |tx| {
            Box::pin(async move {
                tx.query_all(
                    "SELECT event_id FROM inbox WHERE handler = $1 ORDER BY event_id",
                    args![&handler],
                )
                .await
            })
        })
        .await
        .unwrap();
    rows.iter().map(|r| r.text(0).unwrap()).collect()
}

async fn concurrent_units_commit_and_failing_ones_roll_back_alone(backend: DbBackend) {
    // Arrange
    let (_guard, db) = open(backend).await;

    // Act: 60 concurrent units; every 5th inserts and then fails, every 7th fails in SQL
    // (a duplicate key, which aborts the statement — and on PostgreSQL the subtransaction).
    let mut tasks = Vec::new();
    for i in 0..60u32 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |conn| {
                Box::pin(async move {
                    let id = format!("e{i:03}");
                    insert(conn, "batch", &id).await.map_err(|e| e.to_string())?;
                    if i % 5 == 0 {
                        return Err("refused".to_owned());
                    }
                    if i % 7 == 0 {
                        insert(conn, "batch", &id).await.map_err(|e| e.to_string())?;
                    }
                    Ok(i)
                })
            })
            .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }

    // Assert
    let mut expected = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let i = u32::try_from(i).unwrap();
        if i % 5 == 0 || i % 7 == 0 {
            assert!(matches!(r, Err(WriteError::Unit(_))), "unit {i} should have failed: {r:?}");
        } else {
            assert_eq!(r.unwrap(), i);
            expected.push(format!("e{i:03}"));
        }
    }
    assert_eq!(stored(&db, "batch").await, expected);
}

async fn a_lone_failing_unit_leaves_nothing(backend: DbBackend) {
    // Arrange
    let (_guard, db) = open(backend).await;

    // Act
    let r = db
        .write(|conn| {
            Box::pin(async move {
                insert(conn, "lone", "a").await?;
                Err::<(), _>(SqlError::Decode("refused".into()))
            })
        })
        .await;
    let ok = db.write(|conn| Box::pin(async move { insert(conn, "lone", "b").await })).await;

    // Assert
    assert!(matches!(r, Err(WriteError::Unit(SqlError::Decode(_)))));
    ok.unwrap();
    assert_eq!(stored(&db, "lone").await, ["b"]);
}

async fn a_unit_can_undo_part_of_its_work_with_a_nested_savepoint(backend: DbBackend) {
    // Arrange
    let (_guard, db) = open(backend).await;

    // Act: alone, then several at once (inside the writer's own savepoints).
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.write(move |conn| {
                Box::pin(async move {
                    insert(conn, "nested", &format!("kept{i}")).await?;
                    conn.savepoint("undo_part").await?;
                    insert(conn, "nested", &format!("undone{i}")).await?;
                    conn.rollback_to("undo_part").await?;
                    Ok::<_, SqlError>(())
                })
            })
            .await
        }));
        if i == 0 {
            // The first one runs alone.
            tasks.pop().unwrap().await.unwrap().unwrap();
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    // Assert
    let expected: Vec<String> = (0..8).map(|i| format!("kept{i}")).collect();
    assert_eq!(stored(&db, "nested").await, expected);
}

async fn reads_see_committed_writes_and_never_uncommitted_ones(backend: DbBackend) {
    // Arrange
    let (_guard, db) = open(backend).await;

    // Act
    db.write(|conn| Box::pin(async move { insert(conn, "reads", "committed").await })).await.unwrap();
    let refused = db
        .write(|conn| {
            Box::pin(async move {
                insert(conn, "reads", "rolled-back").await?;
                Err::<(), _>(SqlError::Decode("refused".into()))
            })
        })
        .await;

    // Assert
    assert!(refused.is_err());
    assert_eq!(stored(&db, "reads").await, ["committed"]);
}

orderflow_test_support::both_databases!(
    concurrent_units_commit_and_failing_ones_roll_back_alone,
    a_lone_failing_unit_leaves_nothing,
    a_unit_can_undo_part_of_its_work_with_a_nested_savepoint,
    reads_see_committed_writes_and_never_uncommitted_ones,
);

/// On SQLite a unit runs to completion on the writer's thread: one that waits on anything but
/// the database cannot, so it is rolled back with its batch and its caller told so, and the
/// writer goes on with the next batch.
#[tokio::test]
async fn a_sqlite_unit_that_waits_on_something_else_is_rolled_back_and_the_writer_goes_on() {
    // Arrange
    let (_guard, db) = open(DbBackend::Sqlite).await;

    // Act
    let waited = db
        .write(|conn| {
            Box::pin(async move {
                insert(conn, "waits", "before-the-wait").await?;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                Ok::<_, SqlError>(())
            })
        })
        .await;
    let next = db.write(|conn| Box::pin(async move { insert(conn, "waits", "next").await })).await;

    // Assert
    assert!(matches!(waited, Err(WriteError::Aborted)), "{waited:?}");
    next.unwrap();
    assert_eq!(stored(&db, "waits").await, ["next"]);
}

/// Two instances of a service on one PostgreSQL schema: their writers' batches lock the same rows
/// in opposite orders. Without the per-schema writer lock PostgreSQL would detect deadlocks and
/// abort batches (under load the instances livelocked); with it every unit commits.
#[tokio::test]
async fn two_writers_on_one_postgres_schema_take_turns_instead_of_deadlocking() {
    // Arrange: two `Db`s (two pools, two writers) on one schema, two rows.
    let (_guard, first) = open(DbBackend::Postgres).await;
    let (url, schema) = _guard.for_service("writer");
    let second = Db::connect(&url, &schema, &[]).await.unwrap();
    for id in ["r1", "r2"] {
        first.write(move |conn| Box::pin(insert(conn, "locks", id))).await.unwrap();
    }

    // Act: units that update r1 then r2 on one writer, r2 then r1 on the other, interleaved.
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let (db, order) =
            if i % 2 == 0 { (first.clone(), ["r1", "r2"]) } else { (second.clone(), ["r2", "r1"]) };
        tasks.push(tokio::spawn(async move {
            db.write(move |conn| {
                Box::pin(async move {
                    for id in order {
                        let at = format!("t{i}");
                        conn.execute(
                            "UPDATE inbox SET processed_at = $1 WHERE handler = 'locks' AND event_id = $2",
                            args![&at, id],
                        )
                        .await?;
                        // PostgreSQL's writer awaits the server, so a unit may wait here: this
                        // holds the first row lock while the other writer takes its first.
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                    Ok::<_, SqlError>(())
                })
            })
            .await
        }));
    }

    // Assert
    for t in tasks {
        let result = t.await.unwrap();
        assert!(result.is_ok(), "a unit did not commit: {result:?}");
    }
}
