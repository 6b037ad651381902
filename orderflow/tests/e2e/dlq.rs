//! Dead letters end to end: an order stuck because inventory gave up on its event completes once
//! the dead letter is replayed; the `orderflow dlq` binary reads the same DLQ.

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures_util::StreamExt;
use orderflow::invariants;
use orderflow::system::Tune;
use orderflow_messaging::DlqReason;
use orderflow_messaging::dlq::DeadLetter;
use orderflow_messaging::dlq_admin::{self, Filter};
use orderflow_test_support::{DbBackend, eventually, stream_messages};
use serde_json::{Value, json};

use crate::helpers::{WAIT, spawn_system};
use orderflow_test_support::both_databases;

both_databases!(replaying_the_dead_lettered_event_of_a_stuck_order_completes_it);

/// Runs the `orderflow` binary; returns its exit status and stdout.
async fn cli(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(args)
        .env_remove("NATS_URL")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    (out.status, String::from_utf8(out.stdout).unwrap())
}

async fn replaying_the_dead_lettered_event_of_a_stuck_order_completes_it(backend: DbBackend) {
    let mut sys = spawn_system(backend, Tune::default()).await;
    let nats_url = sys.system.nats_url.clone();
    let js = sys.nats.jetstream().await.unwrap();
    let before = sys.product("sku-008").await;
    sys.system.stop_service("inventory-service").await.unwrap();
    let id = sys.place(json!([{"product_id": "sku-008", "quantity": 2}])).await;

    // Inventory gives up on the order's event: take it off inventory's durable consumer and
    // dead-letter it as the runtime does after the last allowed delivery.
    let consumer: PullConsumer =
        js.get_stream("ORDERS").await.unwrap().get_consumer("inventory-orders-created").await.unwrap();
    let msg = eventually(WAIT, "the order's event", || async {
        let mut batch =
            consumer.fetch().max_messages(1).expires(Duration::from_millis(500)).messages().await.ok()?;
        batch.next().await?.ok()
    })
    .await
    .unwrap();
    assert_eq!(orderflow_events::peek(&msg.payload).unwrap().subject.as_deref(), Some(id.as_str()));
    let info = msg.info().unwrap();
    let letter = DeadLetter {
        reason: DlqReason::MaxDeliveries,
        error: "inventory database unavailable".to_owned(),
        original_subject: msg.subject.to_string(),
        stream: info.stream.to_owned(),
        stream_seq: info.stream_sequence,
        consumer: "inventory-orders-created".to_owned(),
        delivered: 5,
        headers: msg.headers.clone(),
        payload: msg.payload.clone(),
    };
    letter.publish(&js).await.unwrap();
    msg.double_ack().await.unwrap();
    sys.system.start_inventory().await.unwrap();
    // Inventory is back and has caught up (its consumers run, the system is quiet) without the
    // acked event: nothing is left that could move the order.
    sys.wait_until_ready(&sys.system.inventory_url).await;
    invariants::wait_until_quiet(&sys.targets(), WAIT).await.unwrap();
    let inventory = sys.consumer_info("ORDERS", "inventory-orders-created").await;
    assert!(inventory.ack_floor.stream_sequence >= info.stream_sequence, "{inventory:?}");
    assert!(stream_messages(&js, "INVENTORY").await.is_empty(), "inventory never saw the order");
    assert_eq!(sys.order(&id).await["status"], "pending", "the order is stuck");

    // The CLI sees it, and refuses to purge without --yes.
    let (status, stdout) = cli(&["dlq", "list", "--json", "--nats-url", &nats_url]).await;
    assert!(status.success(), "{stdout}");
    let listed: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["order_id"], id);
    assert_eq!(listed[0]["reason"], "max_deliveries");
    assert_eq!(listed[0]["consumer"], "inventory-orders-created");
    assert_eq!(listed[0]["original_subject"], "orders.created.v1");
    let seq = listed[0]["seq"].as_u64().unwrap();
    let (status, stdout) = cli(&["dlq", "show", &seq.to_string(), "--json", "--nats-url", &nats_url]).await;
    assert!(status.success());
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["payload"]["subject"], id);
    assert_eq!(shown["headers"]["Orderflow-Dlq-Error"][0], "inventory database unavailable");
    let (status, _) = cli(&["dlq", "purge", "--all", "--nats-url", &nats_url]).await;
    assert!(!status.success(), "purge without --yes must refuse");

    let replayed = dlq_admin::replay(&js, seq).await.unwrap();

    assert_eq!(replayed.original_subject, "orders.created.v1");
    let order = sys.terminal(&id).await;
    assert_eq!(order["status"], "confirmed");
    assert!(dlq_admin::list(&js, &Filter::default()).await.unwrap().is_empty());
    let after = sys.product("sku-008").await;
    assert_eq!(after["committed"], before["committed"].as_i64().unwrap() + 2);
    assert_eq!(sys.charges(&id).await.len(), 1);
    sys.finish().await;
}
