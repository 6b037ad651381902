use serde_json::{Value, json};

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

#[tokio::test]
async fn shutdown_cuts_injected_latency_short_and_the_server_stops() {
    orderflow_telemetry::init_for_tests();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let data_dir = tempfile::tempdir().unwrap();
    let config = gateway_sim::Config {
        faults: serde_json::from_value(json!({"latency_ms": 600_000})).unwrap(),
        data_dir: data_dir.path().to_path_buf(),
        ..gateway_sim::Config::default()
    };
    let server = tokio::spawn(gateway_sim::run(listener, config, shutdown.clone()));
    let client = reqwest::Client::new();
    let in_flight = tokio::spawn(
        client
            .post(format!("{url}/charges"))
            .header("Idempotency-Key", "k")
            .json(&charge_body("o", 1))
            .send(),
    );
    // Give the request time to reach the handler and start its injected sleep.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    shutdown.cancel();

    let finished = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(finished.expect("the server stops within the test's patience").unwrap().is_ok());
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK, "the in-flight request is answered");
}
