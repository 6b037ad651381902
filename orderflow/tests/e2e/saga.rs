use std::time::{Duration, Instant};

use orderflow::invariants;
use orderflow::system::Tune;
use orderflow_test_support::{DbBackend, eventually, stream_messages, wait_until_acked};
use serde_json::json;

use crate::helpers::{WAIT, metric, spawn_system};
use orderflow_test_support::both_databases;

both_databases!(
    a_paid_order_is_confirmed_with_its_total_and_history,
    an_order_for_more_than_the_stock_is_cancelled_and_reserves_nothing,
    an_unknown_product_cancels_the_order,
    an_order_mixing_currencies_is_cancelled_currency_mismatch_with_its_stock_untouched,
    an_order_paid_in_another_currency_than_its_products_is_cancelled_and_one_in_theirs_confirmed,
    a_declined_payment_releases_the_stock_and_cancels_the_order,
    a_gateway_outage_delays_orders_which_confirm_after_recovery,
    an_order_waiting_past_the_maximum_is_cancelled_as_payment_unavailable,
    the_same_idempotency_key_makes_one_order,
    a_duplicated_order_event_reserves_and_charges_once,
    orders_placed_while_inventory_is_down_complete_when_it_returns,
    concurrent_orders_for_the_last_units_never_oversell,
    the_invariant_checker_reports_a_broken_stock_ledger,
);

async fn a_paid_order_is_confirmed_with_its_total_and_history(backend: DbBackend) {
    let sys = spawn_system(backend, Tune::default()).await;
    let price = sys.product("sku-001").await["unit_price_cents"].as_i64().unwrap();
    let before = sys.product("sku-001").await;

    let id = sys.place(json!([{"product_id": "sku-001", "quantity": 3}])).await;

    let order = sys.terminal(&id).await;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["total_cents"], price * 3);
    assert_eq!(order["currency"], "USD");
    let statuses: Vec<_> = order["history"].as_array().unwrap().iter().map(|h| h["status"].clone()).collect();
    assert_eq!(statuses, ["pending", "confirmed"]);
    let after = sys.product("sku-001").await;
    assert_eq!(after["available"], before["available"].as_i64().unwrap() - 3);
    assert_eq!(after["committed"], before["committed"].as_i64().unwrap() + 3);
    let charges = sys.charges(&id).await;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["idempotency_key"], id);
    sys.finish().await;
}

async fn an_order_for_more_than_the_stock_is_cancelled_and_reserves_nothing(backend: DbBackend) {
    let mut sys = spawn_system(backend, Tune::default()).await;
    sys.put_product("sku-short", 1, 500).await;
    let plenty_before = sys.product("sku-002").await;

    let id = sys
        .place(json!([{"product_id": "sku-002", "quantity": 1}, {"product_id": "sku-short", "quantity": 2}]))
        .await;

    let order = sys.terminal(&id).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["reason"], "out_of_stock");
    assert_eq!(sys.product("sku-002").await, plenty_before, "no line was reserved");
    assert_eq!(sys.product("sku-short").await["available"], 1);
    assert!(sys.charges(&id).await.is_empty());
    sys.finish().await;
}

async fn an_unknown_product_cancels_the_order(backend: DbBackend) {
    let sys = spawn_system(backend, Tune::default()).await;

    let id = sys.place(json!([{"product_id": "no-such-sku", "quantity": 1}])).await;

    let order = sys.terminal(&id).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["reason"], "unknown_product");
    sys.finish().await;
}

async fn an_order_mixing_currencies_is_cancelled_currency_mismatch_with_its_stock_untouched(
    backend: DbBackend,
) {
    let mut sys = spawn_system(backend, Tune::default()).await;
    sys.put_product_in("sku-eur", 5, 900, "EUR").await;
    let usd_before = sys.product("sku-001").await;

    let id = sys
        .place(json!([{"product_id": "sku-001", "quantity": 1}, {"product_id": "sku-eur", "quantity": 1}]))
        .await;

    let order = sys.terminal(&id).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["reason"], "currency_mismatch");
    assert_eq!(sys.product("sku-001").await, usd_before, "no line was reserved");
    assert_eq!(sys.product("sku-eur").await["available"], 5);
    assert!(sys.charges(&id).await.is_empty());
    sys.finish().await;
}

async fn an_order_paid_in_another_currency_than_its_products_is_cancelled_and_one_in_theirs_confirmed(
    backend: DbBackend,
) {
    let sys = spawn_system(backend, Tune::default()).await;
    let items = json!([{"product_id": "sku-001", "quantity": 1}]);

    let res = sys.post(json!({"customer_id": "c-eur", "items": items, "currency": "EUR"}), None).await;
    assert_eq!(res.status(), 202);
    let in_eur = res.json::<serde_json::Value>().await.unwrap()["order_id"].as_str().unwrap().to_owned();
    let res = sys.post(json!({"customer_id": "c-usd", "items": items, "currency": "USD"}), None).await;
    assert_eq!(res.status(), 202);
    let in_usd = res.json::<serde_json::Value>().await.unwrap()["order_id"].as_str().unwrap().to_owned();

    let order = sys.terminal(&in_eur).await;
    assert_eq!((&order["status"], &order["reason"]), (&json!("cancelled"), &json!("currency_mismatch")));
    let order = sys.terminal(&in_usd).await;
    assert_eq!((&order["status"], &order["currency"]), (&json!("confirmed"), &json!("USD")));
    sys.finish().await;
}

async fn a_declined_payment_releases_the_stock_and_cancels_the_order(backend: DbBackend) {
    let sys = spawn_system(backend, Tune::default()).await;
    sys.set_faults(json!({"decline_rate": 1.0})).await;
    let before = sys.product("sku-003").await;

    let id = sys.place(json!([{"product_id": "sku-003", "quantity": 2}])).await;

    let order = sys.terminal(&id).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["reason"], "payment_declined");
    let after = eventually(WAIT, "stock released", || async {
        let p = sys.product("sku-003").await;
        (p["reserved"] == 0).then_some(p)
    })
    .await
    .unwrap();
    assert_eq!(after, before);
    let charges = sys.charges(&id).await;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["status"], "declined");
    sys.finish().await;
}

async fn a_gateway_outage_delays_orders_which_confirm_after_recovery(backend: DbBackend) {
    let sys = spawn_system(backend, Tune::default()).await;
    sys.set_faults(json!({"outage": true})).await;

    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(sys.place(json!([{"product_id": format!("sku-00{}", i + 1), "quantity": 1}])).await);
    }
    // Several breaker cycles pass: the breaker opens, and twice more a probe finds the gateway
    // still down and opens it again. (The registry is the process's: nextest runs each test in a
    // process of its own, so these are this system's transitions.)
    let opened = || async {
        let text = sys.metrics(&sys.system.payment_url).await;
        metric(
            &text,
            "orderflow_breaker_transitions_total",
            &[("breaker", "payment_gateway"), ("to", "open")],
        )
    };
    eventually(WAIT, "three openings of the payment breaker", || async {
        (opened().await >= 3.0).then_some(())
    })
    .await
    .unwrap();
    // The orders wait instead of failing: no payment decided, nothing charged, nothing cancelled.
    let js = sys.nats.jetstream().await.unwrap();
    assert!(stream_messages(&js, "PAYMENTS").await.is_empty(), "no payment was decided");
    for id in &ids {
        assert_eq!(sys.order(id).await["status"], "pending");
        assert!(sys.charges(id).await.is_empty());
    }
    sys.set_faults(json!({"outage": false})).await;

    for id in &ids {
        assert_eq!(sys.terminal(id).await["status"], "confirmed");
        assert_eq!(sys.charges(id).await.len(), 1);
    }
    sys.finish().await;
}

async fn an_order_waiting_past_the_maximum_is_cancelled_as_payment_unavailable(backend: DbBackend) {
    let tune = Tune { payment_max_wait: Some(Duration::from_secs(2)), ..Tune::default() };
    let sys = spawn_system(backend, tune).await;
    sys.set_faults(json!({"outage": true})).await;
    let before = sys.product("sku-004").await;
    let started = Instant::now();

    let id = sys.place(json!([{"product_id": "sku-004", "quantity": 1}])).await;

    let order = sys.terminal(&id).await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["reason"], "payment_unavailable");
    let after = eventually(WAIT, "stock released", || async {
        let p = sys.product("sku-004").await;
        (p["reserved"] == 0).then_some(p)
    })
    .await
    .unwrap();
    assert_eq!(after, before);
    sys.finish().await;
}

async fn the_same_idempotency_key_makes_one_order(backend: DbBackend) {
    let sys = spawn_system(backend, Tune::default()).await;
    let body = json!({"customer_id": "c-9", "items": [{"product_id": "sku-005", "quantity": 1}]});

    let first = sys.post(body.clone(), Some("checkout-77")).await;
    let second = sys.post(body, Some("checkout-77")).await;
    let other = sys
        .post(
            json!({"customer_id": "c-9", "items": [{"product_id": "sku-005", "quantity": 2}]}),
            Some("checkout-77"),
        )
        .await;

    assert_eq!((first.status().as_u16(), second.status().as_u16(), other.status().as_u16()), (202, 202, 422));
    let a: serde_json::Value = first.json().await.unwrap();
    let b: serde_json::Value = second.json().await.unwrap();
    assert_eq!(a, b);
    let id = a["order_id"].as_str().unwrap();
    assert_eq!(sys.terminal(id).await["status"], "confirmed");
    assert_eq!(sys.charges(id).await.len(), 1);
    sys.finish().await;
}

async fn a_duplicated_order_event_reserves_and_charges_once(backend: DbBackend) {
    let sys = spawn_system(backend, Tune::default()).await;
    let id = sys.place(json!([{"product_id": "sku-006", "quantity": 2}])).await;
    let order = sys.terminal(&id).await;
    let product = sys.product("sku-006").await;

    // Re-publish the stored orders.created event under a new message id, past de-duplication.
    let js = sys.nats.jetstream().await.unwrap();
    let events_before =
        (stream_messages(&js, "INVENTORY").await.len(), stream_messages(&js, "PAYMENTS").await.len());
    let original = js.get_stream("ORDERS").await.unwrap().get_raw_message(1).await.unwrap();
    let mut headers = original.headers.clone();
    headers.insert("Nats-Msg-Id", "replayed-by-test");
    let again = js
        .publish_with_headers(original.subject.clone(), headers, original.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!again.duplicate, "stored a second time");
    // Inventory has handled the copy once its consumer acked it; then the system is quiet, so
    // anything that handling started has finished.
    wait_until_acked(&js, "ORDERS", "inventory-orders-created", again.sequence).await;
    invariants::wait_until_quiet(&sys.targets(), WAIT).await.unwrap();

    assert_eq!(sys.order(&id).await, order);
    assert_eq!(sys.product("sku-006").await, product);
    assert_eq!(sys.charges(&id).await.len(), 1);
    let events_after =
        (stream_messages(&js, "INVENTORY").await.len(), stream_messages(&js, "PAYMENTS").await.len());
    assert_eq!(events_after, events_before, "the copy caused no inventory or payment event");
    sys.finish().await;
}

async fn orders_placed_while_inventory_is_down_complete_when_it_returns(backend: DbBackend) {
    let mut sys = spawn_system(backend, Tune::default()).await;
    sys.system.stop_service("inventory-service").await.unwrap();

    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(sys.place(json!([{"product_id": format!("sku-0{:02}", i + 10), "quantity": 1}])).await);
    }
    // The order service has done all it can once the ten events wait in the stream for
    // inventory's consumer, which nothing reads while inventory is down.
    let waiting = eventually(WAIT, "the ten events waiting for inventory", || async {
        let info = sys.consumer_info("ORDERS", "inventory-orders-created").await;
        (info.num_pending == 10).then_some(info)
    })
    .await
    .unwrap();
    assert_eq!(waiting.num_ack_pending, 0, "no inventory instance holds one");
    for id in &ids {
        assert_eq!(sys.order(id).await["status"], "pending");
    }
    sys.system.start_inventory().await.unwrap();

    for id in &ids {
        assert_eq!(sys.terminal(id).await["status"], "confirmed");
    }
    sys.finish().await;
}

async fn concurrent_orders_for_the_last_units_never_oversell(backend: DbBackend) {
    let mut sys = spawn_system(backend, Tune::default()).await;
    sys.put_product("sku-last", 5, 100).await;

    let places = (0..30).map(|_| sys.place(json!([{"product_id": "sku-last", "quantity": 1}])));
    let ids = futures_util::future::join_all(places).await;

    let mut confirmed = 0;
    for id in &ids {
        let o = sys.terminal(id).await;
        if o["status"] == "confirmed" {
            confirmed += 1;
        } else {
            assert_eq!(o["reason"], "out_of_stock");
        }
    }
    assert_eq!(confirmed, 5);
    let p = sys.product("sku-last").await;
    assert_eq!(
        (p["available"].as_i64(), p["reserved"].as_i64(), p["committed"].as_i64()),
        (Some(0), Some(0), Some(5))
    );
    sys.finish().await;
}

async fn the_invariant_checker_reports_a_broken_stock_ledger(backend: DbBackend) {
    let sys = spawn_system(backend, Tune::default()).await;
    let id = sys.place(json!([{"product_id": "sku-007", "quantity": 1}])).await;
    sys.terminal(&id).await;
    assert!(sys.invariants().await.is_ok());

    // A handler that applied a commit twice would leave exactly this behind.
    let inv = sys.system.databases.iter().find(|d| d.service == "inventory").unwrap();
    let db = orderflow_platform::Db::open(&inv.url, &inv.schema).await.unwrap();
    sqlx::query("UPDATE products SET committed = committed + 1, available = available - 1 WHERE product_id = 'sku-007'")
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;

    let report = sys.invariants().await;
    assert!(report.violations.iter().any(|v| v.invariant == 2 && v.subject == "sku-007"), "{report:#?}");
    let mut system = sys.system;
    system.stop().await.unwrap();
}
