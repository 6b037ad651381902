//! NATS identities against a real nats-server with auth on (`TestNats::start_secured`, the same
//! `auth.conf` `orderflow up` generates): each service identity may publish its own events and
//! drive its own consumers, and the server refuses everything else.

use std::time::Duration;

use async_nats::jetstream;
use orderflow_messaging::connect::ConnectError;
use orderflow_messaging::{ConnectConfig, Topology, connect, identity, topology::provision};
use orderflow_test_support::TestNats;

fn config(nats: &TestNats, who: &str) -> ConnectConfig {
    let mut cfg = ConnectConfig::new(nats.url(), format!("orderflow/test-{who}"))
        .with_creds(Some(nats.creds(who)))
        .as_identity(who);
    cfg.request_timeout = Duration::from_secs(2);
    cfg
}

async fn js_as(nats: &TestNats, who: &str) -> jetstream::Context {
    jetstream::new(connect(&config(nats, who)).await.unwrap())
}

/// A secured server with the deployment provisioned by the admin, and the admin's context.
async fn provisioned() -> (TestNats, jetstream::Context) {
    orderflow_telemetry::init_for_tests();
    let nats = TestNats::start_secured().unwrap();
    let admin = js_as(&nats, identity::ADMIN).await;
    provision(&admin, &Topology::deployment(1)).await.unwrap();
    (nats, admin)
}

async fn messages(admin: &jetstream::Context, stream: &str) -> u64 {
    admin.get_stream(stream).await.unwrap().info().await.unwrap().state.messages
}

#[tokio::test]
async fn the_order_identity_publishes_its_own_events_but_the_server_refuses_a_payment_event() {
    let (nats, admin) = provisioned().await;
    let order = js_as(&nats, "order").await;

    order.publish("orders.created.v1", "{}".into()).await.unwrap().await.expect("its own event is stored");
    let forged = order.publish("payments.completed.v1", "{}".into()).await.unwrap().await;

    assert!(forged.is_err(), "a forged payments.completed.v1 got a PubAck: {forged:?}");
    assert_eq!(messages(&admin, "ORDERS").await, 1);
    assert_eq!(messages(&admin, "PAYMENTS").await, 0, "the forged payment was stored");
}

#[tokio::test]
async fn a_service_identity_cannot_delete_or_purge_a_stream_or_create_a_consumer() {
    let (nats, admin) = provisioned().await;
    let payment = js_as(&nats, "payment").await;
    payment.publish("payments.completed.v1", "{}".into()).await.unwrap().await.unwrap();

    assert!(payment.delete_stream("ORDERS").await.is_err(), "payment deleted ORDERS");
    let stream = payment.get_stream_no_info("PAYMENTS").await.unwrap();
    assert!(stream.purge().await.is_err(), "payment purged its own stream");
    let created = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("payment-snoop".into()),
            ..Default::default()
        })
        .await;
    assert!(created.is_err(), "payment created a consumer");
    assert!(stream.get_info().await.is_ok(), "stream info (the fill gauges) stays allowed");

    assert_eq!(messages(&admin, "ORDERS").await, 0);
    assert!(admin.get_stream("ORDERS").await.is_ok(), "ORDERS is gone");
    assert_eq!(messages(&admin, "PAYMENTS").await, 1, "the purge went through");
}

#[tokio::test]
async fn a_service_drives_its_own_consumers_but_not_another_services() {
    let (nats, admin) = provisioned().await;
    admin.publish("inventory.reserved.v1", "{}".into()).await.unwrap().await.unwrap();
    let inventory = js_as(&nats, "inventory").await;
    let payment = js_as(&nats, "payment").await;

    // Inventory may read the backlog of its events' consumer (info), but pulling from it, or
    // acking for it, the server refuses: the message stays for payment.
    let theirs: jetstream::consumer::PullConsumer =
        inventory.get_consumer_from_stream("payment-inventory-reserved", "INVENTORY").await.unwrap();
    let stolen = match theirs.fetch().max_messages(1).expires(Duration::from_millis(500)).messages().await {
        Ok(mut batch) => futures_util::StreamExt::next(&mut batch).await.and_then(Result::ok),
        Err(_) => None,
    };
    assert!(stolen.is_none(), "inventory pulled payment's message");
    let own: jetstream::consumer::PullConsumer =
        payment.get_consumer_from_stream("payment-inventory-reserved", "INVENTORY").await.unwrap();
    let mut batch = own.fetch().max_messages(1).expires(Duration::from_secs(2)).messages().await.unwrap();
    let msg = futures_util::StreamExt::next(&mut batch).await.expect("the reserved event").unwrap();
    msg.ack().await.unwrap();
    let stream = admin.get_stream_no_info("INVENTORY").await.unwrap();
    orderflow_test_support::eventually(Duration::from_secs(10), "payment's ack to go through", || async {
        let info = stream.consumer_info("payment-inventory-reserved").await.ok()?;
        (info.num_ack_pending == 0 && info.num_pending == 0).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_service_cannot_listen_to_another_services_events_or_replies() {
    let (nats, _admin) = provisioned().await;
    let spy = connect(&config(&nats, "inventory")).await.unwrap();
    let admin = connect(&config(&nats, identity::ADMIN)).await.unwrap();
    let mut events = spy.subscribe("payments.>").await.unwrap();
    let mut replies = spy.subscribe("_INBOX_payment.>").await.unwrap();
    spy.flush().await.unwrap();

    admin.publish("payments.completed.v1", "x".into()).await.unwrap();
    admin.publish("_INBOX_payment.abc", "x".into()).await.unwrap();
    admin.flush().await.unwrap();

    let heard = tokio::time::timeout(Duration::from_millis(500), async {
        tokio::select! {
            m = futures_util::StreamExt::next(&mut events) => m,
            m = futures_util::StreamExt::next(&mut replies) => m,
        }
    })
    .await;
    assert!(!matches!(heard, Ok(Some(_))), "inventory received {heard:?}");
}

#[tokio::test]
async fn a_client_without_credentials_or_with_an_unknown_key_is_refused_at_once() {
    let nats = TestNats::start_secured().unwrap();
    let started = std::time::Instant::now();

    let anonymous = connect(&ConnectConfig::new(nats.url(), "orderflow/anonymous")).await;
    assert!(matches!(anonymous, Err(ConnectError::NotAuthorized { .. })), "{anonymous:?}");

    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger.nk");
    identity::IdentityKey::generate("order").write(&stranger).unwrap();
    let unknown =
        connect(&ConnectConfig::new(nats.url(), "orderflow/stranger").with_creds(Some(stranger))).await;
    let err = unknown.expect_err("an unknown key was let in");
    assert!(matches!(err, ConnectError::NotAuthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("NATS_CREDS"), "the error says what to check: {err}");
    assert!(started.elapsed() < Duration::from_secs(10), "refusals are not retried for a minute");

    let missing =
        connect(&ConnectConfig::new(nats.url(), "x").with_creds(Some(dir.path().join("none.nk")))).await;
    assert!(matches!(missing, Err(ConnectError::Credentials { .. })), "{missing:?}");
}

#[tokio::test]
async fn a_service_on_its_own_identity_waits_for_the_admin_to_provision_then_consumes() {
    use orderflow_events::{EventKind, OrderCreated};
    use orderflow_messaging::{
        ConsumerRuntime, ConsumerSpec, ConsumerState, Delivery, Publisher, RuntimeConfig,
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    orderflow_telemetry::init_for_tests();
    let nats = TestNats::start_secured().unwrap();
    let inventory = js_as(&nats, "inventory").await;
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let config = RuntimeConfig {
        provision: false,
        fetch_expires: Duration::from_millis(500),
        retry_max: Duration::from_millis(300),
        ..RuntimeConfig::default()
    };
    let handle = ConsumerRuntime::new(
        inventory,
        ConsumerSpec::for_event("inventory", EventKind::OrdersCreated),
        move |_: Delivery<OrderCreated>| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
    )
    .with_config(config)
    .spawn(stop.clone());

    // No topology yet, and this identity may not create it: it waits, saying who must.
    let waiting =
        orderflow_test_support::eventually(Duration::from_secs(20), "a recovering consumer", || async {
            match handle.state() {
                ConsumerState::Recovering { error } => Some(error),
                _ => None,
            }
        })
        .await
        .unwrap();
    assert!(waiting.contains("orderflow nats provision"), "{waiting}");

    let admin = js_as(&nats, identity::ADMIN).await;
    provision(&admin, &Topology::deployment(1)).await.unwrap();
    let order = Publisher::new(js_as(&nats, "order").await);
    let event =
        orderflow_messaging::OutgoingMessage::from_envelope(&crate::helpers::order_created("c-bind"), false)
            .unwrap();
    order.publish(&event).await.unwrap();

    orderflow_test_support::eventually(Duration::from_secs(30), "the order handled", || async {
        (handled.load(Ordering::SeqCst) == 1 && handle.state() == ConsumerState::Running).then_some(())
    })
    .await
    .unwrap();
    stop.cancel();
    handle.join().await;
}
