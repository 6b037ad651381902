use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, charge_body, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_charge_succeeds_and_is_recorded() {
    let app = spawn_app().await;

    let response = app.charge("key-1", &charge_body("order-1", 1999)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "succeeded");
    let charge_id = body["charge_id"].as_str().unwrap();
    assert!(charge_id.starts_with("ch_"));
    let charges = app.charges_of("order-1").await;
    assert_eq!(charges.len(), 1);
    let charge = &charges[0];
    assert_eq!(charge["charge_id"], charge_id);
    assert_eq!(charge["order_id"], "order-1");
    assert_eq!(charge["amount_cents"], 1999);
    assert_eq!(charge["currency"], "USD");
    assert_eq!(charge["status"], "succeeded");
    assert_eq!(charge["idempotency_key"], "key-1");
    let created_at = charge["created_at"].as_str().unwrap();
    time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339).unwrap();
}

#[tokio::test]
async fn the_same_key_returns_the_same_charge_without_creating_another() {
    let app = spawn_app().await;
    let body = charge_body("order-1", 500);
    let first: Value = app.charge("key-1", &body).await.json().await.unwrap();

    let replay = app.charge("key-1", &body).await;

    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let second: Value = replay.json().await.unwrap();
    assert_eq!(second, first);
    assert_eq!(app.charges_of("order-1").await.len(), 1);
}

#[tokio::test]
async fn a_key_past_its_ttl_is_a_new_charge_and_the_old_charge_stays_in_the_ledger() {
    // A one-second TTL stands for the default 24 hours.
    let app = spawn_app_with(gateway_sim::Config {
        seed: Some(42),
        idempotency_key_ttl_secs: 1,
        ..gateway_sim::Config::default()
    })
    .await;
    let body = charge_body("order-1", 500);
    let first: Value = app.charge("key-1", &body).await.json().await.unwrap();
    let replay: Value = app.charge("key-1", &body).await.json().await.unwrap();

    // Time has to pass for a key to expire.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = app.charge("key-1", &body).await;

    assert_eq!(replay, first, "inside its TTL the key replays the charge");
    assert_eq!(after.status(), StatusCode::OK);
    assert!(after.headers().get("idempotent-replayed").is_none());
    let second: Value = after.json().await.unwrap();
    assert_ne!(second["charge_id"], first["charge_id"]);
    let ids: Vec<Value> = app.charges_of("order-1").await.iter().map(|c| c["charge_id"].clone()).collect();
    assert_eq!(ids, [first["charge_id"].clone(), second["charge_id"].clone()]);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_rejected_with_422() {
    let app = spawn_app().await;
    app.charge("key-1", &charge_body("order-1", 500)).await;

    let response = app.charge("key-1", &charge_body("order-1", 501)).await;

    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused").await;
    assert_eq!(app.charges_of("order-1").await.len(), 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_charge() {
    let app = spawn_app().await;
    let body = charge_body("order-1", 500);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = app.post_charge("key-1", &body);
        requests.spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() });
    }

    let responses = requests.join_all().await;

    assert!(responses.windows(2).all(|pair| pair[0] == pair[1]), "{responses:?}");
    assert_eq!(app.charges_of("order-1").await.len(), 1);
}

#[tokio::test]
async fn a_missing_idempotency_key_is_rejected_with_422() {
    let app = spawn_app().await;

    let response =
        app.client.post(app.url("/charges")).json(&charge_body("order-1", 500)).send().await.unwrap();

    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid-idempotency-key").await;
    assert!(app.charges_of("order-1").await.is_empty());
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_rejected_with_422() {
    let app = spawn_app().await;

    let response = app.charge(&"k".repeat(256), &charge_body("order-1", 500)).await;

    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid-idempotency-key").await;
}

#[tokio::test]
async fn a_decline_rate_of_one_declines_and_records_the_decline() {
    let app = spawn_app().await;
    app.put_faults(json!({"decline_rate": 1.0})).await;

    let response = app.charge("key-1", &charge_body("order-1", 500)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "declined");
    let charges = app.charges_of("order-1").await;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0]["status"], "declined");
}

#[tokio::test]
async fn an_error_rate_of_one_answers_500_and_records_nothing() {
    let app = spawn_app().await;
    app.put_faults(json!({"error_rate": 1.0})).await;

    let response = app.charge("key-1", &charge_body("order-1", 500)).await;

    assert_problem(response, StatusCode::INTERNAL_SERVER_ERROR, "injected-error").await;
    assert!(app.charges_of("order-1").await.is_empty());
    app.put_faults(json!({"error_rate": 0.0})).await;
    let retry = app.charge("key-1", &charge_body("order-1", 500)).await;
    assert_eq!(retry.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_outage_answers_503_and_the_same_key_succeeds_once_it_is_over() {
    let app = spawn_app().await;
    app.put_faults(json!({"outage": true})).await;

    let response = app.charge("key-1", &charge_body("order-1", 500)).await;

    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "outage").await;
    assert!(app.charges_of("order-1").await.is_empty());
    app.put_faults(json!({"outage": false})).await;
    let retry = app.charge("key-1", &charge_body("order-1", 500)).await;
    assert_eq!(retry.status(), StatusCode::OK);
    let body: Value = retry.json().await.unwrap();
    assert_eq!(body["status"], "succeeded");
    assert_eq!(app.charges_of("order-1").await.len(), 1);
}

#[tokio::test]
async fn a_known_key_is_replayed_even_during_an_outage() {
    let app = spawn_app().await;
    let body = charge_body("order-1", 500);
    let first: Value = app.charge("key-1", &body).await.json().await.unwrap();
    app.put_faults(json!({"outage": true, "error_rate": 1.0})).await;

    let replay = app.charge("key-1", &body).await;

    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
}

#[tokio::test]
async fn latency_is_applied_to_new_charges_and_replays() {
    let app = spawn_app().await;
    let body = charge_body("order-1", 500);
    app.put_faults(json!({"latency_ms": 200})).await;

    for _ in 0..2 {
        let started = Instant::now();
        let response = app.charge("key-1", &body).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
    }
}

#[tokio::test]
async fn charges_and_their_keys_survive_a_restart() {
    // Arrange: a charge, then the simulator stops.
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_sim::Config {
        seed: Some(1),
        data_dir: dir.path().to_path_buf(),
        ..gateway_sim::Config::default()
    };
    let body = charge_body("order-1", 700);
    let first: Value = {
        let app = spawn_app_with(config.clone()).await;
        app.charge("key-1", &body).await.json().await.unwrap()
    };

    // Act: a new simulator on the same data directory gets the same request again.
    let app = spawn_app_with(config).await;
    let replay = app.charge("key-1", &body).await;

    // Assert: the same charge, replayed, and still the only one in the ledger.
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    let charges = app.charges_of("order-1").await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["charge_id"], first["charge_id"]);
}

#[tokio::test]
async fn a_new_charge_keeps_the_callers_traceparent_and_a_malformed_one_is_ignored() {
    // Arrange
    let app = spawn_app().await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = charge_body("order-1", 100);

    // Act
    let first = app.post_charge("key-1", &traced).header("traceparent", caller).send().await.unwrap();
    let replay = app
        .post_charge("key-1", &traced)
        .header("traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
        .send()
        .await
        .unwrap();
    let malformed = app
        .post_charge("key-2", &charge_body("order-2", 100))
        .header("traceparent", "00-abc-def-01")
        .send()
        .await
        .unwrap();
    let untraced = app.charge("key-3", &charge_body("order-3", 100)).await;

    // Assert: a replay is the charge as first recorded, in its first trace.
    for response in [first, replay, malformed, untraced] {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let charges = app.charges_of("order-1").await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["traceparent"], caller);
    assert_eq!(app.charges_of("order-2").await[0]["traceparent"], Value::Null);
    assert_eq!(app.charges_of("order-3").await[0]["traceparent"], Value::Null);
}
