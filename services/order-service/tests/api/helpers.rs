use std::time::Duration;

use async_nats::jetstream;
use order_service::{Application, Settings};
use orderflow_events::{CorrelationId, Envelope, Event};
use orderflow_messaging::{OutgoingMessage, Publisher};
use orderflow_test_support::{DbBackend, TestDb, TestNats, eventually};
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub js: jetstream::Context,
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
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let js = nats.jetstream().await.unwrap();
    TestApp { base, http: reqwest::Client::new(), js, shutdown, task, _nats: nats, _db: db }
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
