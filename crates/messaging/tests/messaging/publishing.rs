//! Publishing when the connection a PubAck is due on goes away.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use futures_util::StreamExt;
use orderflow_messaging::{ConnectConfig, OutgoingMessage, Publisher, connect};
use orderflow_test_support::TestNats;

use crate::helpers::{WAIT, order_created, setup};

/// A PubAck due on a connection that drops (its server killed) can never come. It fails as a
/// broken pipe as soon as the client sees the connection go, not after `ACK_TIMEOUT`, and the
/// same publisher publishes again once a server is back.
#[tokio::test]
async fn a_puback_due_when_the_server_dies_fails_as_a_broken_pipe_and_publishing_resumes() {
    let mut env = setup().await;
    // A plain subscriber takes the message and never answers: its PubAck stays due.
    let silent = env.nats.client().await.unwrap();
    let mut taken = silent.subscribe("silent.subject").await.unwrap();
    // A round trip on the same connection: once the server answers it (no responders), it has
    // taken the subscription too (`flush` only writes it out).
    let _ = silent.request("silent.ready", "".into()).await;
    let msg = OutgoingMessage {
        subject: "silent.subject".into(),
        message_id: "silent-1".into(),
        payload: "{}".into(),
        correlation_id: None,
        traceparent: None,
    };
    let publisher = env.publisher.clone();
    let publish = tokio::spawn(async move { publisher.publish(&msg).await });
    tokio::time::timeout(WAIT, taken.next()).await.unwrap().unwrap();

    env.nats.kill();
    let err = tokio::time::timeout(WAIT, publish).await.unwrap().unwrap().unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::BrokenPipe, "{err}");

    env.nats.restart().unwrap();
    let event =
        orderflow_messaging::OutgoingMessage::from_envelope(&order_created("resumed"), false).unwrap();
    let ack =
        orderflow_test_support::eventually(Duration::from_secs(30), "a publish after the restart", || {
            let publisher = env.publisher.clone();
            let event = event.clone();
            async move { publisher.publish(&event).await.ok() }
        })
        .await
        .unwrap();
    assert_eq!(ack.stream, "ORDERS");
}

/// A server that answers "no responders" for the streams' subjects (here: one that has none,
/// standing for a restarted node that does not know yet where the streams live) is left: after
/// `NO_RESPONDERS_GRACE` of nothing else the client reconnects, to the other server it knows,
/// and the publish goes through there.
#[tokio::test]
async fn a_server_that_finds_no_responders_is_left_for_one_that_has_the_stream() {
    let env = setup().await; // its server has the streams
    let lost = TestNats::start().unwrap(); // JetStream, no streams
    let mut cfg = ConnectConfig::new(format!("{},{}", env.nats.url(), lost.url()), "orderflow/test");
    cfg.max_backoff = Duration::from_millis(200);
    let client = connect(&cfg).await.unwrap();
    // Start on the server without the streams (a reconnect leaves the one it was on).
    if client.server_info().port == env.nats.port() {
        client.force_reconnect().await.unwrap();
    }
    let lost_port = lost.port();
    orderflow_test_support::eventually(WAIT, "the client on the server without streams", || {
        let on = client.server_info().port;
        async move { (on == lost_port).then_some(()) }
    })
    .await
    .unwrap();

    let publisher = Publisher::new(async_nats::jetstream::new(client.clone()));
    let event = OutgoingMessage::from_envelope(&order_created("moved"), false).unwrap();
    let no_responders = AtomicUsize::new(0);
    let ack = orderflow_test_support::eventually(WAIT, "a publish that reaches the stream", || {
        let publisher = publisher.clone();
        let event = event.clone();
        let no_responders = &no_responders;
        async move {
            match publisher.publish(&event).await {
                Ok(ack) => Some(ack),
                // No responders until the client moves; the move itself may cut one off.
                Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                    no_responders.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => {
                    assert_eq!(e.kind(), PublishErrorKind::BrokenPipe, "{e}");
                    None
                }
            }
        }
    })
    .await
    .unwrap();

    assert_eq!(ack.stream, "ORDERS");
    assert!(no_responders.into_inner() > 0, "the first publishes must have found no responders");
    assert_eq!(client.server_info().port, env.nats.port());
}
