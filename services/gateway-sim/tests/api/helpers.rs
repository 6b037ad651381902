//! `spawn_app()`: the real router on 127.0.0.1:0, stopped when the `TestApp` is dropped.

use gateway_sim::Config;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The admin token the simulator under test is given.
pub const ADMIN_TOKEN: &str = "gateway-test-admin-token-0123";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    _shutdown: DropGuard,
    _data_dir: Option<tempfile::TempDir>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Config { seed: Some(42), ..Config::default() }).await
}

/// The simulator with `config`; a `data_dir` left at its default becomes a fresh temp dir.
pub async fn spawn_app_with(mut config: Config) -> TestApp {
    orderflow_telemetry::init_for_tests();
    let data_dir = (config.data_dir == Config::default().data_dir).then(|| tempfile::tempdir().unwrap());
    if let Some(dir) = &data_dir {
        config.data_dir = dir.path().to_path_buf();
    }
    config.admin_token.get_or_insert_with(|| orderflow_platform::http::Secret::new(ADMIN_TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(gateway_sim::run(listener, config, shutdown.clone()));
    let app = TestApp {
        address,
        client: orderflow_platform::tls::http_client(),
        _shutdown: shutdown.drop_guard(),
        _data_dir: data_dir,
    };
    app.wait_until_ready().await;
    app
}

/// A valid charge body.
pub fn charge_body(order_id: &str, amount_cents: u64) -> Value {
    json!({"order_id": order_id, "amount_cents": amount_cents, "currency": "USD"})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Until `/health/ready` answers 200 (the ledger is open).
    pub async fn wait_until_ready(&self) {
        for _ in 0..200 {
            if self.client.get(self.url("/health/ready")).send().await.is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("gateway-sim at {} was not ready within 5 s", self.address);
    }

    pub fn post_charge(&self, key: &str, body: &Value) -> RequestBuilder {
        self.client.post(self.url("/charges")).header("Idempotency-Key", key).json(body)
    }

    pub async fn charge(&self, key: &str, body: &Value) -> Response {
        self.post_charge(key, body).send().await.unwrap()
    }

    pub async fn put_faults(&self, patch: Value) -> Response {
        self.client.put(self.url("/admin/faults")).bearer_auth(ADMIN_TOKEN).json(&patch).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn charges_of(&self, order_id: &str) -> Vec<Value> {
        let body = self.get_json(&format!("/admin/charges?order_id={order_id}")).await;
        body["charges"].as_array().unwrap().clone()
    }
}

/// Asserts an RFC 9457 problem with this status and `type` slug; returns the body.
pub async fn assert_problem(response: Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], format!("https://orderflow.dev/problems/{slug}"));
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    body
}
