use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use order_service::{Application, Settings};
use orderflow_events::{CorrelationId, Envelope, Event};
use orderflow_messaging::{OutgoingMessage, Publisher};
use orderflow_platform::{Db, OutboxRelay, SqlError};
use orderflow_test_support::{DbBackend, TestDb, TestNats, eventually};
use tokio_util::sync::CancellationToken;

/// The order service's consumers (standard and express lanes).
pub const CONSUMERS: [(&str, &str); 6] = [
    ("INVENTORY", "order-inventory-rejected"),
    ("INVENTORY", "order-inventory-rejected-express"),
    ("PAYMENTS", "order-payments-completed"),
    ("PAYMENTS", "order-payments-completed-express"),
    ("PAYMENTS", "order-payments-failed"),
    ("PAYMENTS", "order-payments-failed-express"),
];

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub js: jetstream::Context,
    /// The service's database (shared pool), for outbox checks.
    pub db: Db,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub _nats: TestNats,
    pub _db: TestDb,
}

pub async fn spawn_app(backend: DbBackend) -> TestApp {
    orderflow_telemetry::init_for_tests();
    let nats = TestNats::start().unwrap();
    let db = TestDb::new(backend).unwrap();
    let (database_url, db_schema) = db.for_service("order");
    let mut settings = Settings::default();
    settings.common = settings.common.placed(nats.url(), database_url, db_schema);
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let service_db = app.db().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let js = nats.jetstream().await.unwrap();
    TestApp { base, http: reqwest::Client::new(), js, db: service_db, shutdown, task, _nats: nats, _db: db }
}

impl TestApp {
    pub async fn post_order(&self, body: &serde_json::Value) -> reqwest::Response {
        self.http.post(format!("{}/orders", self.base)).json(body).send().await.unwrap()
    }

    pub async fn get_order(&self, id: &str) -> reqwest::Response {
        self.http.get(format!("{}/orders/{id}", self.base)).send().await.unwrap()
    }

    pub async fn order_json(&self, id: &str) -> serde_json::Value {
        self.get_order(id).await.json().await.unwrap()
    }

    /// Waits until the order has `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> serde_json::Value {
        eventually(Duration::from_secs(30), status, || async {
            let o = self.order_json(id).await;
            (o["status"] == status).then_some(o)
        })
        .await
        .unwrap()
    }

    /// Messages stored on `subject`.
    pub async fn stream_messages(
        &self,
        stream: &str,
        subject: &str,
    ) -> Vec<jetstream::message::StreamMessage> {
        let all = orderflow_test_support::stream_messages(&self.js, stream).await;
        all.into_iter().filter(|m| m.subject.as_str() == subject).collect()
    }

    /// Waits for `n` messages on `subject`.
    pub async fn wait_messages(
        &self,
        stream: &str,
        subject: &str,
        n: usize,
    ) -> Vec<jetstream::message::StreamMessage> {
        eventually(Duration::from_secs(30), subject, || async {
            let m = self.stream_messages(stream, subject).await;
            (m.len() >= n).then_some(m)
        })
        .await
        .unwrap()
    }

    /// Waits until every order consumer has handled everything published so far and the outbox
    /// is empty: after this, no further event can appear without new input.
    pub async fn wait_until_quiet(&self) {
        let db = &self.db;
        let outbox_empty = || async { OutboxRelay::backlog(db).await.is_ok_and(|b| b.unsent == 0) };
        orderflow_test_support::wait_until_quiet(&self.js, &CONSUMERS, outbox_empty).await;
    }

    /// Rows in one of the service's tables (`orders`, `outbox`, …), sent or not.
    pub async fn rows_in(&self, table: &'static str) -> i64 {
        self.db
            .read::<_, SqlError, _>(move |tx| {
                Box::pin(
                    async move { tx.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[]).await?.int(0) },
                )
            })
            .await
            .unwrap()
    }

    /// The JetStream view of one order consumer.
    pub async fn consumer_info(&self, stream: &str, durable: &str) -> consumer::Info {
        self.js.get_stream(stream).await.unwrap().consumer_info(durable).await.unwrap()
    }

    /// Publishes an event as another service would.
    pub async fn publish<T: Event>(&self, data: T) -> Envelope<T> {
        let env = Envelope::new("orderflow/test", CorrelationId::parse("test-corr").unwrap(), data);
        let msg = OutgoingMessage::from_envelope(&env, false).unwrap();
        Publisher::new(self.js.clone()).publish(&msg).await.unwrap();
        env
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("stopped in time").unwrap()
    }
}

pub fn order_body() -> serde_json::Value {
    serde_json::json!({"customer_id": "c-1", "items": [{"product_id": "sku-001", "quantity": 2}]})
}
