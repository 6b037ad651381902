//! Publishing when the connection a PubAck is due on goes away.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use futures_util::StreamExt;
use orderflow_messaging::OutgoingMessage;

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
    silent.flush().await.unwrap();
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
