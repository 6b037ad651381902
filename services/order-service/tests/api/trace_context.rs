//! Trace context without OpenTelemetry export (no OTLP endpoint in tests): every order is traced
//! from its `POST /orders` on — a caller's valid `traceparent` continued, otherwise a new trace —
//! into its events' envelope and NATS header, the events it causes, and its log lines.

use std::io;
use std::sync::{Arc, Mutex};

use orderflow_events::{ChargeId, CorrelationId, Currency, Envelope, OrderId, PaymentCompleted, PaymentId};
use orderflow_telemetry::trace::TraceContext;
use orderflow_test_support::service::{TEST_SOURCE, WAIT};
use orderflow_test_support::{DbBackend, both_databases, eventually};
use serde_json::Value;

use crate::helpers::{TestApp, order_body, spawn_app};

both_databases!(
    an_order_placed_without_a_traceparent_starts_a_trace_that_its_event_carries,
    an_order_placed_with_a_traceparent_continues_the_callers_trace,
    a_malformed_traceparent_starts_a_new_trace_instead,
    the_log_lines_of_an_order_carry_its_trace_id_from_the_request_to_the_event_that_finishes_it,
);

/// A caller's `traceparent` (the W3C specification's example).
const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const CALLER_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// Places an order, with `traceparent` when given; returns its id.
async fn place(app: &TestApp, traceparent: Option<&str>) -> String {
    let mut req = app.http.post(app.url("/orders")).json(&order_body());
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    body["order_id"].as_str().unwrap().to_owned()
}

/// The order's `orders.created` event: its envelope's `traceparent`, which must be a valid
/// version-00 one and equal to the message's `traceparent` header.
async fn created_traceparent(app: &TestApp, order_id: &str) -> TraceContext {
    let events = app.wait_events_about("ORDERS", order_id, 1).await;
    let event = &events[0];
    assert_eq!(event.subject, "orders.created.v1");
    let in_envelope =
        event.envelope["traceparent"].as_str().unwrap_or_else(|| panic!("{:?}", event.envelope));
    assert_eq!(event.traceparent_header.as_deref(), Some(in_envelope), "header and envelope agree");
    assert_eq!(in_envelope.len(), 55, "{in_envelope}");
    assert!(in_envelope.starts_with("00-") && in_envelope.ends_with("-01"), "{in_envelope}");
    TraceContext::parse(in_envelope).unwrap_or_else(|e| panic!("{in_envelope}: {e}"))
}

async fn an_order_placed_without_a_traceparent_starts_a_trace_that_its_event_carries(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let first = place(&app, None).await;
    let second = place(&app, None).await;

    let first = created_traceparent(&app, &first).await;
    let second = created_traceparent(&app, &second).await;
    assert_ne!(first.trace_id(), second.trace_id(), "one trace per order");
}

async fn an_order_placed_with_a_traceparent_continues_the_callers_trace(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let id = place(&app, Some(CALLER)).await;

    assert_eq!(created_traceparent(&app, &id).await.trace_id().to_string(), CALLER_TRACE_ID);
}

async fn a_malformed_traceparent_starts_a_new_trace_instead(backend: DbBackend) {
    let app = spawn_app(backend).await;

    let id = place(&app, Some("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01")).await;

    let trace_id = created_traceparent(&app, &id).await.trace_id().to_string();
    assert_ne!(trace_id.to_ascii_lowercase(), CALLER_TRACE_ID);
}

/// Collects log lines in memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// The first line whose message is `message` and whose span is about `order_id`.
    fn line(&self, message: &str, order_id: &str) -> Option<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == message && l["span"]["order_id"] == order_id)
    }
}

async fn the_log_lines_of_an_order_carry_its_trace_id_from_the_request_to_the_event_that_finishes_it(
    backend: DbBackend,
) {
    // Arrange: the production JSON log lines, and no OpenTelemetry layer.
    let logs = Logs::default();
    let writer = logs.clone();
    assert!(orderflow_telemetry::init_for_tests_logging(move || writer.clone()), "logs captured here");
    let app = spawn_app(backend).await;
    let id = place(&app, Some(CALLER)).await;
    let created = created_traceparent(&app, &id).await;
    let order_id = OrderId::parse(&id).unwrap();
    // The payment service answers in the trace of the event it handled.
    let paid = PaymentCompleted {
        order_id,
        payment_id: PaymentId::new(),
        charge_id: ChargeId::parse("ch_1").unwrap(),
        amount_cents: 2598,
        currency: Currency::usd(),
    };
    let paid = Envelope::new(TEST_SOURCE, CorrelationId::generate(), paid)
        .with_traceparent(Some(created.to_string()));

    // Act
    app.publish(&paid).await;

    // Assert
    app.wait_status(&id, "confirmed").await;
    let finished = eventually(WAIT, "the order finished line", || async { logs.line("order finished", &id) })
        .await
        .unwrap();
    let accepted = logs.line("order accepted", &id).unwrap();
    assert_eq!(accepted["span"]["trace_id"], CALLER_TRACE_ID, "{accepted}");
    assert_eq!(accepted["span"]["service"], "order-service", "{accepted}");
    assert_eq!(finished["span"]["trace_id"], CALLER_TRACE_ID, "{finished}");
    let confirmed = app.wait_events_about("ORDERS", &id, 2).await;
    let confirmed = confirmed.iter().find(|e| e.subject == "orders.confirmed.v1").unwrap();
    let tp = confirmed.envelope["traceparent"].as_str().unwrap();
    assert_eq!(confirmed.traceparent_header.as_deref(), Some(tp));
    assert_eq!(TraceContext::parse(tp).unwrap().trace_id().to_string(), CALLER_TRACE_ID);
}
