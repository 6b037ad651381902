//! `orderflow up` as a user runs it: the embedded nats-server with auth on, every service on its
//! own NATS identity, JetStream provisioned by the admin identity. The whole saga — a confirmed
//! order, a cancelled one, a message dead-lettered — must work within the identities'
//! permissions, and a client without credentials must be refused.

use std::time::Duration;

use orderflow::invariants;
use orderflow::system::{System, UpOptions};
use orderflow_messaging::connect::ConnectError;
use orderflow_messaging::{ConnectConfig, identity};
use orderflow_test_support::eventually;
use serde_json::{Value, json};

use crate::helpers::WAIT;

#[tokio::test]
async fn up_runs_the_saga_with_auth_on_and_refuses_a_client_without_credentials() {
    orderflow_telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let system = System::start(UpOptions {
        nats_url: None,
        ..UpOptions::ephemeral(dir.path().to_path_buf(), String::new())
    })
    .await
    .unwrap();
    let creds = system.nats_creds.clone().expect("up generates credentials for its server");
    assert!(system.banner().contains(&identity::seed_file(&creds, identity::ADMIN).display().to_string()));

    let anonymous =
        orderflow_messaging::connect(&ConnectConfig::new(&system.nats_url, "orderflow/anonymous")).await;
    assert!(matches!(anonymous, Err(ConnectError::NotAuthorized { .. })), "{anonymous:?}");

    let http = reqwest::Client::new();
    let place = |product: &'static str, quantity: u32| {
        let http = http.clone();
        let url = format!("{}/orders", system.order_url);
        async move {
            let res = http
                .post(url)
                .json(
                    &json!({"customer_id": "c-1", "items": [{"product_id": product, "quantity": quantity}]}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
            res.json::<Value>().await.unwrap()["order_id"].as_str().unwrap().to_owned()
        }
    };
    let terminal = |id: String| {
        let http = http.clone();
        let url = format!("{}/orders/{id}", system.order_url);
        async move {
            eventually(WAIT, "a terminal order", || async {
                let o: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                (o["status"] == "confirmed" || o["status"] == "cancelled").then_some(o)
            })
            .await
            .unwrap()
        }
    };
    let confirmed = terminal(place("sku-001", 1).await).await;
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    let cancelled = terminal(place("sku-002", 1_000_000).await).await;
    assert_eq!(
        (cancelled["status"].as_str(), cancelled["reason"].as_str()),
        (Some("cancelled"), Some("out_of_stock"))
    );

    // A malformed event (published by the admin: no service may publish it) reaches the DLQ
    // through inventory's and analytics' own identities.
    let admin = async_nats::ConnectOptions::new();
    let admin =
        orderflow_messaging::connect::with_credentials(admin, &identity::seed_file(&creds, identity::ADMIN))
            .unwrap()
            .connect(system.nats_url.as_str())
            .await
            .unwrap();
    let js = async_nats::jetstream::new(admin);
    js.publish("orders.created.v1", "{not json".into()).await.unwrap().await.unwrap();
    let targets = invariants::Targets {
        databases: system.databases.clone(),
        gateway_url: system.gateway_url.clone(),
        admin_token: system.admin_token.clone(),
        nats_url: system.nats_url.clone(),
        nats_creds: system.admin_creds(),
        nats_tls: Default::default(),
    };
    eventually(Duration::from_secs(30), "the malformed event dead-lettered", || async {
        let reasons = invariants::dlq_reasons(&targets).await.ok()?;
        (reasons.get("malformed").copied().unwrap_or(0) >= 2).then_some(())
    })
    .await
    .unwrap();
    invariants::wait_until_quiet(&targets, WAIT).await.unwrap();

    let mut system = system;
    system.stop().await.unwrap();
    // Every service stayed within its permissions all along: the server logs each refusal.
    let log = std::fs::read_to_string(dir.path().join("nats").join("nats-server.log")).unwrap();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("Violation")).collect();
    assert!(refused.is_empty(), "the server refused:\n{}", refused.join("\n"));
}
