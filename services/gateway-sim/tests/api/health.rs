use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::handler::Handler;
use axum::http::{Request, StatusCode};
use gateway_sim::AppState;
use gateway_sim::routes::charges;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::helpers::{charge_body, spawn_app};

#[tokio::test]
async fn health_endpoints_answer_200() {
    let app = spawn_app().await;

    assert_eq!(app.get_json("/health/live").await, json!({"status": "live"}));
    assert_eq!(app.get_json("/health/ready").await, json!({"status": "ready"}));
}

#[tokio::test]
async fn metrics_count_charges_by_status() {
    let app = spawn_app().await;
    app.charge("key-1", &charge_body("order-1", 1)).await;
    app.put_faults(json!({"decline_rate": 1.0})).await;
    app.charge("key-2", &charge_body("order-2", 1)).await;
    app.charge("key-3", &charge_body("order-3", 1)).await;

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();

    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"orderflow_gateway_charges_total{service="gateway-sim",status="succeeded"} 1"#));
    assert!(text.contains(r#"orderflow_gateway_charges_total{service="gateway-sim",status="declined"} 2"#));
    assert!(text.contains(r#"orderflow_gateway_fault_decline_rate{service="gateway-sim"} 1"#));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;

    let document: Value = app.get_json("/openapi.json").await;

    assert_eq!(document["openapi"], "3.1.0");
    let mut paths: Vec<&str> = document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/admin/charges",
            "/admin/faults",
            "/charges",
            "/health/live",
            "/health/ready",
            "/metrics",
            "/openapi.json"
        ]
    );
    assert!(document["paths"]["/admin/faults"]["put"].is_object());
    assert!(document["paths"]["/charges"]["post"]["responses"]["503"].is_object());
}

/// A simulator that delays every charge by 600 s, with its ledger in `data_dir`.
fn long_latency(data_dir: &std::path::Path) -> gateway_sim::Config {
    gateway_sim::Config {
        faults: serde_json::from_value(json!({"latency_ms": 600_000})).unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..gateway_sim::Config::default()
    }
}

#[tokio::test]
async fn shutdown_cuts_an_injected_latency_that_is_already_running_short() {
    orderflow_telemetry::init_for_tests();
    let data_dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let state = AppState::open(&long_latency(data_dir.path()), shutdown.clone()).await.unwrap();
    let request = Request::post("/charges")
        .header("content-type", "application/json")
        .header("idempotency-key", "k")
        .body(Body::from(charge_body("o", 1).to_string()))
        .unwrap();
    let mut charge = std::pin::pin!(Handler::call(charges::create, request, state.clone()));
    // The body is already in memory, so one poll runs the handler up to its first real wait: a
    // pending handler is one sleeping in the injected latency (the ledger decides only after it).
    let first = std::future::poll_fn(|cx| Poll::Ready(charge.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the charge waits out the injected latency");
    assert!(state.charges(None).await.unwrap().is_empty(), "nothing is decided while it waits");

    shutdown.cancel();

    let response = tokio::time::timeout(Duration::from_secs(10), charge)
        .await
        .expect("the latency is cut short, not waited out");
    assert_eq!(response.status(), StatusCode::OK);
    let recorded = state.charges(Some("o")).await.unwrap();
    assert_eq!(recorded.len(), 1, "the request is answered, and its charge recorded");
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_is_answered_and_the_server_stops() {
    orderflow_telemetry::init_for_tests();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let data_dir = tempfile::tempdir().unwrap();
    let server = tokio::spawn(gateway_sim::run(listener, long_latency(data_dir.path()), shutdown.clone()));
    let body = charge_body("o", 1).to_string();
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /charges HTTP/1.1\r\nHost: {address}\r\nIdempotency-Key: k\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    // The server sends `100 Continue` only once the handler starts reading the body: the request
    // has reached the handler, whose next step is the injected latency.
    let interim = read_head(&mut connection).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    connection.write_all(body.as_bytes()).await.unwrap();

    shutdown.cancel();

    let finished = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(finished.expect("the server stops within the test's patience").unwrap().is_ok());
    let mut response = String::new();
    connection.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "the in-flight request is answered: {response}");
}

/// Reads one response head (up to the blank line) and nothing after it.
async fn read_head(connection: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = connection.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "the connection closed after {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
