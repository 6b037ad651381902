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

fn raw(subject: &str, id: &str, size: usize) -> OutgoingMessage {
    OutgoingMessage {
        subject: subject.into(),
        message_id: id.into(),
        payload: vec![b'x'; size].into(),
        correlation_id: None,
        traceparent: None,
    }
}

async fn stored(env: &crate::helpers::Env, stream: &str) -> u64 {
    env.js.get_stream(stream).await.unwrap().get_info().await.unwrap().state.messages
}

/// A message over the server's `max_payload` (256 KiB, set by orderflow's server configuration)
/// is refused by the client before anything is sent; one under it but over the event streams'
/// 128 KiB `max_msg_size` is refused by the stream. Both say so, and neither is stored.
#[tokio::test]
async fn an_oversize_event_is_refused_with_a_clear_error_and_nothing_is_stored() {
    let env = setup().await;
    assert_eq!(env.js.client().server_info().max_payload, orderflow_messaging::topology::MAX_PAYLOAD);

    let over_payload =
        env.publisher.publish(&raw("orders.created.v1", "big-1", 300 * 1024)).await.unwrap_err();
    let over_stream =
        env.publisher.publish(&raw("orders.created.v1", "big-2", 200 * 1024)).await.unwrap_err();
    let fine = env.publisher.publish(&raw("orders.created.v1", "ok-1", 100 * 1024)).await;

    assert_eq!(over_payload.kind(), PublishErrorKind::MaxPayloadExceeded, "{over_payload}");
    assert!(over_payload.is_too_large());
    assert!(over_payload.to_string().contains("262144"), "{over_payload}");
    assert!(over_stream.is_too_large(), "{over_stream:?}");
    assert!(fine.is_ok(), "{fine:?}");
    assert_eq!(stored(&env, "ORDERS").await, 1);
}

/// A stream at its byte limit refuses new messages (DiscardPolicy::New) and keeps every message
/// it has: the publisher gets an error (the outbox keeps the event and retries), nothing is
/// dropped. Provisioning brings a stream whose limits drifted back to the spec.
#[tokio::test]
async fn a_full_stream_refuses_new_messages_keeps_the_old_ones_and_provisioning_restores_its_limits() {
    let env = setup().await;
    let mut small = env.js.get_stream("DLQ").await.unwrap().get_info().await.unwrap().config;
    let limit = small.max_bytes;
    assert_eq!(small.discard, async_nats::jetstream::stream::DiscardPolicy::New);
    small.max_bytes = 64 * 1024;
    env.js.update_stream(small).await.unwrap();

    let mut refused = None;
    for i in 0..20 {
        if let Err(e) =
            env.publisher.publish(&raw("dlq.orders.created.v1", &format!("dead-{i}"), 10 * 1024)).await
        {
            refused = Some((i, e));
            break;
        }
    }
    let (accepted, error) = refused.expect("a 64 KiB stream takes fewer than twenty 10 KiB messages");
    let report =
        orderflow_messaging::topology::provision(&env.js, &crate::helpers::topology()).await.unwrap();

    assert!(accepted >= 5, "{accepted} accepted before: {error}");
    assert_eq!(stored(&env, "DLQ").await, accepted, "nothing old was dropped to make room");
    assert_eq!(report.updated, ["stream DLQ"]);
    let restored = env.js.get_stream("DLQ").await.unwrap().get_info().await.unwrap().config;
    assert_eq!(restored.max_bytes, limit);
    assert!(env.publisher.publish(&raw("dlq.orders.created.v1", "dead-after", 10 * 1024)).await.is_ok());
}
