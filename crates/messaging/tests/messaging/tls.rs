//! TLS to a real nats-server: trusted, untrusted and missing CAs, client certificates, and a
//! client that requires TLS from a server without it.

use std::time::{Duration, Instant};

use orderflow_messaging::connect::ConnectError;
use orderflow_messaging::{ConnectConfig, NatsTls, connect};
use orderflow_test_support::{TestNats, test_certs};

/// A config that would retry for 10 s: a certificate error must come back long before.
fn config(nats: &TestNats, tls: NatsTls) -> ConnectConfig {
    let mut cfg = ConnectConfig::new(nats.url(), "orderflow/test").with_tls(tls);
    cfg.initial_timeout = Some(Duration::from_secs(10));
    cfg
}

fn trusting_the_test_ca(nats: &TestNats) -> NatsTls {
    NatsTls { ca_file: Some(nats.certs().unwrap().ca.clone()), ..NatsTls::default() }
}

#[tokio::test]
async fn a_client_trusting_the_servers_ca_connects_over_tls() {
    let nats = TestNats::start_with_tls(false).unwrap();

    let client = connect(&config(&nats, trusting_the_test_ca(&nats))).await.unwrap();

    assert!(client.server_info().tls_required);
    let mut sub = client.subscribe("tls.test").await.unwrap();
    client.publish("tls.test", "over TLS".into()).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut sub)).await;
    assert_eq!(msg.unwrap().unwrap().payload.as_ref(), b"over TLS");
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_at_once_naming_the_unknown_authority_and_nats_ca() {
    let nats = TestNats::start_with_tls(false).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_ca = test_certs(other.path()).unwrap().ca;
    let started = Instant::now();

    let result = connect(&config(&nats, NatsTls { ca_file: Some(other_ca), ..NatsTls::default() })).await;

    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(text.starts_with(&format!("TLS handshake with {} failed", nats.url())), "{text}");
    assert!(text.contains("certificate signed by an unknown authority"), "{text}");
    assert!(text.contains("NATS_CA"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_client_without_tls_settings_is_refused_by_a_server_that_requires_tls() {
    let nats = TestNats::start_with_tls(false).unwrap();

    let result = connect(&config(&nats, NatsTls::default())).await;

    let err = result.unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("set NATS_CA"), "{err}");
}

#[tokio::test]
async fn a_server_that_verifies_clients_accepts_only_a_client_certificate_from_its_ca() {
    let nats = TestNats::start_with_tls(true).unwrap();
    let certs = nats.certs().unwrap().clone();

    let without = connect(&config(&nats, trusting_the_test_ca(&nats))).await;
    let with = connect(&config(
        &nats,
        NatsTls {
            cert_file: Some(certs.client.clone()),
            key_file: Some(certs.client_key.clone()),
            ..trusting_the_test_ca(&nats)
        },
    ))
    .await;

    let err = without.unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("nats_cert"), "{err}");
    let client = with.unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn a_client_certificate_without_its_key_is_refused_before_connecting() {
    let nats = TestNats::start_with_tls(true).unwrap();
    let certs = nats.certs().unwrap().clone();

    let result =
        connect(&config(&nats, NatsTls { cert_file: Some(certs.client), ..trusting_the_test_ca(&nats) }))
            .await;

    assert!(matches!(result, Err(ConnectError::IncompleteClientCertificate)), "{result:?}");
}

#[tokio::test]
async fn a_client_that_requires_tls_refuses_a_server_without_it() {
    let nats = TestNats::start().unwrap();
    let mut cfg = config(&nats, NatsTls { required: true, ..NatsTls::default() });
    cfg.initial_timeout = Some(Duration::from_secs(2));

    let result = connect(&cfg).await;

    assert!(result.is_err(), "connected in plain text although TLS was required");
}
