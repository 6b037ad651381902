//! `spawn_app`: the order service on the shared harness ([`TestService`], which has the HTTP
//! client, JetStream, the database, publishing, streams and `wait_until_quiet`), and the order
//! API's own calls.

use order_service::OrderService;
use orderflow_test_support::service::{TestService, WAIT};
use orderflow_test_support::{DbBackend, eventually};

/// The running order service.
pub struct TestApp(TestService<OrderService>);

impl std::ops::Deref for TestApp {
    type Target = TestService<OrderService>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

pub async fn spawn_app(backend: DbBackend) -> TestApp {
    TestApp(TestService::spawn(backend).await)
}

/// [`spawn_app`] with the settings changed by `configure`.
pub async fn spawn_app_with(
    backend: DbBackend,
    configure: impl FnOnce(&mut order_service::Settings),
) -> TestApp {
    TestApp(TestService::spawn_with(backend, configure).await)
}

impl TestApp {
    pub async fn post_order(&self, body: &serde_json::Value) -> reqwest::Response {
        self.http.post(self.url("/orders")).json(body).send().await.unwrap()
    }

    pub async fn get_order(&self, id: &str) -> reqwest::Response {
        self.get(&format!("/orders/{id}")).await
    }

    pub async fn order_json(&self, id: &str) -> serde_json::Value {
        self.get_order(id).await.json().await.unwrap()
    }

    /// Waits until the order has `status`.
    pub async fn wait_status(&self, id: &str, status: &str) -> serde_json::Value {
        eventually(WAIT, status, || async {
            let o = self.order_json(id).await;
            (o["status"] == status).then_some(o)
        })
        .await
        .unwrap()
    }
}

pub fn order_body() -> serde_json::Value {
    serde_json::json!({"customer_id": "c-1", "items": [{"product_id": "sku-001", "quantity": 2}]})
}
