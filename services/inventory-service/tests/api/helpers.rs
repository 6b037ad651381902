//! `spawn_app` and the helpers every test uses: HTTP calls, publishing events, reading the
//! INVENTORY and DLQ streams, waiting for the service to be quiet.

use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage};
use inventory_service::{Application, Settings};
use orderflow_events::{
    CorrelationId, CustomerId, Envelope, Event, OrderCreated, OrderId, OrderItem, Priority, ProductId,
    Quantity,
};
use orderflow_messaging::{OutgoingMessage, Publisher};
use orderflow_platform::{Db, OutboxRelay};
use orderflow_test_support::{DbBackend, TestDb, TestNats, eventually};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen well within a second.
pub const WAIT: Duration = Duration::from_secs(30);

/// The inventory consumers (standard and express lanes).
pub const CONSUMERS: [(&str, &str); 6] = [
    ("ORDERS", "inventory-orders-created"),
    ("ORDERS", "inventory-orders-created-express"),
    ("PAYMENTS", "inventory-payments-completed"),
    ("PAYMENTS", "inventory-payments-completed-express"),
    ("PAYMENTS", "inventory-payments-failed"),
    ("PAYMENTS", "inventory-payments-failed-express"),
];

/// The running service and what a test needs around it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// JetStream on a client of the test's own.
    pub js: jetstream::Context,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Cancels the service.
    pub shutdown: CancellationToken,
    /// The service task; `None` once joined.
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    /// The service's database (shared pool), for outbox checks.
    pub db: Db,
    /// `(database_url, schema)` of the service's database, to reopen it after a stop.
    pub database: (String, String),
    publisher: Publisher,
    _nats: TestNats,
    _db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a nats-server, a fresh database of `backend` and the service on a free port.
pub async fn spawn_app(backend: DbBackend) -> TestApp {
    orderflow_telemetry::init_for_tests();
    let nats = TestNats::start().expect("starting nats-server");
    let test_db = TestDb::new(backend).expect("creating a test database");
    let (database_url, db_schema) = test_db.for_service("inventory");
    let mut settings = Settings::default();
    settings.common = settings.common.placed(nats.url(), database_url.clone(), db_schema.clone());
    settings.common.shutdown_timeout_secs = 10;
    let app = Application::build(settings).await.expect("building the application");
    let address = format!("http://127.0.0.1:{}", app.port());
    let db = app.db().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let js = nats.jetstream().await.expect("connecting the test client");
    TestApp {
        address,
        publisher: Publisher::new(js.clone()),
        js,
        http: reqwest::Client::new(),
        shutdown,
        server: Some(server),
        db,
        database: (database_url, db_schema),
        _nats: nats,
        _db: test_db,
    }
}

/// An event as read back from a stream.
#[derive(Debug, Clone)]
pub struct Received {
    /// The subject it was published on.
    pub subject: String,
    /// The envelope.
    pub envelope: Value,
    /// Its `X-Correlation-ID` header.
    pub correlation_header: Option<String>,
    /// Its `Orderflow-Dlq-Reason` header, on dead letters.
    pub dlq_reason: Option<String>,
}

impl Received {
    fn from_stream(m: StreamMessage) -> Self {
        let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
        Self {
            subject: m.subject.to_string(),
            envelope: serde_json::from_slice(&m.payload).unwrap_or(Value::Null),
            correlation_header: header("X-Correlation-ID"),
            dlq_reason: header("Orderflow-Dlq-Reason"),
        }
    }

    /// `data`.
    pub fn data(&self) -> &Value {
        &self.envelope["data"]
    }
}

impl TestApp {
    /// `PUT /inventory/{id}` with a JSON body.
    pub async fn put_product(&self, id: &str, body: Value) -> reqwest::Response {
        self.http.put(format!("{}/inventory/{id}", self.address)).json(&body).send().await.unwrap()
    }

    /// Creates a USD product and asserts 200.
    pub async fn stock(&self, id: &str, available: i64, unit_price_cents: i64) {
        let res =
            self.put_product(id, json!({"available": available, "unit_price_cents": unit_price_cents})).await;
        assert_eq!(res.status(), 200, "stocking {id}: {}", res.text().await.unwrap_or_default());
    }

    /// `GET` a path.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.address)).send().await.unwrap()
    }

    /// `GET /inventory/{id}`, asserting 200.
    pub async fn product(&self, id: &str) -> Value {
        let res = self.get(&format!("/inventory/{id}")).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// `(available, reserved, committed)` of a product.
    pub async fn stock_of(&self, id: &str) -> (i64, i64, i64) {
        let p = self.product(id).await;
        let n = |k: &str| p[k].as_i64().unwrap();
        (n("available"), n("reserved"), n("committed"))
    }

    /// Publishes an event on its standard or express subject.
    pub async fn publish<T: Event>(&self, envelope: &Envelope<T>, express: bool) {
        let msg = OutgoingMessage::from_envelope(envelope, express).unwrap();
        self.publisher.publish(&msg).await.unwrap();
    }

    /// Publishes the same envelope bytes under another `Nats-Msg-Id`, so JetStream stores it
    /// again (as a re-sent event after the duplicate window would be).
    pub async fn publish_with_msg_id<T: Event>(&self, envelope: &Envelope<T>, msg_id: &str) {
        let mut msg = OutgoingMessage::from_envelope(envelope, false).unwrap();
        msg.message_id = msg_id.to_owned();
        self.publisher.publish(&msg).await.unwrap();
    }

    /// Publishes many events at once (pipelined).
    pub async fn publish_all<T: Event>(&self, envelopes: &[Envelope<T>]) {
        let msgs: Vec<_> =
            envelopes.iter().map(|e| OutgoingMessage::from_envelope(e, false).unwrap()).collect();
        for r in self.publisher.publish_all(&msgs).await {
            r.unwrap();
        }
    }

    async fn stream_messages(&self, name: &str) -> Vec<Received> {
        let all = orderflow_test_support::stream_messages(&self.js, name).await;
        all.into_iter().map(Received::from_stream).collect()
    }

    /// Every event the service published about `order_id`.
    pub async fn events_for(&self, order_id: OrderId) -> Vec<Received> {
        let id = order_id.to_string();
        self.stream_messages("INVENTORY").await.into_iter().filter(|r| r.envelope["subject"] == id).collect()
    }

    /// Waits until the service has published at least `n` events about `order_id`.
    pub async fn wait_for_events(&self, order_id: OrderId, n: usize) -> Vec<Received> {
        eventually(WAIT, &format!("{n} inventory event(s) for order {order_id}"), || async {
            let events = self.events_for(order_id).await;
            (events.len() >= n).then_some(events)
        })
        .await
        .unwrap()
    }

    /// Every dead letter.
    pub async fn dead_letters(&self) -> Vec<Received> {
        self.stream_messages("DLQ").await
    }

    /// Waits until every inventory consumer has handled everything published so far and the
    /// outbox is empty: after this, no further event can appear without new input.
    pub async fn wait_until_quiet(&self) {
        let db = &self.db;
        let outbox_empty = || async { OutboxRelay::backlog(db).await.is_ok_and(|b| b.unsent == 0) };
        orderflow_test_support::wait_until_quiet(&self.js, &CONSUMERS, outbox_empty).await;
    }

    /// Opens the service's database anew (the service's own pool is closed when it stops).
    pub async fn reopen_db(&self) -> Db {
        let (url, schema) = &self.database;
        Db::connect(url, schema, &inventory_service::startup::MIGRATIONS).await.unwrap()
    }

    /// Waits until `/health/ready` answers 200.
    pub async fn wait_until_ready(&self) {
        eventually(WAIT, "readiness", || async {
            (self.get("/health/ready").await.status() == 200).then_some(())
        })
        .await
        .unwrap();
    }

    /// Cancels the service and waits for `run_until_stopped` to return.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.take().expect("already stopped").await.expect("the service task panicked")
    }
}

/// An `orders.created` envelope for `items` (`(product id, quantity)`).
pub fn order_created(items: &[(&str, u32)], priority: Priority) -> Envelope<OrderCreated> {
    let items = items
        .iter()
        .map(|&(p, q)| OrderItem {
            product_id: ProductId::parse(p).unwrap(),
            quantity: Quantity::parse(q).unwrap(),
        })
        .collect();
    let data =
        OrderCreated::new(OrderId::new(), CustomerId::parse("customer-1").unwrap(), items, priority).unwrap();
    Envelope::new("orderflow/order-service", CorrelationId::generate(), data)
        .with_traceparent(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned()))
}
