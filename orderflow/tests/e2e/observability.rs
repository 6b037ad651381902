//! Metrics and health as an operator sees them.

use std::time::Duration;

use futures_util::StreamExt;
use orderflow::system::Tune;
use orderflow_test_support::{DbBackend, eventually};
use serde_json::json;

use crate::helpers::{WAIT, metric, spawn_system};
use orderflow_test_support::both_databases;

both_databases!(metrics_move_by_the_expected_amounts, readiness_follows_nats_down_and_back);

async fn metrics_move_by_the_expected_amounts(backend: DbBackend) {
    let mut sys = spawn_system(backend, Tune::default()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(sys.place(json!([{"product_id": "sku-001", "quantity": 1}])).await);
    }
    for id in &ids {
        sys.terminal(id).await;
    }
    // A redelivery: an inventory instance takes an order's event and dies without answering.
    sys.system.stop_service("inventory-service").await.unwrap();
    let late = sys.place(json!([{"product_id": "sku-002", "quantity": 1}])).await;
    let js = sys.nats.jetstream().await.unwrap();
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_stream("ORDERS").await.unwrap().get_consumer("inventory-orders-created").await.unwrap();
    // The 202 means committed, not yet published (the outbox relay publishes right after): wait
    // for the event instead of a no-wait fetch that races the relay.
    let mut batch =
        consumer.batch().max_messages(1).expires(Duration::from_secs(10)).messages().await.unwrap();
    let _taken = batch.next().await.unwrap().unwrap();
    sys.system.start_inventory().await.unwrap();
    assert_eq!(sys.terminal(&late).await["status"], "confirmed");
    // A dead letter: garbage on the orders subject.
    js.publish("orders.created.v1", "not json".into()).await.unwrap().await.unwrap();
    let url = format!("{}/metrics", sys.system.order_url);

    let text = eventually(WAIT, "the dead letter in the metrics", || async {
        let text = sys.http.get(&url).send().await.unwrap().text().await.unwrap();
        // Inventory and analytics both consume orders.created: each dead-letters its copy.
        (metric(&text, "orderflow_messages_dead_lettered_total", &[]) >= 2.0).then_some(text)
    })
    .await
    .unwrap();

    let order = [("service", "order-service")];
    assert_eq!(metric(&text, "orderflow_orders_accepted_total", &order), 4.0);
    assert_eq!(metric(&text, "orderflow_orders_total", &[("status", "confirmed")]), 4.0);
    assert_eq!(
        metric(
            &text,
            "orderflow_http_requests_total",
            &[("route", "/orders"), ("method", "POST"), ("status", "202")]
        ),
        4.0
    );
    assert_eq!(
        metric(
            &text,
            "orderflow_messages_published_total",
            &[("service", "order-service"), ("subject", "orders.created.v1")]
        ),
        4.0
    );
    assert_eq!(
        metric(
            &text,
            "orderflow_messages_consumed_total",
            &[("service", "inventory-service"), ("subject", "orders.created.v1")]
        ),
        4.0,
        "four orders handled (the garbage never reaches a handler)"
    );
    assert_eq!(
        metric(&text, "orderflow_messages_redelivered_total", &[("subject", "orders.created.v1")]),
        1.0
    );
    for service in ["inventory-service", "analytics-service"] {
        let labels = [("service", service), ("subject", "orders.created.v1"), ("reason", "malformed")];
        assert_eq!(metric(&text, "orderflow_messages_dead_lettered_total", &labels), 1.0, "{service}");
        let labels = [("service", service), ("kind", "undecodable")];
        assert_eq!(metric(&text, "orderflow_messages_failed_total", &labels), 1.0, "{service}");
    }
    assert!(
        metric(&text, "orderflow_handler_duration_seconds_count", &[("subject", "payments.completed.v1")])
            >= 4.0
    );
    assert!(metric(&text, "orderflow_http_request_duration_seconds_count", &[("route", "/orders")]) >= 4.0);
    assert_eq!(
        metric(&text, "orderflow_gateway_charges_total", &[("status", "succeeded")]),
        0.0,
        "scraped on the gateway only"
    );
    let gateway = sys
        .http
        .get(format!("{}/metrics", sys.system.gateway_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&gateway, "orderflow_gateway_charges_total", &[("status", "succeeded")]), 4.0);
    let with_gauges = eventually(WAIT, "the gauges", || async {
        let text = sys.http.get(&url).send().await.unwrap().text().await.unwrap();
        (text.contains("orderflow_outbox_backlog") && text.contains("orderflow_consumer_pending"))
            .then_some(text)
    })
    .await
    .unwrap();
    assert!(with_gauges.contains("orderflow_breaker_state{"));
    // One dead letter each from inventory and analytics (both consume orders.created).
    sys.finish_with_dlq(2).await;
}

async fn readiness_follows_nats_down_and_back(backend: DbBackend) {
    let mut sys = spawn_system(backend, Tune::default()).await;
    let ready = |url: String| {
        let http = sys.http.clone();
        async move {
            http.get(format!("{url}/health/ready")).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    };
    let order_url = sys.system.order_url.clone();
    // Consumers finish provisioning in the background after start-up; readiness says when.
    eventually(WAIT, "ready after start-up", || async {
        (ready(order_url.clone()).await == 200).then_some(())
    })
    .await
    .unwrap();

    sys.nats.kill();
    let body = eventually(WAIT, "503 while NATS is down", || async {
        let res = sys.http.get(format!("{order_url}/health/ready")).send().await.unwrap();
        (res.status() == 503).then_some(res)
    })
    .await
    .unwrap();
    let body: serde_json::Value = body.json().await.unwrap();
    assert_ne!(body["checks"]["nats"], "ok");
    assert_eq!(
        sys.http.get(format!("{order_url}/health/live")).send().await.unwrap().status(),
        200,
        "still alive"
    );
    sys.nats.restart().unwrap();

    eventually(WAIT, "200 after NATS returns", || async {
        (ready(order_url.clone()).await == 200).then_some(())
    })
    .await
    .unwrap();
    let id = sys.place(json!([{"product_id": "sku-001", "quantity": 1}])).await;
    assert_eq!(sys.terminal(&id).await["status"], "confirmed");
    // Every service is back, not only the order service's front door.
    for url in [&sys.system.inventory_url, &sys.system.payment_url] {
        sys.wait_until_ready(url).await;
    }
    // `finish` waits for the whole system to be quiet before it checks the invariants.
    sys.finish().await;
}

/// Collects log lines in memory.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_across_the_three_services_and_its_logs_share_its_correlation_id() {
    let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let logs = Logs::default();
    assert!(orderflow_telemetry::init_for_tests_capturing(spans.clone(), logs.clone()));
    let sys = spawn_system(DbBackend::Sqlite, Tune::default()).await;

    let res = sys
        .http
        .post(format!("{}/orders", sys.system.order_url))
        .header("X-Correlation-ID", "trace-me-42")
        .json(&json!({"customer_id": "c-1", "items": [{"product_id": "sku-001", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    let id = res.json::<serde_json::Value>().await.unwrap()["order_id"].as_str().unwrap().to_owned();
    assert_eq!(sys.terminal(&id).await["status"], "confirmed");
    let wanted = [
        "POST /orders",
        "orders.created.v1 publish",
        "orders.created.v1 process",
        "inventory.reserved.v1 publish",
        "inventory.reserved.v1 process",
        "payments.completed.v1 publish",
        "payments.completed.v1 process",
        "orders.confirmed.v1 publish",
    ];
    let finished = eventually(Duration::from_secs(20), "every span of the order", || async {
        let all = spans.get_finished_spans().unwrap();
        wanted.iter().all(|w| all.iter().any(|s| s.name == *w)).then_some(all)
    })
    .await
    .unwrap_or_else(|e| {
        let names: Vec<_> = spans.get_finished_spans().unwrap().iter().map(|s| s.name.to_string()).collect();
        panic!("{e}: finished spans {names:?}")
    });

    let of_order: Vec<_> = finished.iter().filter(|s| wanted.contains(&s.name.as_ref())).collect();
    let trace_ids: std::collections::HashSet<_> =
        of_order.iter().map(|s| s.span_context.trace_id()).collect();
    assert_eq!(
        trace_ids.len(),
        1,
        "one trace: {:?}",
        of_order.iter().map(|s| (&s.name, s.span_context.trace_id())).collect::<Vec<_>>()
    );
    let services: std::collections::HashSet<String> = of_order
        .iter()
        .flat_map(|s| s.attributes.iter())
        .filter(|kv| kv.key.as_str() == "service")
        .map(|kv| kv.value.to_string())
        .collect();
    for svc in ["order-service", "inventory-service", "payment-service"] {
        assert!(services.contains(svc), "{svc} missing from {services:?}");
    }
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let about_order: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["order_id"] == id.as_str() || l["span"]["order_id"] == id.as_str())
        .collect();
    assert!(about_order.len() >= 3, "log lines about the order: {about_order:#?}");
    let logged_by: std::collections::HashSet<&str> =
        about_order.iter().filter_map(|l| l["span"]["service"].as_str()).collect();
    for svc in ["order-service", "inventory-service", "payment-service"] {
        assert!(logged_by.contains(svc), "no log line about the order from {svc}: {about_order:#?}");
    }
    let exported = format!("{}", trace_ids.iter().next().unwrap());
    for line in &about_order {
        let corr = line["correlation_id"].as_str().or(line["span"]["correlation_id"].as_str());
        assert_eq!(corr, Some("trace-me-42"), "{line}");
        assert!(line["span"]["service"].is_string() || line["service"].is_string(), "{line}");
        if line["span"]["order_id"] == id.as_str() {
            assert_eq!(line["span"]["trace_id"], exported.as_str(), "the exported trace: {line}");
        }
    }
    sys.finish().await;
}

/// The trace id of a valid `traceparent` (panics on anything else).
fn trace_id_of(traceparent: Option<&str>, what: &str) -> String {
    let tp = traceparent.unwrap_or_else(|| panic!("{what}: no traceparent"));
    let cx =
        orderflow_telemetry::trace::TraceContext::parse(tp).unwrap_or_else(|e| panic!("{what}: {tp}: {e}"));
    cx.trace_id().to_string()
}

/// The one trace id of every event about `order_id` in the three services' streams and of its
/// gateway charge; checks that each event's envelope and NATS header carry the same valid
/// `traceparent` and that the whole saga is there.
async fn trace_of_order(sys: &crate::helpers::TestSystem, order_id: &str) -> String {
    let js = sys.nats.jetstream().await.unwrap();
    let mut subjects = Vec::new();
    let mut trace_ids = std::collections::BTreeSet::new();
    for stream in ["ORDERS", "INVENTORY", "PAYMENTS"] {
        for m in orderflow_test_support::stream_messages(&js, stream).await {
            let envelope: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            if envelope["subject"] != order_id {
                continue;
            }
            let in_envelope = envelope["traceparent"].as_str();
            let in_header = m.headers.get("traceparent").map(|v| v.as_str());
            assert_eq!(in_header, in_envelope, "{}: header and envelope", m.subject);
            trace_ids.insert(trace_id_of(in_envelope, &m.subject));
            subjects.push(m.subject.to_string());
        }
    }
    for wanted in
        ["orders.created.v1", "inventory.reserved.v1", "payments.completed.v1", "orders.confirmed.v1"]
    {
        assert!(subjects.iter().any(|s| s == wanted), "{wanted} missing from {subjects:?}");
    }
    let charges = sys.charges(order_id).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    trace_ids.insert(trace_id_of(charges[0]["traceparent"].as_str(), "the gateway charge"));
    assert_eq!(trace_ids.len(), 1, "one trace for the order's events and charge: {trace_ids:?}");
    trace_ids.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_otlp_every_event_of_an_order_and_its_gateway_call_carry_one_trace() {
    // Arrange: no OpenTelemetry layer (`spawn_system` logs for tests only, nothing is exported).
    let sys = spawn_system(DbBackend::Sqlite, Tune::default()).await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    // Act: one order without trace context, one sent in the caller's trace.
    let fresh = sys.place(json!([{"product_id": "sku-001", "quantity": 1}])).await;
    let continued = sys.place_in_trace(json!([{"product_id": "sku-002", "quantity": 1}]), caller).await;

    // Assert
    assert_eq!(sys.terminal(&fresh).await["status"], "confirmed");
    assert_eq!(sys.terminal(&continued).await["status"], "confirmed");
    let fresh_trace = trace_of_order(&sys, &fresh).await;
    assert_eq!(trace_of_order(&sys, &continued).await, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(fresh_trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    sys.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_the_nats_micro_protocol_and_inventory_answers_stock_requests() {
    let sys = spawn_system(DbBackend::Sqlite, Tune::default()).await;
    let client = sys.nats.client().await.unwrap();

    // PING has one answer per service instance.
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    client.publish_with_reply("$SRV.PING", inbox, "".into()).await.unwrap();
    let mut names = std::collections::BTreeSet::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(700), replies.next()).await {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        names.insert(v["name"].as_str().unwrap().to_owned());
    }
    let info: serde_json::Value = serde_json::from_slice(
        &client.request("$SRV.INFO.inventory-service", "".into()).await.unwrap().payload,
    )
    .unwrap();
    let stock = client.request("orderflow.inventory.stock", "sku-001".into()).await.unwrap();
    let missing = client.request("orderflow.inventory.stock", "no-such-sku".into()).await.unwrap();
    // Consumers finish provisioning in the background after start-up; the status endpoint says
    // when the service is ready.
    let status: serde_json::Value = eventually(WAIT, "a ready status", || async {
        let reply = client.request("orderflow.order.status", "".into()).await.ok()?;
        let v: serde_json::Value = serde_json::from_slice(&reply.payload).ok()?;
        (v["ready"] == true).then_some(v)
    })
    .await
    .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(
        &client.request("$SRV.STATS.inventory-service", "".into()).await.unwrap().payload,
    )
    .unwrap();

    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["analytics-service", "inventory-service", "order-service", "payment-service"]
    );
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let endpoints: Vec<_> = info["endpoints"].as_array().unwrap().iter().map(|e| e["name"].clone()).collect();
    assert!(endpoints.contains(&json!("stock")) && endpoints.contains(&json!("status")), "{info}");
    let product: serde_json::Value = serde_json::from_slice(&stock.payload).unwrap();
    assert_eq!(product["product_id"], "sku-001");
    assert!(product["available"].as_i64().unwrap() > 0);
    let error =
        missing.headers.as_ref().and_then(|h| h.get("Nats-Service-Error").map(|v| v.as_str().to_owned()));
    assert!(error.unwrap_or_default().contains("no product"), "an unknown product is an error reply");
    assert_eq!(status["ready"], true);
    let stock_stats =
        stats["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "stock").unwrap().clone();
    assert_eq!(stock_stats["num_requests"], 2);
    assert_eq!(stock_stats["num_errors"], 1);
    sys.finish().await;
}
