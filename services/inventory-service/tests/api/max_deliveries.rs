//! Messages the server gave up on by itself reach the DLQ through the max-deliveries consumer
//! every service gets from the kernel (`inventory-max-deliveries`), even when the server gave up
//! while no instance of the service was running.

use std::time::Duration;

use async_nats::jetstream::{AckKind, consumer::PullConsumer};
use futures_util::StreamExt;
use orderflow_events::Priority;
use orderflow_test_support::{DbBackend, eventually, wait_until_acked};
use tokio_util::sync::CancellationToken;

use crate::helpers::{WAIT, order_created, spawn_app};

orderflow_test_support::both_databases!(
    a_message_the_server_gave_up_on_while_inventory_was_down_is_dead_lettered_once_it_is_back
);

async fn a_message_the_server_gave_up_on_while_inventory_was_down_is_dead_lettered_once_it_is_back(
    backend: DbBackend,
) {
    let app = spawn_app(backend).await;
    let (advisories, watcher) =
        app.consumers().last().map(|c| (c.stream.clone(), c.durable.clone())).unwrap();
    assert_eq!((advisories.as_str(), watcher.as_str()), ("ADVISORIES", "inventory-max-deliveries"));
    // Created by its runtime as the service starts (the harness waits for wiring, not readiness).
    let watched = eventually(WAIT, "the max-deliveries consumer", || async {
        app.js.get_stream("ADVISORIES").await.ok()?.consumer_info("inventory-max-deliveries").await.ok()
    })
    .await
    .unwrap()
    .config
    .filter_subjects;
    assert_eq!(watched.len(), 6, "both lanes of inventory's three consumers: {watched:?}");
    assert!(
        watched.contains(
            &"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.inventory-orders-created".to_owned()
        )
    );
    app.stop().await.unwrap();
    let order = order_created(&[("sku-a", 1)], Priority::Standard);
    let seq = app.publish(&order).await.sequence;

    // An instance failed the event on every delivery, could not dead-letter it on the last one
    // (it nak'd instead) and died. With no instance running, the server gives up on it when the
    // next pull request arrives (here an operator's, say) and emits the advisory; nobody hears it.
    let durable: PullConsumer =
        app.js.get_stream("ORDERS").await.unwrap().get_consumer("inventory-orders-created").await.unwrap();
    for n in 1..=5 {
        let msg = eventually(WAIT, "a delivery", || async {
            let mut batch =
                durable.fetch().max_messages(1).expires(Duration::from_millis(500)).messages().await.ok()?;
            batch.next().await?.ok()
        })
        .await
        .unwrap();
        assert_eq!(msg.info().unwrap().delivered, n);
        msg.ack_with(AckKind::Nak(None)).await.unwrap();
    }
    eventually(WAIT, "the server to give up on the event", || async {
        let mut batch =
            durable.fetch().max_messages(1).expires(Duration::from_millis(300)).messages().await.ok()?;
        assert!(batch.next().await.is_none(), "delivered past max_deliver");
        let info = app.consumer_info("ORDERS", "inventory-orders-created").await;
        (info.delivered.stream_sequence >= seq && info.num_ack_pending == 0).then_some(())
    })
    .await
    .unwrap();

    // The next instance copies it to the DLQ.
    let next = inventory_service::Application::build(app.settings().clone()).await.unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(next.run_until_stopped(stop.clone()));
    let order_id = order.data.order_id.to_string();
    let letter = eventually(WAIT, "the event in the DLQ", || async {
        app.stream_messages("DLQ").await.into_iter().find(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).is_ok_and(|e| e["subject"] == order_id)
        })
    })
    .await
    .unwrap();
    // Acked once copied: no instance copies it again.
    let copier = wait_until_acked(&app.js, "ADVISORIES", "inventory-max-deliveries", 1).await;

    let header = |name: &str| letter.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(letter.subject.as_str(), "dlq.orders.created.v1");
    assert_eq!(header("Orderflow-Dlq-Reason").as_deref(), Some("max_deliveries"));
    assert_eq!(header("Orderflow-Consumer").as_deref(), Some("inventory-orders-created"));
    assert_eq!(header("Orderflow-Delivery-Count").as_deref(), Some("5"));
    assert_eq!(header("Orderflow-Stream-Seq"), Some(seq.to_string()));
    assert_eq!(app.dead_letters().await.len(), 1);
    assert_eq!((copier.num_pending, copier.num_ack_pending), (0, 0));
    assert!(app.events_for(order.data.order_id).await.is_empty(), "inventory never handled it");
    stop.cancel();
    running.await.unwrap().unwrap();
}
