use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, charge_body, spawn_app};

#[tokio::test]
async fn faults_start_empty() {
    let app = spawn_app().await;

    let faults = app.get_json("/admin/faults").await;

    assert_eq!(faults, json!({"latency_ms": 0, "decline_rate": 0.0, "error_rate": 0.0, "outage": false}));
}

#[tokio::test]
async fn a_partial_put_merges_into_the_current_faults() {
    let app = spawn_app().await;
    app.put_faults(json!({"latency_ms": 5, "decline_rate": 0.25})).await;

    let response = app.put_faults(json!({"outage": true})).await;

    assert_eq!(response.status(), StatusCode::OK);
    let expected = json!({"latency_ms": 5, "decline_rate": 0.25, "error_rate": 0.0, "outage": true});
    assert_eq!(response.json::<Value>().await.unwrap(), expected);
    assert_eq!(app.get_json("/admin/faults").await, expected);
}

#[tokio::test]
async fn invalid_faults_are_rejected_with_422_and_change_nothing() {
    let app = spawn_app().await;
    let invalid = [
        json!({"decline_rate": 1.5}),
        json!({"error_rate": -0.1}),
        json!({"latency_ms": -1}),
        json!({"outage": "yes"}),
        json!({"outage": true, "unknown": 1}),
    ];

    for patch in invalid {
        let response = app.put_faults(patch.clone()).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    }

    assert_eq!(app.get_json("/admin/faults").await["outage"], false);
}

#[tokio::test]
async fn admin_charges_filters_by_order() {
    let app = spawn_app().await;
    app.charge("key-a1", &charge_body("order-a", 100)).await;
    app.charge("key-b1", &charge_body("order-b", 200)).await;
    app.charge("key-a2", &charge_body("order-a", 300)).await;

    let order_a = app.charges_of("order-a").await;
    let all = app.get_json("/admin/charges").await;

    let keys: Vec<&str> = order_a.iter().map(|c| c["idempotency_key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["key-a1", "key-a2"]);
    assert_eq!(all["charges"].as_array().unwrap().len(), 3);
    assert!(app.charges_of("order-unknown").await.is_empty());
}

#[tokio::test]
async fn the_admin_routes_need_the_admin_token_and_charges_do_not() {
    let app = spawn_app().await;
    let outage = json!({"outage": true});

    for request in [
        app.client.get(app.url("/admin/faults")),
        app.client.put(app.url("/admin/faults")).json(&outage),
        app.client.get(app.url("/admin/charges")),
        app.client.put(app.url("/admin/faults")).bearer_auth("gateway-test-admin-token-0124").json(&outage),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"orderflow\"");
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }

    assert_eq!(app.get_json("/admin/faults").await["outage"], false, "nothing changed");
    let charged = app.charge("k-1", &charge_body("o-1", 100)).await;
    assert_eq!(charged.status(), StatusCode::OK, "charging is not an admin route");
}

#[tokio::test]
async fn without_a_configured_token_the_admin_routes_stay_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_sim::Config {
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(orderflow_platform::http::Secret::new("")),
        ..gateway_sim::Config::default()
    };
    let app = crate::helpers::spawn_app_with(config).await;

    let response = app.client.get(app.url("/admin/faults")).bearer_auth("").send().await.unwrap();
    let body = assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(body["detail"].as_str().unwrap().contains("no admin token is configured"), "{body}");
}
