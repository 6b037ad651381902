//! The outbox relay against a real nats-server and real SQLite and PostgreSQL: committed events
//! reach JetStream straight from the writer (well before the sweep would look), rolled-back ones
//! never do, and rows a crash left unsent are swept up.

use std::time::Duration;

use async_nats::jetstream;
use orderflow_messaging::topology::{Topology, provision};
use orderflow_messaging::{OutgoingMessage, Publisher};
use orderflow_platform::outbox::{self, SWEEP_AFTER};
use orderflow_platform::{Db, OutboxRelay, SqlError};
use orderflow_test_support::{DbBackend, TestDb, TestNats, eventually};
use tokio_util::sync::CancellationToken;

struct Setup {
    _nats: TestNats,
    _db_guard: TestDb,
    js: jetstream::Context,
    url: String,
    schema: String,
}

async fn setup(backend: DbBackend) -> Setup {
    let nats = TestNats::start().unwrap();
    let js = nats.jetstream().await.unwrap();
    provision(&js, &Topology::orderflow(1)).await.unwrap();
    let db_guard = TestDb::new(backend).unwrap();
    let (url, schema) = db_guard.for_service("relay");
    Setup { _nats: nats, _db_guard: db_guard, js, url, schema }
}

fn message(id: &str) -> OutgoingMessage {
    OutgoingMessage {
        subject: "orders.created.v1".to_owned(),
        message_id: id.to_owned(),
        payload: format!("{{\"id\":\"{id}\"}}").into(),
        correlation_id: Some("c-1".to_owned()),
        traceparent: None,
    }
}

/// Writes `msg` to the outbox in a unit of its own.
async fn enqueue(db: &Db, msg: OutgoingMessage) {
    db.write(move |tx| Box::pin(async move { outbox::enqueue(tx, &msg).await })).await.unwrap();
}

async fn stream_messages(js: &jetstream::Context) -> u64 {
    js.get_stream("ORDERS").await.unwrap().info().await.unwrap().state.messages
}

/// Waits until the outbox has no unsent row (marks follow the publish by up to 100 ms).
async fn every_row_marked_sent(db: &Db) {
    eventually(Duration::from_secs(5), "every outbox row marked sent", || async {
        (OutboxRelay::backlog(db).await.unwrap().unsent == 0).then_some(())
    })
    .await
    .unwrap();
}

fn start_relay(db: &Db, js: &jetstream::Context) -> CancellationToken {
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(db.clone(), Publisher::new(js.clone()), "test");
    tokio::spawn(relay.run(stop.clone(), Duration::from_secs(5)));
    stop
}

async fn committed_events_are_published_from_memory_and_marked_sent(backend: DbBackend) {
    // Arrange
    let s = setup(backend).await;
    let db = Db::connect(&s.url, &s.schema, &[]).await.unwrap();
    let stop = start_relay(&db, &s.js);

    // Act
    enqueue(&db, message("e-1")).await;

    // Assert: on JetStream well before a sweep could have found the row, then marked sent.
    eventually(SWEEP_AFTER / 2, "the event on JetStream", || async {
        (stream_messages(&s.js).await == 1).then_some(())
    })
    .await
    .unwrap();
    every_row_marked_sent(&db).await;
    stop.cancel();
}

async fn events_of_rolled_back_work_are_never_published(backend: DbBackend) {
    // Arrange
    let s = setup(backend).await;
    let db = Db::connect(&s.url, &s.schema, &[]).await.unwrap();
    let stop = start_relay(&db, &s.js);

    // Act: a unit that fails after enqueueing; one that undoes an enqueue with a nested
    // savepoint and keeps another; then a marker.
    let failed = db
        .write(|tx| {
            Box::pin(async move {
                outbox::enqueue(tx, &message("failed")).await?;
                Err::<(), _>(SqlError::Decode("refused".into()))
            })
        })
        .await;
    db.write(|tx| {
        Box::pin(async move {
            tx.savepoint("maybe").await?;
            outbox::enqueue(tx, &message("undone")).await?;
            tx.rollback_to("maybe").await?;
            outbox::enqueue(tx, &message("kept")).await
        })
    })
    .await
    .unwrap();
    enqueue(&db, message("marker")).await;

    // Assert: exactly the kept event and the marker, and nothing unsent is left behind.
    assert!(failed.is_err());
    eventually(Duration::from_secs(5), "the marker on JetStream", || async {
        (stream_messages(&s.js).await == 2).then_some(())
    })
    .await
    .unwrap();
    let stream = s.js.get_stream("ORDERS").await.unwrap();
    let mut ids = Vec::new();
    for seq in [1, 2] {
        let msg = stream.get_raw_message(seq).await.unwrap();
        ids.push(String::from_utf8(msg.payload.to_vec()).unwrap());
    }
    assert_eq!(ids, ["{\"id\":\"kept\"}", "{\"id\":\"marker\"}"]);
    every_row_marked_sent(&db).await;
    stop.cancel();
}

async fn rows_a_crash_left_unsent_are_swept(backend: DbBackend) {
    // Arrange: an instance commits an event and dies before its relay publishes it.
    let s = setup(backend).await;
    {
        let crashed = Db::connect(&s.url, &s.schema, &[]).await.unwrap();
        enqueue(&crashed, message("orphan")).await;
    }

    // Act: another instance's relay runs.
    let db = Db::connect(&s.url, &s.schema, &[]).await.unwrap();
    let stop = start_relay(&db, &s.js);

    // Assert
    eventually(SWEEP_AFTER * 3, "the orphaned event on JetStream", || async {
        (stream_messages(&s.js).await == 1).then_some(())
    })
    .await
    .unwrap();
    every_row_marked_sent(&db).await;
    stop.cancel();
}

async fn an_events_trace_context_reaches_its_nats_header_from_memory_and_from_the_sweep(backend: DbBackend) {
    // Arrange: an instance commits an event and dies before its relay publishes it; another
    // commits one and publishes it from memory. Each row has its own trace context.
    let traced = |id: &str, traceparent: &str| OutgoingMessage {
        traceparent: Some(traceparent.to_owned()),
        ..message(id)
    };
    let orphan_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let live_trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let s = setup(backend).await;
    {
        let crashed = Db::connect(&s.url, &s.schema, &[]).await.unwrap();
        enqueue(&crashed, traced("orphan", orphan_trace)).await;
    }
    let db = Db::connect(&s.url, &s.schema, &[]).await.unwrap();
    let stop = start_relay(&db, &s.js);

    // Act
    enqueue(&db, traced("live", live_trace)).await;

    // Assert
    eventually(SWEEP_AFTER * 3, "both events on JetStream", || async {
        (stream_messages(&s.js).await == 2).then_some(())
    })
    .await
    .unwrap();
    let stream = s.js.get_stream("ORDERS").await.unwrap();
    let mut headers = std::collections::BTreeMap::new();
    for seq in [1, 2] {
        let msg = stream.get_raw_message(seq).await.unwrap();
        let traceparent = msg.headers.get("traceparent").map(|v| v.as_str().to_owned());
        headers.insert(String::from_utf8(msg.payload.to_vec()).unwrap(), traceparent);
    }
    assert_eq!(headers["{\"id\":\"live\"}"].as_deref(), Some(live_trace), "from memory");
    assert_eq!(headers["{\"id\":\"orphan\"}"].as_deref(), Some(orphan_trace), "from the sweep");
    stop.cancel();
}

orderflow_test_support::both_databases!(
    committed_events_are_published_from_memory_and_marked_sent,
    events_of_rolled_back_work_are_never_published,
    rows_a_crash_left_unsent_are_swept,
    an_events_trace_context_reaches_its_nats_header_from_memory_and_from_the_sweep,
);
