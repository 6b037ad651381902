//! `orders.created` → all lines reserved atomically (`inventory.reserved`), or nothing reserved
//! (`inventory.rejected`).

use orderflow_events::{Priority, Version, v2};
use orderflow_test_support::{DbBackend, eventually};
use serde_json::json;

use crate::helpers::{Received, WAIT, order_created, order_created_in, spawn_app, spawn_app_with};

orderflow_test_support::both_databases!(
    an_order_for_stocked_products_is_reserved_with_line_prices_and_total,
    an_order_with_one_short_line_is_rejected_out_of_stock_and_nothing_is_reserved,
    an_order_for_an_unknown_product_is_rejected_unknown_product,
    the_same_orders_created_delivered_twice_reserves_once_and_emits_one_event,
    an_express_order_is_answered_on_the_express_lane,
    concurrent_orders_for_the_last_units_never_oversell,
    concurrent_multi_line_orders_in_opposite_line_order_neither_deadlock_nor_oversell,
    products_priced_in_different_currencies_reject_the_order_currency_mismatch_and_reserve_nothing,
    an_order_in_another_currency_than_its_products_is_rejected_and_one_in_theirs_is_reserved,
    a_currency_mismatch_that_only_v1_would_carry_is_dead_lettered_and_reserves_nothing,
    both_versions_of_one_dual_published_order_reserve_once_whichever_comes_first,
    a_consumer_that_accepts_only_v1_keeps_working_while_orders_are_dual_published,
);

async fn an_order_for_stocked_products_is_reserved_with_line_prices_and_total(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 1_250).await;
    app.stock("sku-b", 5, 300).await;
    // Two lines of sku-b: they are merged into one reserved line.
    let order = order_created(&[("sku-b", 1), ("sku-a", 2), ("sku-b", 2)], Priority::Standard);

    app.publish(&order).await;

    let events = app.wait_for_events(order.data.order_id, 1).await;
    let reserved = &events[0];
    assert_eq!(reserved.subject, "inventory.reserved.v1");
    assert_eq!(reserved.envelope["type"], "orderflow.inventory.reserved.v1");
    assert_eq!(reserved.envelope["source"], "orderflow/inventory-service");
    assert_eq!(reserved.envelope["correlationid"], order.correlationid.as_str());
    assert_eq!(reserved.envelope["traceparent"], json!(order.traceparent));
    assert_eq!(reserved.correlation_header.as_deref(), Some(order.correlationid.as_str()));
    let data = reserved.data();
    assert_eq!(data["order_id"], order.data.order_id.to_string());
    assert_eq!(
        data["lines"],
        json!([
            {"product_id": "sku-a", "quantity": 2, "unit_price_cents": 1_250},
            {"product_id": "sku-b", "quantity": 3, "unit_price_cents": 300},
        ])
    );
    assert_eq!(data["total_cents"], 2 * 1_250 + 3 * 300);
    assert_eq!(data["currency"], "USD");
    assert!(data["reservation_id"].as_str().is_some_and(|id| id.len() == 36));
    assert_eq!(app.stock_of("sku-a").await, (8, 2, 0));
    assert_eq!(app.stock_of("sku-b").await, (2, 3, 0));
}

async fn an_order_with_one_short_line_is_rejected_out_of_stock_and_nothing_is_reserved(backend: DbBackend) {
    let app = spawn_app_with(backend, |s| s.common.events.dual = true).await;
    app.stock("sku-a", 10, 100).await;
    app.stock("sku-b", 1, 100).await;
    app.stock("sku-c", 10, 100).await;
    let order = order_created(&[("sku-a", 2), ("sku-b", 2), ("sku-c", 3)], Priority::Standard);

    app.publish(&order).await;

    // Dual-published in v1 and v2: one event, the same id, two messages.
    let events = app.wait_for_events(order.data.order_id, 2).await;
    let (v1, v2) = (version(&events, "inventory.rejected.v1"), version(&events, "inventory.rejected.v2"));
    assert_eq!(v1.envelope["id"], v2.envelope["id"]);
    assert_eq!(v1.envelope["correlationid"], order.correlationid.as_str());
    for event in [v1, v2] {
        assert_eq!(event.data()["reason"], "out_of_stock");
        assert_eq!(event.data()["product_ids"], json!(["sku-b"]));
    }
    assert_eq!(
        v2.data()["lines"],
        json!([{"product_id": "sku-b", "requested": 2, "available": 1, "currency": "USD"}])
    );
    app.wait_until_quiet().await;
    assert_eq!(app.events_for(order.data.order_id).await.len(), 2);
    assert_eq!(app.stock_of("sku-a").await, (10, 0, 0));
    assert_eq!(app.stock_of("sku-b").await, (1, 0, 0));
    assert_eq!(app.stock_of("sku-c").await, (10, 0, 0));
}

async fn an_order_for_an_unknown_product_is_rejected_unknown_product(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 100).await;
    let order = order_created(&[("sku-a", 1), ("sku-ghost", 1), ("sku-phantom", 2)], Priority::Standard);

    app.publish(&order).await;

    let events = app.wait_for_events(order.data.order_id, 1).await;
    assert_eq!(events[0].subject, "inventory.rejected.v1");
    assert_eq!(events[0].data()["reason"], "unknown_product");
    assert_eq!(events[0].data()["product_ids"], json!(["sku-ghost", "sku-phantom"]));
    assert_eq!(app.stock_of("sku-a").await, (10, 0, 0));
}

async fn the_same_orders_created_delivered_twice_reserves_once_and_emits_one_event(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 100).await;
    let order = order_created(&[("sku-a", 3)], Priority::Standard);

    app.publish_with_msg_id(&order, "first-delivery").await;
    app.publish_with_msg_id(&order, "second-delivery").await;

    app.wait_for_events(order.data.order_id, 1).await;
    app.wait_until_quiet().await;
    let events = app.events_for(order.data.order_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].subject, "inventory.reserved.v1");
    assert_eq!(app.stock_of("sku-a").await, (7, 3, 0));
}

async fn an_express_order_is_answered_on_the_express_lane(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 100).await;
    let reserved = order_created(&[("sku-a", 1)], Priority::Express);
    let rejected = order_created(&[("sku-a", 11)], Priority::Express);

    app.publish_on_lane(&reserved, true).await;
    app.publish_on_lane(&rejected, true).await;

    let events = app.wait_for_events(reserved.data.order_id, 1).await;
    assert_eq!(events[0].subject, "inventory.reserved.v1.express");
    assert_eq!(events[0].envelope["type"], "orderflow.inventory.reserved.v1");
    let events = app.wait_for_events(rejected.data.order_id, 1).await;
    assert_eq!(events[0].subject, "inventory.rejected.v1.express");
}

async fn concurrent_orders_for_the_last_units_never_oversell(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-last", 5, 100).await;
    let orders: Vec<_> = (0..20).map(|_| order_created(&[("sku-last", 1)], Priority::Standard)).collect();

    app.publish_all(&orders).await;

    let mut reserved = 0;
    let mut rejected = 0;
    for order in &orders {
        let events = app.wait_for_events(order.data.order_id, 1).await;
        assert!(events.iter().all(|e| e.envelope["id"] == events[0].envelope["id"]), "one decision");
        match events[0].subject.as_str() {
            "inventory.reserved.v1" => reserved += 1,
            "inventory.rejected.v1" | "inventory.rejected.v2" => {
                assert_eq!(events[0].data()["reason"], "out_of_stock");
                assert_eq!(events[0].data()["product_ids"], json!(["sku-last"]));
                rejected += 1;
            }
            other => panic!("unexpected event on {other}"),
        }
    }
    assert_eq!((reserved, rejected), (5, 15));
    let (available, reserved_units, committed) = app.stock_of("sku-last").await;
    assert_eq!((available, reserved_units, committed), (0, 5, 0));
    assert_eq!(available + reserved_units + committed, 5, "stock is conserved");
}

async fn products_priced_in_different_currencies_reject_the_order_currency_mismatch_and_reserve_nothing(
    backend: DbBackend,
) {
    let app = spawn_app(backend).await;
    app.put_product("sku-usd", json!({"available": 5, "unit_price_cents": 100, "currency": "USD"})).await;
    app.put_product("sku-eur", json!({"available": 5, "unit_price_cents": 100, "currency": "EUR"})).await;
    let order = order_created(&[("sku-usd", 1), ("sku-eur", 1)], Priority::Standard);

    app.publish(&order).await;

    let events = app.wait_for_events(order.data.order_id, 1).await;
    let rejected = version(&events, "inventory.rejected.v2");
    assert_eq!(rejected.data()["reason"], "currency_mismatch");
    assert_eq!(rejected.data()["product_ids"], json!(["sku-eur", "sku-usd"]));
    assert_eq!(
        rejected.data()["lines"][0],
        json!({"product_id": "sku-eur", "requested": 1, "available": 5, "currency": "EUR"})
    );
    app.wait_until_quiet().await;
    // v1 has no such reason: only the v2 is published.
    assert_eq!(app.events_for(order.data.order_id).await.len(), 1);
    assert!(app.dead_letters().await.is_empty());
    assert_eq!(app.stock_of("sku-usd").await, (5, 0, 0));
    assert_eq!(app.stock_of("sku-eur").await, (5, 0, 0));
}

async fn an_order_in_another_currency_than_its_products_is_rejected_and_one_in_theirs_is_reserved(
    backend: DbBackend,
) {
    let app = spawn_app(backend).await;
    app.put_product("sku-usd", json!({"available": 5, "unit_price_cents": 100, "currency": "USD"})).await;
    let in_eur = order_created_in(&[("sku-usd", 2)], Some("EUR"));
    let in_usd = order_created_in(&[("sku-usd", 2)], Some("USD"));

    app.publish(&in_eur).await;
    let events = app.wait_for_events(in_eur.data.order_id, 1).await;
    let rejected = version(&events, "inventory.rejected.v2");
    assert_eq!(rejected.data()["reason"], "currency_mismatch");
    assert_eq!(
        rejected.data()["lines"],
        json!([{"product_id": "sku-usd", "requested": 2, "available": 5, "currency": "USD"}])
    );
    app.publish(&in_usd).await;
    let events = app.wait_for_events(in_usd.data.order_id, 1).await;
    assert_eq!(events[0].subject, "inventory.reserved.v1");
    assert_eq!(events[0].data()["currency"], "USD");
    app.wait_until_quiet().await;
    assert_eq!(app.stock_of("sku-usd").await, (3, 2, 0), "only the USD order holds stock");
}

async fn a_currency_mismatch_that_only_v1_would_carry_is_dead_lettered_and_reserves_nothing(
    backend: DbBackend,
) {
    let app = spawn_app_with(backend, |s| s.common.events.publish = vec![Version::V1]).await;
    app.put_product("sku-usd", json!({"available": 5, "unit_price_cents": 100, "currency": "USD"})).await;
    app.put_product("sku-eur", json!({"available": 5, "unit_price_cents": 100, "currency": "EUR"})).await;
    let order = order_created(&[("sku-usd", 1), ("sku-eur", 1)], Priority::Standard);

    app.publish(&order).await;

    let letter = eventually(WAIT, "the order in the DLQ", || async {
        app.dead_letters()
            .await
            .into_iter()
            .find(|l| l.envelope["subject"] == order.data.order_id.to_string())
    })
    .await
    .unwrap();
    assert_eq!(letter.subject, "dlq.orders.created.v1");
    assert_eq!(letter.dlq_reason.as_deref(), Some("permanent_error"));
    app.wait_until_quiet().await;
    assert!(app.events_for(order.data.order_id).await.is_empty());
    assert_eq!(app.stock_of("sku-usd").await, (5, 0, 0));
    assert_eq!(app.stock_of("sku-eur").await, (5, 0, 0));
}

async fn both_versions_of_one_dual_published_order_reserve_once_whichever_comes_first(backend: DbBackend) {
    let app = spawn_app(backend).await;
    app.stock("sku-a", 10, 100).await;
    let v2_first = order_created(&[("sku-a", 2)], Priority::Standard);
    let v1_first = order_created(&[("sku-a", 3)], Priority::Standard);

    app.publish(&v2_first.clone().map_data(v2::OrderCreated::from)).await;
    app.publish(&v2_first).await;
    app.publish(&v1_first).await;
    app.publish(&v1_first.clone().map_data(v2::OrderCreated::from)).await;

    app.wait_until_quiet().await;
    for (order, units) in [(&v2_first, 2), (&v1_first, 3)] {
        let events = app.events_for(order.data.order_id).await;
        assert_eq!(events.len(), 1, "one reservation per order: {events:?}");
        assert_eq!(events[0].subject, "inventory.reserved.v1");
        assert_eq!(events[0].data()["lines"][0]["quantity"], units);
    }
    assert_eq!(app.stock_of("sku-a").await, (5, 5, 0));
    assert!(app.dead_letters().await.is_empty());
}

async fn a_consumer_that_accepts_only_v1_keeps_working_while_orders_are_dual_published(backend: DbBackend) {
    // A service from before v2: it subscribes to v1 only, so it never meets the v2 copies.
    let app = spawn_app_with(backend, |s| s.common.events.consume = vec![Version::V1]).await;
    app.stock("sku-a", 10, 100).await;
    let order = order_created(&[("sku-a", 4)], Priority::Standard);

    app.publish(&order).await;
    app.publish(&order.clone().map_data(v2::OrderCreated::from)).await;

    let events = app.wait_for_events(order.data.order_id, 1).await;
    assert_eq!(events[0].subject, "inventory.reserved.v1");
    app.wait_until_quiet().await;
    assert_eq!(app.stock_of("sku-a").await, (6, 4, 0));
    assert!(app.dead_letters().await.is_empty(), "the v2 copy is not its business");
    let info = app.consumer_info("ORDERS", "inventory-orders-created").await;
    assert_eq!(info.config.filter_subject, "orders.created.v1");
}

/// The event on `subject` among `events`.
fn version<'a>(events: &'a [Received], subject: &str) -> &'a Received {
    events
        .iter()
        .find(|e| e.subject == subject)
        .unwrap_or_else(|| panic!("no event on {subject}: {events:?}"))
}

async fn concurrent_multi_line_orders_in_opposite_line_order_neither_deadlock_nor_oversell(
    backend: DbBackend,
) {
    let app = spawn_app(backend).await;
    app.stock("sku-x", 10, 100).await;
    app.stock("sku-y", 10, 200).await;
    let orders: Vec<_> = (0..30)
        .map(|n| {
            let lines: &[(&str, u32)] =
                if n % 2 == 0 { &[("sku-x", 1), ("sku-y", 1)] } else { &[("sku-y", 1), ("sku-x", 1)] };
            order_created(lines, Priority::Standard)
        })
        .collect();

    app.publish_all(&orders).await;

    let mut reserved = 0;
    for order in &orders {
        let events = app.wait_for_events(order.data.order_id, 1).await;
        if events[0].subject == "inventory.reserved.v1" {
            assert_eq!(events[0].data()["total_cents"], 300);
            reserved += 1;
        }
    }
    assert_eq!(reserved, 10);
    assert_eq!(app.stock_of("sku-x").await, (0, 10, 0));
    assert_eq!(app.stock_of("sku-y").await, (0, 10, 0));
    app.wait_until_quiet().await;
    let info =
        app.js.get_stream("ORDERS").await.unwrap().consumer_info("inventory-orders-created").await.unwrap();
    assert_eq!(info.num_redelivered, 0, "no handler failed (no deadlock, no lock timeout)");
}
