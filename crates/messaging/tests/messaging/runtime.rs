//! The JetStream contract against a real nats-server: publishing, provisioning, every branch
//! of the consumer runtime's ack / nak / dead-letter decision, and the max-deliveries consumer
//! that dead-letters what the server gave up on, even while no instance was running.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, stream::Stream};
use futures_util::StreamExt;
use orderflow_events::{EventKind, OrderCreated};
use orderflow_messaging::{
    ConnectConfig, ConsumerHandle, ConsumerRuntime, ConsumerSpec, ConsumerState, Delivery, Handler,
    HandlerError, MaxDeliveriesRuntime, OutgoingMessage, RuntimeConfig, Topology, connect, connect_observed,
    dlq_admin, headers, topology::provision,
};
use orderflow_test_support::{TestNats, eventually, wait_until_acked};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::helpers::{Env, WAIT, ms, order_created, publish_raw, schedule, setup};

fn spec() -> ConsumerSpec {
    ConsumerSpec::for_event("inventory", EventKind::OrdersCreated).with_schedule(schedule())
}

fn runtime_config() -> RuntimeConfig {
    RuntimeConfig { fetch_expires: ms(500), retry_max: ms(500), ..RuntimeConfig::default() }
}

async fn publish_orders(env: &Env, n: usize) -> Vec<String> {
    let msgs: Vec<_> =
        (0..n).map(|_| OutgoingMessage::from_envelope(&order_created("corr-123"), false).unwrap()).collect();
    for r in env.publisher.publish_all(&msgs).await {
        r.unwrap();
    }
    msgs.into_iter().map(|m| m.message_id).collect()
}

/// Every delivery a handler saw: event id → delivery counts and times.
#[derive(Default)]
struct Seen(Mutex<HashMap<String, Vec<(i64, Instant)>>>);

impl Seen {
    fn record<T>(&self, d: &Delivery<T>) -> usize {
        let mut m = self.0.lock().unwrap();
        let v = m.entry(d.envelope.id.to_string()).or_default();
        v.push((d.delivered, Instant::now()));
        v.len()
    }
    fn deliveries(&self, id: &str) -> Vec<(i64, Instant)> {
        self.0.lock().unwrap().get(id).cloned().unwrap_or_default()
    }
    fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn total(&self) -> usize {
        self.0.lock().unwrap().values().map(Vec::len).sum()
    }
}

async fn stream(env: &Env, name: &str) -> Stream {
    env.js.get_stream(name).await.unwrap()
}

async fn dlq_messages(env: &Env) -> Vec<jetstream::message::StreamMessage> {
    orderflow_test_support::stream_messages(&env.js, "DLQ").await
}

async fn wait_dlq(env: &Env, n: usize) -> Vec<jetstream::message::StreamMessage> {
    eventually(WAIT, "dead letters", || async {
        let m = dlq_messages(env).await;
        (m.len() >= n).then_some(m)
    })
    .await
    .unwrap()
}

async fn consumer_info(env: &Env) -> jetstream::consumer::Info {
    stream(env, "ORDERS").await.consumer_info("inventory-orders-created").await.unwrap()
}

/// Waits until the runtime's consumer has acked or termed every message up to stream sequence
/// `seq`: after that, none of them can be delivered again.
async fn wait_until_settled(env: &Env, seq: u64) -> jetstream::consumer::Info {
    wait_until_acked(&env.js, "ORDERS", "inventory-orders-created", seq).await
}

fn header<'a>(m: &'a jetstream::message::StreamMessage, name: &str) -> &'a str {
    m.headers.get(name).map(|v| v.as_str()).unwrap_or_else(|| panic!("missing header {name}"))
}

#[tokio::test]
async fn publishing_the_same_event_id_twice_stores_one_message() {
    let env = setup().await;
    let msg = OutgoingMessage::from_envelope(&order_created("corr-123"), false).unwrap();

    let first = env.publisher.publish(&msg).await.unwrap();
    let second = env.publisher.publish(&msg).await.unwrap();

    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(stream(&env, "ORDERS").await.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn an_acked_message_is_not_redelivered() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Ok(())
        }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());

    let ids = publish_orders(&env, 3).await;
    eventually(WAIT, "three deliveries", || async { (seen.distinct() == 3).then_some(()) }).await.unwrap();
    // The server holds all three acks: nothing is left that it could redeliver.
    let info = wait_until_settled(&env, 3).await;

    assert_eq!(seen.total(), 3);
    for id in &ids {
        assert_eq!(seen.deliveries(id).len(), 1);
    }
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    assert_eq!(info.delivered.consumer_sequence, 3, "three deliveries, none of them a redelivery");
    assert!(dlq_messages(&env).await.is_empty());
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn a_transient_error_is_redelivered_after_the_scheduled_delay() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move { if s.record(&d) == 1 { Err(HandlerError::transient("database busy")) } else { Ok(()) } }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());

    let id = publish_orders(&env, 1).await.remove(0);
    eventually(WAIT, "a redelivery", || async { (seen.deliveries(&id).len() == 2).then_some(()) })
        .await
        .unwrap();

    let d = seen.deliveries(&id);
    assert_eq!((d[0].0, d[1].0), (1, 2));
    assert!(d[1].1 - d[0].1 >= schedule().delay_after(1), "redelivered after {:?}", d[1].1 - d[0].1);
    assert!(dlq_messages(&env).await.is_empty());
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn a_permanent_error_dead_letters_once_with_every_header() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Err(HandlerError::permanent("order violates a business rule"))
        }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());

    let id = publish_orders(&env, 1).await.remove(0);
    let dlq = wait_dlq(&env, 1).await;
    // Termed: the ack floor passes it, and the server never delivers it again.
    let info = wait_until_settled(&env, 1).await;

    assert_eq!(seen.deliveries(&id).len(), 1, "a termed message is not redelivered");
    assert_eq!(info.delivered.consumer_sequence, 1, "delivered once");
    let dlq_after = dlq_messages(&env).await;
    assert_eq!(dlq_after.len(), 1);
    let m = &dlq[0];
    let original = stream(&env, "ORDERS").await.get_raw_message(1).await.unwrap();
    assert_eq!(m.subject.as_str(), "dlq.orders.created.v1");
    assert_eq!(m.payload, original.payload);
    assert_eq!(header(m, headers::DLQ_REASON), "permanent_error");
    assert!(header(m, headers::DLQ_ERROR).contains("business rule"));
    assert_eq!(header(m, headers::ORIGINAL_SUBJECT), "orders.created.v1");
    assert_eq!(header(m, headers::STREAM_SEQ), "1");
    assert_eq!(header(m, headers::CONSUMER), "inventory-orders-created");
    assert_eq!(header(m, headers::DELIVERY_COUNT), "1");
    assert_eq!(header(m, headers::ORIGINAL_MSG_ID), id);
    assert_eq!(header(m, headers::CORRELATION_ID), "corr-123");
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn exhausting_max_deliver_dead_letters_with_max_deliveries() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Err(HandlerError::transient("gateway down"))
        }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());

    let id = publish_orders(&env, 1).await.remove(0);
    let dlq = wait_dlq(&env, 1).await;

    let d = seen.deliveries(&id);
    assert_eq!(d.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    for (i, w) in d.windows(2).enumerate() {
        let want = schedule().delay_after(i64::try_from(i).unwrap() + 1);
        assert!(w[1].1 - w[0].1 >= want, "delivery {} came after {:?} < {want:?}", i + 2, w[1].1 - w[0].1);
    }
    assert_eq!(header(&dlq[0], headers::DLQ_REASON), "max_deliveries");
    assert_eq!(header(&dlq[0], headers::DELIVERY_COUNT), "5");
    assert!(header(&dlq[0], headers::DLQ_ERROR).contains("gateway down"));
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn undecodable_payloads_are_dead_lettered_with_distinct_reasons() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Ok(())
        }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());

    let good = serde_json::to_value(order_created("corr-123")).unwrap();
    let mut zero_qty = good.clone();
    zero_qty["data"]["items"][0]["quantity"] = 0.into();
    let mut v2 = good.clone();
    v2["type"] = "orderflow.orders.created.v9".into();
    publish_raw(&env, b"{not json", "m1").await;
    publish_raw(&env, Box::leak(serde_json::to_vec(&zero_qty).unwrap().into_boxed_slice()), "m2").await;
    publish_raw(&env, Box::leak(serde_json::to_vec(&v2).unwrap().into_boxed_slice()), "m3").await;

    let dlq = wait_dlq(&env, 3).await;
    let mut reasons: Vec<(&str, &str)> =
        dlq.iter().map(|m| (header(m, headers::ORIGINAL_MSG_ID), header(m, headers::DLQ_REASON))).collect();
    reasons.sort();
    assert_eq!(reasons, [("m1", "malformed"), ("m2", "schema_invalid"), ("m3", "unknown_type")]);
    assert_eq!(seen.total(), 0, "no handler sees an invalid event");
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn an_unanswered_delivery_is_redelivered_after_ack_wait() {
    let env = setup().await;
    let id = publish_orders(&env, 1).await.remove(0);
    // A consumer instance that takes the message and dies without answering.
    let raw: PullConsumer =
        stream(&env, "ORDERS").await.get_consumer("inventory-orders-created").await.unwrap();
    let mut batch = raw.fetch().max_messages(1).messages().await.unwrap();
    let taken = batch.next().await.unwrap().unwrap();
    let taken_at = Instant::now();
    assert_eq!(taken.info().unwrap().delivered, 1);
    drop(batch);

    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Ok(())
        }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());
    eventually(WAIT, "the redelivery", || async { (!seen.deliveries(&id).is_empty()).then_some(()) })
        .await
        .unwrap();

    let d = seen.deliveries(&id);
    assert_eq!(d[0].0, 2);
    assert!(d[0].1 - taken_at >= schedule().ack_wait());
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn a_handler_that_never_answers_is_abandoned_and_its_message_redelivered() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let cfg = RuntimeConfig { handler_timeout: ms(700), ..runtime_config() };
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            if s.record(&d) == 1 {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    })
    .with_config(cfg)
    .spawn(stop.clone());

    let id = publish_orders(&env, 1).await.remove(0);
    eventually(WAIT, "the second delivery", || async { (seen.deliveries(&id).len() == 2).then_some(()) })
        .await
        .unwrap();

    let d = seen.deliveries(&id);
    // Progress acks kept the server from redelivering while the handler hung (ack wait 400 ms).
    assert!(d[1].1 - d[0].1 >= ms(700) + schedule().delay_after(1));
    assert!(dlq_messages(&env).await.is_empty());
    stop.cancel();
    handle.join().await;
}

/// One instance of the inventory service, as far as messaging goes: a NATS connection of its own
/// and the service's max-deliveries consumer on it (what the kernel runs for every service), and,
/// with [`Instance::consuming`], the runtime of `inventory-orders-created` too.
struct Instance {
    client: async_nats::Client,
    js: jetstream::Context,
    stop: CancellationToken,
    handles: Vec<ConsumerHandle>,
}

/// `inventory-max-deliveries`, watching `inventory-orders-created`, on the test's short schedule.
fn max_deliveries_spec() -> ConsumerSpec {
    let watched = spec();
    ConsumerSpec::for_max_deliveries("inventory", [(watched.stream.as_str(), watched.durable.as_str())])
        .with_schedule(schedule())
}

impl Instance {
    async fn start(env: &Env, name: &str) -> Self {
        let client = connect(&ConnectConfig::new(env.nats.url(), format!("orderflow/{name}"))).await.unwrap();
        let js = jetstream::new(client.clone());
        let stop = CancellationToken::new();
        let copier = MaxDeliveriesRuntime::new(js.clone(), max_deliveries_spec())
            .with_config(runtime_config())
            .spawn(stop.clone());
        Self { client, js, stop, handles: vec![copier] }
    }

    fn consuming(mut self, handler: impl Handler<OrderCreated>) -> Self {
        let events = ConsumerRuntime::new(self.js.clone(), spec(), handler)
            .with_config(runtime_config())
            .spawn(self.stop.clone());
        self.handles.push(events);
        self
    }

    /// Dies with whatever it holds unanswered: its connection closes, so no ack, nak or progress
    /// ack of it reaches the server again, and it hears nothing more.
    async fn kill(self) {
        tokio::time::timeout(WAIT, self.client.drain()).await.unwrap().unwrap();
    }

    async fn stop(self) {
        self.stop.cancel();
        for h in self.handles {
            h.join().await;
        }
    }
}

async fn max_deliveries_info(env: &Env) -> Option<jetstream::consumer::Info> {
    env.js.get_stream("ADVISORIES").await.ok()?.consumer_info("inventory-max-deliveries").await.ok()
}

/// Waits until `inventory-max-deliveries` has acked or termed every advisory up to `seq`.
async fn wait_until_advisories_settled(env: &Env, seq: u64) -> jetstream::consumer::Info {
    wait_until_acked(&env.js, "ADVISORIES", "inventory-max-deliveries", seq).await
}

const ADVISORY_SUBJECT: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.inventory-orders-created";

/// Publishes into ADVISORIES what the server would (or something it never would).
async fn publish_advisory(env: &Env, payload: Vec<u8>) -> u64 {
    env.js.publish(ADVISORY_SUBJECT, payload.into()).await.unwrap().await.unwrap().sequence
}

/// The server's advisory for `inventory-orders-created` giving up on ORDERS' `stream_seq`.
fn advisory(stream_seq: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "io.nats.jetstream.advisory.v1.max_deliver",
        "id": format!("adv-{stream_seq}"),
        "timestamp": "2026-12-04T12:00:00Z",
        "stream": "ORDERS",
        "consumer": "inventory-orders-created",
        "stream_seq": stream_seq,
        "deliveries": 5,
    }))
    .unwrap()
}

async fn raw_consumer(env: &Env) -> PullConsumer {
    stream(env, "ORDERS").await.get_consumer("inventory-orders-created").await.unwrap()
}

/// Takes the next delivery of `inventory-orders-created` and never answers it: an instance that
/// crashes mid-handler. Returns its delivery count.
async fn take_and_never_answer(env: &Env) -> i64 {
    let raw = raw_consumer(env).await;
    eventually(WAIT, "a delivery", || async {
        let mut batch = raw.fetch().max_messages(1).expires(ms(500)).messages().await.ok()?;
        let msg = batch.next().await?.ok()?;
        Some(msg.info().ok()?.delivered)
    })
    .await
    .unwrap()
}

/// Pulls from `inventory-orders-created` as something other than an orderflow instance would (an
/// operator's `nats consumer next`, say) until the server gives up on the message at stream
/// sequence `seq`, whose last delivery was never answered: it does so when a pull request
/// arrives after the last ack wait (nats-server 2.15 does not on the ack wait alone), drops the
/// message from the un-acked ones and emits its MAX_DELIVERIES advisory.
async fn pull_until_given_up(env: &Env, seq: u64) {
    let raw = raw_consumer(env).await;
    eventually(WAIT, "the server to give up on the message", || async {
        let mut batch = raw.fetch().max_messages(1).expires(ms(300)).messages().await.ok()?;
        if let Some(Ok(m)) = batch.next().await {
            panic!("delivered past max_deliver: {:?}", m.info().map(|i| i.delivered));
        }
        let info = consumer_info(env).await;
        (info.delivered.stream_sequence >= seq && info.num_ack_pending == 0 && info.num_pending == 0)
            .then_some(())
    })
    .await
    .unwrap();
}

/// Waits until `ADVISORIES` holds `n` advisories.
async fn wait_advisories_stored(env: &Env, n: u64) {
    eventually(WAIT, "the advisory stored", || async {
        let mut advisories = env.js.get_stream("ADVISORIES").await.ok()?;
        (advisories.info().await.ok()?.state.messages >= n).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_message_the_server_gives_up_on_while_every_instance_is_down_reaches_the_dlq_when_one_is_back() {
    let env = setup().await;
    // Instance A fails the first four deliveries (transient) and hangs on the last one.
    let took_last = Arc::new(tokio::sync::Notify::new());
    let t = took_last.clone();
    let a = Instance::start(&env, "instance-a").await.consuming(move |d: Delivery<OrderCreated>| {
        let t = t.clone();
        async move {
            if d.delivered < 5 {
                return Err(HandlerError::transient("database busy"));
            }
            t.notify_one();
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    let id = publish_orders(&env, 1).await.remove(0);
    tokio::time::timeout(WAIT, took_last.notified()).await.expect("instance A took the last delivery");

    // A dies holding it. With no instance running, the server gives up on the message and emits
    // its advisory: nobody hears it, the ADVISORIES stream keeps it.
    a.kill().await;
    pull_until_given_up(&env, 1).await;
    wait_advisories_stored(&env, 1).await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let b = Instance::start(&env, "instance-b").await.consuming(move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Ok(())
        }
    });

    let dlq = wait_dlq(&env, 1).await;
    let copier = wait_until_advisories_settled(&env, 1).await;
    assert_eq!(dlq.len(), 1);
    let m = &dlq[0];
    let original = stream(&env, "ORDERS").await.get_raw_message(1).await.unwrap();
    assert_eq!(m.subject.as_str(), "dlq.orders.created.v1");
    assert_eq!(m.payload, original.payload);
    assert_eq!(header(m, headers::DLQ_REASON), "max_deliveries");
    assert_eq!(header(m, headers::CONSUMER), "inventory-orders-created");
    assert_eq!(header(m, headers::ORIGINAL_STREAM), "ORDERS");
    assert_eq!(header(m, headers::STREAM_SEQ), "1");
    assert_eq!(header(m, headers::DELIVERY_COUNT), "5");
    assert_eq!(header(m, headers::ORIGINAL_MSG_ID), id);
    assert_eq!(header(m, headers::CORRELATION_ID), "corr-123");
    assert_eq!(copier.delivered.consumer_sequence, 1, "the advisory was copied on its first delivery");
    assert!(seen.deliveries(&id).is_empty(), "the server does not deliver a message it gave up on");

    // The dead letter replays as any other: instance B handles the event this time.
    dlq_admin::replay(&env.js, m.sequence).await.unwrap();
    eventually(WAIT, "the replayed event", || async { (seen.deliveries(&id).len() == 1).then_some(()) })
        .await
        .unwrap();
    assert!(dlq_messages(&env).await.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn two_instances_copy_a_message_the_server_gave_up_on_to_the_dlq_once() {
    let env = setup().await;
    let a = Instance::start(&env, "instance-a").await;
    let b = Instance::start(&env, "instance-b").await;
    // Both listen: each has a pull request waiting on the shared durable.
    eventually(WAIT, "both instances pulling advisories", || async {
        (max_deliveries_info(&env).await?.num_waiting >= 2).then_some(())
    })
    .await
    .unwrap();
    let id = publish_orders(&env, 1).await.remove(0);

    // A third instance takes every delivery and crashes each time.
    let mut deliveries = Vec::new();
    for _ in 0..5 {
        deliveries.push(take_and_never_answer(&env).await);
    }
    pull_until_given_up(&env, 1).await;

    let dlq = wait_dlq(&env, 1).await;
    let copier = wait_until_advisories_settled(&env, 1).await;
    assert_eq!(deliveries, [1, 2, 3, 4, 5]);
    assert_eq!(dlq_messages(&env).await.len(), 1, "one dead letter");
    assert_eq!(header(&dlq[0], headers::DLQ_REASON), "max_deliveries");
    assert_eq!(header(&dlq[0], headers::ORIGINAL_MSG_ID), id);
    assert_eq!(copier.delivered.consumer_sequence, 1, "one delivery of the advisory, to one instance");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn advisories_that_can_never_be_copied_are_termed_and_the_next_one_is_copied() {
    let env = setup().await;
    let id = publish_orders(&env, 1).await.remove(0);
    let instance = Instance::start(&env, "instance").await;

    publish_advisory(&env, b"{not an advisory".to_vec()).await;
    publish_advisory(&env, advisory(99)).await; // a message ORDERS never had
    let last = publish_advisory(&env, advisory(1)).await;

    let copier = wait_until_advisories_settled(&env, last).await;
    let dlq = dlq_messages(&env).await;
    assert_eq!(dlq.len(), 1, "only the advisory of a message that exists is copied");
    assert_eq!(header(&dlq[0], headers::ORIGINAL_MSG_ID), id);
    assert_eq!(copier.delivered.consumer_sequence, 3, "each advisory delivered once: none is retried");
    assert_eq!(copier.num_ack_pending, 0);
    instance.stop().await;
}

#[tokio::test]
async fn an_advisory_is_redelivered_until_the_dlq_takes_its_copy() {
    let env = setup().await;
    let id = publish_orders(&env, 1).await.remove(0);
    // No stream takes `dlq.>`: every copy fails.
    env.js.delete_stream("DLQ").await.unwrap();
    let instance = Instance::start(&env, "instance").await;
    for _ in 0..5 {
        take_and_never_answer(&env).await;
    }
    pull_until_given_up(&env, 1).await;

    eventually(WAIT, "the advisory nak'd and delivered again", || async {
        (max_deliveries_info(&env).await?.delivered.consumer_sequence >= 2).then_some(())
    })
    .await
    .unwrap();
    provision(&env.js, &Topology::orderflow(1).with_schedule(&schedule())).await.unwrap();

    let dlq = wait_dlq(&env, 1).await;
    let copier = wait_until_advisories_settled(&env, 1).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(header(&dlq[0], headers::DLQ_REASON), "max_deliveries");
    assert_eq!(header(&dlq[0], headers::ORIGINAL_MSG_ID), id);
    assert_eq!(copier.num_ack_pending, 0);
    instance.stop().await;
}

#[tokio::test]
async fn consumption_resumes_after_a_nats_server_restart_and_nothing_is_lost() {
    let mut env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            tokio::time::sleep(ms(5)).await;
            s.record(&d);
            Ok(())
        }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());
    let mut ids = publish_orders(&env, 300).await;
    eventually(WAIT, "some progress", || async { (seen.distinct() >= 50).then_some(()) }).await.unwrap();

    env.nats.kill();
    env.nats.restart().unwrap();
    // Publish more while the server recovers; every acknowledged message must be processed.
    for _ in 0..100 {
        let msg = OutgoingMessage::from_envelope(&order_created("corr-123"), false).unwrap();
        eventually(WAIT, "a publish after the restart", || async { env.publisher.publish(&msg).await.ok() })
            .await
            .unwrap();
        ids.push(msg.message_id);
    }

    eventually(Duration::from_secs(60), "every message", || async {
        ids.iter().all(|id| !seen.deliveries(id).is_empty()).then_some(())
    })
    .await
    .unwrap();
    for id in &ids {
        assert!(!seen.deliveries(id).is_empty(), "{id} was lost");
    }
    assert!(dlq_messages(&env).await.is_empty());
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn a_graceful_stop_with_messages_in_flight_processes_none_twice() {
    let env = setup().await;
    let done = Arc::new(Seen::default());
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Handlers hold their message until the gate opens: the stop finds every slot busy, whatever
    // the machine's speed, instead of whatever a fixed handler time left in flight.
    let (gate, gate_rx) = tokio::sync::watch::channel(false);
    let make_handler = |done: Arc<Seen>, started: Arc<std::sync::atomic::AtomicUsize>| {
        let gate = gate_rx.clone();
        move |d: Delivery<OrderCreated>| {
            let (done, started, mut gate) = (done.clone(), started.clone(), gate.clone());
            async move {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                gate.wait_for(|open| *open).await.unwrap();
                done.record(&d);
                Ok(())
            }
        }
    };
    let cfg = RuntimeConfig { concurrency: 8, ..runtime_config() };
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), make_handler(done.clone(), started.clone()))
        .with_config(cfg.clone())
        .spawn(stop.clone());
    let ids = publish_orders(&env, 60).await;
    eventually(WAIT, "every handler slot busy", || async {
        (started.load(std::sync::atomic::Ordering::SeqCst) == cfg.concurrency).then_some(())
    })
    .await
    .unwrap();

    stop.cancel();
    gate.send_replace(true);
    handle.join().await;
    let started_before = started.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(done.total(), started_before, "every in-flight handler finished before stop returned");
    assert!(done.distinct() < 60, "the stop interrupted consumption");

    let stop2 = CancellationToken::new();
    let handle2 = ConsumerRuntime::new(env.js.clone(), spec(), make_handler(done.clone(), started.clone()))
        .with_config(cfg)
        .spawn(stop2.clone());
    eventually(WAIT, "the rest", || async { (done.distinct() == 60).then_some(()) }).await.unwrap();
    // All 60 acked: no message, including one whose ack the stop lost, can come back.
    let info = wait_until_settled(&env, 60).await;

    for id in &ids {
        assert_eq!(done.deliveries(id).len(), 1, "{id} processed twice");
    }
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    stop2.cancel();
    handle2.join().await;
}

#[tokio::test]
async fn an_idle_runtime_stops_promptly() {
    let env = setup().await;
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), |_d: Delivery<OrderCreated>| async { Ok(()) })
        .spawn(stop.clone());
    eventually(WAIT, "running", || async { (handle.state() == ConsumerState::Running).then_some(()) })
        .await
        .unwrap();
    let mut state = handle.watch_state();

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle.join()).await.expect("stopped within 5 s");

    assert_eq!(*state.borrow_and_update(), ConsumerState::Stopped);
}

#[tokio::test]
async fn a_deleted_consumer_is_recreated_and_consumption_continues() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Ok(())
        }
    })
    .with_config(runtime_config())
    .spawn(stop.clone());
    publish_orders(&env, 1).await;
    eventually(WAIT, "first message", || async { (seen.distinct() == 1).then_some(()) }).await.unwrap();

    stream(&env, "ORDERS").await.delete_consumer("inventory-orders-created").await.unwrap();
    let id = publish_orders(&env, 1).await.remove(0);

    eventually(WAIT, "a message after the deletion", || async {
        (!seen.deliveries(&id).is_empty()).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(handle.state(), ConsumerState::Running);
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn a_paused_runtime_fetches_nothing_until_resumed() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let (pause_tx, pause_rx) = tokio::sync::watch::channel(true);
    let stop = CancellationToken::new();
    let handle = ConsumerRuntime::new(env.js.clone(), spec(), move |d: Delivery<OrderCreated>| {
        let s = s.clone();
        async move {
            s.record(&d);
            Ok(())
        }
    })
    .with_config(runtime_config())
    .with_pause(pause_rx)
    .spawn(stop.clone());
    publish_orders(&env, 2).await;
    // The runtime reports `Paused` when it has decided not to fetch and parks on the switch; from
    // there only the switch or the shutdown token moves it, so what the server shows now is all
    // it will ever have fetched while paused.
    eventually(WAIT, "paused runtime", || async { (handle.state() == ConsumerState::Paused).then_some(()) })
        .await
        .unwrap();
    assert_eq!(seen.total(), 0);
    let info = consumer_info(&env).await;
    assert_eq!(info.num_pending, 2);
    assert_eq!(info.delivered.consumer_sequence, 0, "nothing was delivered");
    assert_eq!(info.num_waiting, 0, "no pull request is waiting");

    pause_tx.send(false).unwrap();

    eventually(WAIT, "both messages", || async { (seen.distinct() == 2).then_some(()) }).await.unwrap();
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn provisioning_twice_is_a_no_op_and_drift_is_repaired() {
    let env = setup().await;
    let topology = Topology::orderflow(1).with_schedule(&schedule());

    let again = provision(&env.js, &topology).await.unwrap();
    assert!(again.is_noop(), "{again:?}");

    let mut drifted =
        stream(&env, "ORDERS").await.consumer_info("inventory-orders-created").await.unwrap().config;
    drifted.max_ack_pending = 7;
    env.js.update_consumer_on_stream(drifted, "ORDERS").await.unwrap();
    let repaired = provision(&env.js, &topology).await.unwrap();

    assert_eq!(repaired.updated, ["consumer ORDERS/inventory-orders-created"]);
    assert!(repaired.created.is_empty());
    let info = consumer_info(&env).await;
    assert_eq!(info.config.max_ack_pending, spec().max_ack_pending);
    assert_eq!(info.config.max_deliver, 5);
    assert_eq!(info.config.backoff, schedule().delays());
    let orders = stream(&env, "ORDERS").await.info().await.unwrap().config.clone();
    assert_eq!(orders.retention, jetstream::stream::RetentionPolicy::Limits);
    assert_eq!(orders.storage, jetstream::stream::StorageType::File);
    assert!(orders.duplicate_window >= Duration::from_secs(120));
}

#[tokio::test]
async fn a_comma_separated_server_list_connects_to_any_live_server() {
    let nats = TestNats::start().unwrap();
    let mut cfg = ConnectConfig::new(format!("nats://127.0.0.1:1, {}", nats.url()), "orderflow/test");
    cfg.initial_timeout = Some(Duration::from_secs(20));

    let client = connect(&cfg).await.unwrap();

    client.flush().await.unwrap();
    assert_eq!(client.connection_state(), async_nats::connection::State::Connected);
}

/// A service's first connect (no initial timeout) keeps trying while nothing listens, reporting
/// each failed attempt, and connects once a server starts on that port.
#[tokio::test]
async fn without_an_initial_timeout_the_first_connect_waits_for_a_server_that_starts_later() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("nats://127.0.0.1:{port}");
    let cfg = ConnectConfig::new(url.clone(), "orderflow/test").with_initial_timeout(None);
    let (report, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let connecting = tokio::spawn(async move {
        connect_observed(&cfg, move |retry| {
            let _ = report.send((retry.attempt, retry.url.to_owned()));
        })
        .await
    });

    for expected in 1..=2 {
        let retry = tokio::time::timeout(WAIT, reported.recv()).await.unwrap().unwrap();
        assert_eq!(retry, (expected, url.clone()));
    }
    let mut options = orderflow_natsd::Options::new(dir.path().join("store"));
    options.port = Some(port);
    let _server = tokio::task::spawn_blocking(move || orderflow_natsd::NatsServer::start(options))
        .await
        .unwrap()
        .unwrap();

    let client = tokio::time::timeout(WAIT, connecting).await.unwrap().unwrap().unwrap();
    client.flush().await.unwrap();
    assert_eq!(client.connection_state(), async_nats::connection::State::Connected);
}

/// Streams created by a release without limits (no max_age or max_bytes, DiscardPolicy::Old)
/// are updated in place to the bounded spec, and keep their messages.
#[tokio::test]
async fn unbounded_streams_of_an_older_release_are_updated_to_the_limits_and_keep_their_messages() {
    let nats = TestNats::start().unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    for (name, subject) in [("ORDERS", "orders.>"), ("DLQ", "dlq.>")] {
        js.create_stream(jetstream::stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            storage: jetstream::stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    js.publish("orders.created.v1", "{}".into()).await.unwrap().await.unwrap();

    let report = provision(&js, &Topology::orderflow(1)).await.unwrap();

    assert!(report.updated.contains(&"stream ORDERS".to_owned()), "{report:?}");
    assert!(report.updated.contains(&"stream DLQ".to_owned()), "{report:?}");
    let mut orders = js.get_stream("ORDERS").await.unwrap();
    let info = orders.info().await.unwrap();
    assert_eq!(info.state.messages, 1);
    assert_eq!(info.config.max_age, orderflow_messaging::topology::EVENT_MAX_AGE);
    assert_eq!(info.config.max_bytes, orderflow_messaging::topology::EVENT_MAX_BYTES);
    assert_eq!(info.config.discard, jetstream::stream::DiscardPolicy::New);
    let dlq = js.get_stream("DLQ").await.unwrap().get_info().await.unwrap();
    assert_eq!(dlq.config.max_age, orderflow_messaging::topology::DLQ_MAX_AGE);
    assert!(provision(&js, &Topology::orderflow(1)).await.unwrap().is_noop());
}

/// A server that requires a user and password is reached with them in the URL (async-nats itself
/// ignores URL credentials), and without them the connect fails.
#[tokio::test]
async fn credentials_in_the_url_reach_a_server_that_requires_them() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = dir.path().join("auth.conf");
    std::fs::write(
        &conf,
        format!("listen: 127.0.0.1:{port}\nauthorization {{ user: svc, password: \"p@ss:w\" }}\n"),
    )
    .unwrap();
    let mut options = orderflow_natsd::Options::new(dir.path().join("store"));
    options.port = Some(port);
    options.config_file = Some(conf);
    let _server = orderflow_natsd::NatsServer::start(options).unwrap();
    let quick = |url: String| {
        let mut cfg = ConnectConfig::new(url, "orderflow/test");
        cfg.initial_timeout = Some(Duration::from_secs(1));
        cfg
    };

    let with = connect(&quick(format!("nats://svc:p%40ss:w@127.0.0.1:{port}"))).await;
    let without = connect(&quick(format!("nats://127.0.0.1:{port}"))).await;

    let client = with.unwrap();
    client.flush().await.unwrap();
    let error = without.unwrap_err().to_string();
    assert!(!error.contains("p@ss"), "{error}");
}
