//! Dead-letter administration against a real nats-server: dead letters made by the consumer
//! runtime (and published directly where a test needs a particular one), then listed with every
//! filter, shown, replayed and purged.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use orderflow_events::{EventKind, OrderCreated};
use orderflow_messaging::dlq::DeadLetter;
use orderflow_messaging::dlq_admin::{self, DlqAdminError, Filter};
use orderflow_messaging::{
    ConsumerHandle, ConsumerRuntime, ConsumerSpec, Delivery, DlqReason, HandlerError, OutgoingMessage,
    RuntimeConfig, headers, topology::provision,
};
use orderflow_test_support::{eventually, wait_until_acked};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Env, WAIT, ms, order_created, publish_raw, schedule, setup, topology};

/// Publishes an `orders.created.v1` event; returns it as published.
async fn publish_order(env: &Env, correlation: &str) -> OutgoingMessage {
    let msg = OutgoingMessage::from_envelope(&order_created(correlation), false).unwrap();
    env.publisher.publish(&msg).await.unwrap();
    msg
}

/// Publishes a dead letter the way the runtime does, for a message that never existed in its
/// stream; returns its DLQ sequence.
async fn publish_dead_letter(env: &Env, subject: &str, consumer: &str, reason: DlqReason) -> u64 {
    publish_dead_letter_of(env, subject, consumer, reason, (&format!("event-{consumer}"), 99)).await
}

/// Like [`publish_dead_letter`], for the event with this id and stream sequence.
async fn publish_dead_letter_of(
    env: &Env,
    subject: &str,
    consumer: &str,
    reason: DlqReason,
    (event_id, stream_seq): (&str, u64),
) -> u64 {
    let kind = EventKind::from_subject(subject).unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, event_id);
    let letter = DeadLetter {
        reason,
        error: format!("{reason} in {consumer}"),
        original_subject: subject.to_owned(),
        stream: kind.stream().to_owned(),
        stream_seq,
        consumer: consumer.to_owned(),
        delivered: 5,
        headers: Some(h),
        payload: Bytes::from_static(b"{\"type\":\"orderflow.something\"}"),
    };
    letter.publish(&env.js).await.unwrap().sequence
}

/// What a handler saw: each delivery's `Orderflow-Replay-Of` header.
#[derive(Default)]
struct Seen(Mutex<Vec<Option<String>>>);

/// Runs `inventory-orders-created` with a handler that fails permanently on the first
/// `failures` deliveries and succeeds afterwards.
fn run_inventory(env: &Env, failures: usize, seen: Arc<Seen>, stop: &CancellationToken) -> ConsumerHandle {
    let spec = ConsumerSpec::for_event("inventory", EventKind::OrdersCreated).with_schedule(schedule());
    let cfg = RuntimeConfig { fetch_expires: ms(500), retry_max: ms(500), ..RuntimeConfig::default() };
    ConsumerRuntime::new(env.js.clone(), spec, move |d: Delivery<OrderCreated>| {
        let seen = seen.clone();
        async move {
            let n = {
                let mut v = seen.0.lock().unwrap();
                v.push(headers::get(d.headers.as_ref(), headers::REPLAY_OF).map(str::to_owned));
                v.len()
            };
            if n <= failures {
                Err(HandlerError::permanent("order violates a business rule"))
            } else {
                Ok(())
            }
        }
    })
    .with_config(cfg)
    .spawn(stop.clone())
}

async fn wait_dlq(env: &Env, n: usize) -> Vec<dlq_admin::DeadLetterRecord> {
    eventually(WAIT, "dead letters", || async {
        let all = dlq_admin::list(&env.js, &Filter::default()).await.unwrap();
        (all.len() >= n).then_some(all)
    })
    .await
    .unwrap()
}

fn seqs(records: &[dlq_admin::DeadLetterRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

async fn stream_messages(env: &Env, name: &str) -> u64 {
    env.js.get_stream(name).await.unwrap().info().await.unwrap().state.messages
}

/// Two `permanent_error` letters and a `malformed` one from the runtime, then a
/// `max_deliveries` letter of the payment consumer published directly.
async fn four_dead_letters(env: &Env) -> Vec<dlq_admin::DeadLetterRecord> {
    let stop = CancellationToken::new();
    let handle = run_inventory(env, usize::MAX, Arc::default(), &stop);
    publish_order(env, "corr-a").await;
    publish_order(env, "corr-b").await;
    publish_raw(env, b"{not json", "raw-1").await;
    wait_dlq(env, 3).await;
    stop.cancel();
    handle.join().await;
    publish_dead_letter(env, "inventory.reserved.v1", "payment-inventory-reserved", DlqReason::MaxDeliveries)
        .await;
    wait_dlq(env, 4).await
}

#[tokio::test]
async fn list_narrows_by_subject_reason_consumer_time_and_limit() {
    let env = setup().await;
    let all = four_dead_letters(&env).await;
    let list = |filter: Filter| {
        let js = env.js.clone();
        async move { seqs(&dlq_admin::list(&js, &filter).await.unwrap()) }
    };
    let subject = |s: &str| Filter { subject: Some(s.to_owned()), ..Filter::default() };

    let by_reason: Vec<_> = all.iter().map(|r| r.reason).collect();
    assert_eq!(
        by_reason.iter().filter(|r| **r == Some(DlqReason::PermanentError)).count(),
        2,
        "{by_reason:?}"
    );
    assert_eq!(list(subject("orders.created.v1")).await, seqs(&all[..3]));
    assert_eq!(list(subject("orders.>")).await, seqs(&all[..3]));
    assert_eq!(list(subject("*.reserved.v1")).await, [all[3].seq]);
    assert_eq!(list(subject("payments.>")).await, Vec::<u64>::new());
    let malformed = all.iter().find(|r| r.reason == Some(DlqReason::Malformed)).unwrap();
    assert_eq!(
        list(Filter { reason: Some(DlqReason::Malformed), ..Filter::default() }).await,
        [malformed.seq]
    );
    assert_eq!(
        list(Filter { consumer: Some("payment-inventory-reserved".into()), ..Filter::default() }).await,
        [all[3].seq]
    );
    assert_eq!(
        list(Filter {
            consumer: Some("inventory-orders-created".into()),
            reason: Some(DlqReason::PermanentError),
            ..Filter::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(list(Filter { since: Some(all[2].time), ..Filter::default() }).await, seqs(&all[2..]));
    assert_eq!(list(Filter { until: Some(all[1].time), ..Filter::default() }).await, seqs(&all[..2]));
    assert_eq!(
        list(Filter { since: Some(all[1].time), until: Some(all[2].time), ..Filter::default() }).await,
        seqs(&all[1..3])
    );
    assert_eq!(list(Filter { limit: Some(2), ..Filter::default() }).await, seqs(&all[..2]));
    assert_eq!(
        list(Filter { subject: Some("orders.>".into()), limit: Some(1), ..Filter::default() }).await,
        [all[0].seq]
    );
    assert!(matches!(
        dlq_admin::list(&env.js, &subject("orders.>.v1")).await,
        Err(DlqAdminError::InvalidFilter(_))
    ));
}

#[tokio::test]
async fn get_shows_the_dead_letter_headers_and_what_the_envelope_says() {
    let env = setup().await;
    let stop = CancellationToken::new();
    let handle = run_inventory(&env, usize::MAX, Arc::default(), &stop);
    let event = publish_order(&env, "corr-show").await;
    let seq = wait_dlq(&env, 1).await[0].seq;
    stop.cancel();
    handle.join().await;

    let r = dlq_admin::get(&env.js, seq).await.unwrap();

    assert_eq!(r.seq, seq);
    assert_eq!(r.subject, "dlq.orders.created.v1");
    assert_eq!(r.original_subject, "orders.created.v1");
    assert_eq!(r.original_stream.as_deref(), Some("ORDERS"));
    assert_eq!(r.stream_seq, Some(1));
    assert_eq!(r.consumer.as_deref(), Some("inventory-orders-created"));
    assert_eq!(r.reason, Some(DlqReason::PermanentError));
    assert!(r.error.as_deref().unwrap().contains("business rule"));
    assert_eq!(r.delivery_count, Some(1));
    assert_eq!(r.original_msg_id.as_deref(), Some(event.message_id.as_str()));
    assert_eq!(r.event_type.as_deref(), Some("orderflow.orders.created.v1"));
    assert_eq!(r.event_id.as_deref(), Some(event.message_id.as_str()));
    let order_id: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(r.order_id.as_deref(), order_id["subject"].as_str());
    assert_eq!(r.correlation_id.as_deref(), Some("corr-show"));
    assert_eq!(r.payload, event.payload);
    let names: Vec<String> = r.sorted_headers().into_iter().map(|(n, _)| n).collect();
    for h in [headers::DLQ_REASON, headers::DLQ_ERROR, headers::ORIGINAL_SUBJECT, headers::CONSUMER] {
        assert!(names.iter().any(|n| n == h), "{h} missing from {names:?}");
    }
    assert!(matches!(dlq_admin::get(&env.js, seq + 100).await, Err(DlqAdminError::NotFound { .. })));
}

#[tokio::test]
async fn a_replay_is_republished_with_a_new_id_and_processed_and_leaves_the_dlq() {
    let env = setup().await;
    let seen = Arc::new(Seen::default());
    let stop = CancellationToken::new();
    let handle = run_inventory(&env, 1, seen.clone(), &stop);
    let event = publish_order(&env, "corr-replay").await;
    let seq = wait_dlq(&env, 1).await[0].seq;

    let replayed = dlq_admin::replay(&env.js, seq).await.unwrap();

    let want_id = format!("replay:{seq}:{}", event.message_id);
    assert_eq!(replayed.message_id, want_id);
    assert_eq!((replayed.stream.as_str(), replayed.stream_seq, replayed.duplicate), ("ORDERS", 2, false));
    assert!(dlq_admin::list(&env.js, &Filter::default()).await.unwrap().is_empty());
    let stored = env.js.get_stream("ORDERS").await.unwrap().get_raw_message(2).await.unwrap();
    assert_eq!(stored.subject.as_str(), "orders.created.v1");
    assert_eq!(stored.payload, event.payload);
    let h = |name: &str| stored.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(h(headers::NATS_MSG_ID), Some(want_id));
    assert_eq!(h(headers::REPLAY_OF), Some(seq.to_string()));
    assert_eq!(h(headers::CORRELATION_ID).as_deref(), Some("corr-replay"));
    for gone in [headers::DLQ_REASON, headers::DLQ_ERROR, headers::ORIGINAL_SUBJECT, headers::ORIGINAL_MSG_ID]
    {
        assert_eq!(h(gone), None, "{gone} was replayed");
    }
    for gone in [headers::STREAM_SEQ, headers::CONSUMER, headers::DELIVERY_COUNT, headers::ORIGINAL_STREAM] {
        assert_eq!(h(gone), None, "{gone} was replayed");
    }
    eventually(WAIT, "the replay handled", || async { (seen.0.lock().unwrap().len() == 2).then_some(()) })
        .await
        .unwrap();
    assert_eq!(*seen.0.lock().unwrap(), [None, Some(seq.to_string())]);
    // Handled: a dead letter is published before its message is termed, so once the ack floor
    // passes the replay, the DLQ holds whatever handling it produced.
    wait_until_acked(&env.js, "ORDERS", "inventory-orders-created", replayed.stream_seq).await;
    assert!(
        dlq_admin::list(&env.js, &Filter::default()).await.unwrap().is_empty(),
        "handled, not dead again"
    );
    assert!(matches!(dlq_admin::replay(&env.js, seq).await, Err(DlqAdminError::NotFound { .. })));
    stop.cancel();
    handle.join().await;
}

#[tokio::test]
async fn a_replay_the_target_stream_does_not_acknowledge_keeps_the_dead_letter() {
    let env = setup().await;
    let stop = CancellationToken::new();
    let handle = run_inventory(&env, usize::MAX, Arc::default(), &stop);
    publish_order(&env, "corr-kept").await;
    let seq = wait_dlq(&env, 1).await[0].seq;
    stop.cancel();
    handle.join().await;
    env.js.delete_stream("ORDERS").await.unwrap();

    let failed = dlq_admin::replay(&env.js, seq).await;

    assert!(matches!(failed, Err(DlqAdminError::Publish { seq: s, .. }) if s == seq), "{failed:?}");
    assert_eq!(dlq_admin::get(&env.js, seq).await.unwrap().seq, seq, "the dead letter is kept");
    let outcomes = dlq_admin::replay_matching(&env.js, &Filter::default()).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(matches!(outcomes[0].result, Err(DlqAdminError::Publish { .. })));
    assert_eq!(seqs(&dlq_admin::list(&env.js, &Filter::default()).await.unwrap()), [seq]);

    // The stream is back: the same dead letter replays.
    provision(&env.js, &topology()).await.unwrap();
    let replayed = dlq_admin::replay(&env.js, seq).await.unwrap();
    assert_eq!((replayed.stream.as_str(), replayed.stream_seq), ("ORDERS", 1));
    assert_eq!(stream_messages(&env, "ORDERS").await, 1);
    assert_eq!(stream_messages(&env, "DLQ").await, 0);
}

#[tokio::test]
async fn replay_matching_replays_each_match_to_its_own_subject() {
    let env = setup().await;
    let all = four_dead_letters(&env).await;
    let orders_before = stream_messages(&env, "ORDERS").await;

    let outcomes = dlq_admin::replay_matching(
        &env.js,
        &Filter { reason: Some(DlqReason::PermanentError), ..Filter::default() },
    )
    .await
    .unwrap();

    assert_eq!(outcomes.len(), 2);
    for o in &outcomes {
        let r = o.result.as_ref().unwrap();
        assert_eq!((o.original_subject.as_str(), r.stream.as_str()), ("orders.created.v1", "ORDERS"));
    }
    assert_eq!(stream_messages(&env, "ORDERS").await, orders_before + 2);
    let left = dlq_admin::list(&env.js, &Filter::default()).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|r| r.reason != Some(DlqReason::PermanentError)));

    let payment = dlq_admin::replay(&env.js, all[3].seq).await.unwrap();
    assert_eq!(
        (payment.original_subject.as_str(), payment.stream.as_str()),
        ("inventory.reserved.v1", "INVENTORY")
    );
    let stored =
        env.js.get_stream("INVENTORY").await.unwrap().get_raw_message(payment.stream_seq).await.unwrap();
    assert_eq!(
        stored.headers.get(headers::NATS_MSG_ID).unwrap().as_str(),
        format!("replay:{}:event-payment-inventory-reserved", all[3].seq)
    );
}

#[tokio::test]
async fn purge_with_a_filter_removes_only_the_matches() {
    let env = setup().await;
    let all = four_dead_letters(&env).await;

    let by_reason =
        dlq_admin::purge(&env.js, &Filter { reason: Some(DlqReason::Malformed), ..Filter::default() })
            .await
            .unwrap();
    let by_subject =
        dlq_admin::purge(&env.js, &Filter { subject: Some("inventory.>".into()), ..Filter::default() })
            .await
            .unwrap();

    assert_eq!((by_reason, by_subject), (1, 1));
    let left = dlq_admin::list(&env.js, &Filter::default()).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|r| r.reason == Some(DlqReason::PermanentError)));
    assert!(left.iter().all(|r| all[..3].iter().any(|a| a.seq == r.seq)));
    assert_eq!(stream_messages(&env, "ORDERS").await, 3, "purging the DLQ leaves the events alone");
}

#[tokio::test]
async fn purge_without_a_filter_empties_the_dlq() {
    let env = setup().await;
    four_dead_letters(&env).await;

    let purged = dlq_admin::purge(&env.js, &Filter::default()).await.unwrap();

    assert_eq!(purged, 4);
    assert!(dlq_admin::list(&env.js, &Filter::default()).await.unwrap().is_empty());
    assert_eq!(dlq_admin::purge(&env.js, &Filter::default()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_retried_replay_inside_the_duplicate_window_is_stored_once() {
    let env = setup().await;
    let all = four_dead_letters(&env).await;
    let letter = &all[0];
    // A first attempt whose publish was acknowledged but whose delete never happened.
    env.js
        .publish_with_headers(
            letter.original_subject.clone(),
            letter.replay_headers(),
            letter.payload.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let orders_before = stream_messages(&env, "ORDERS").await;

    let replayed = dlq_admin::replay(&env.js, letter.seq).await.unwrap();

    assert!(replayed.duplicate);
    assert_eq!(stream_messages(&env, "ORDERS").await, orders_before);
    assert!(matches!(dlq_admin::get(&env.js, letter.seq).await, Err(DlqAdminError::NotFound { .. })));
}

#[tokio::test]
async fn a_dlq_without_direct_gets_is_read_from_the_stream_leader() {
    let env = setup().await;
    let all = four_dead_letters(&env).await;
    let mut config = env.js.get_stream("DLQ").await.unwrap().info().await.unwrap().config.clone();
    config.allow_direct = false;
    env.js.update_stream(config).await.unwrap();

    let orders = dlq_admin::list(
        &env.js,
        &Filter { subject: Some("orders.>".into()), since: Some(all[1].time), ..Filter::default() },
    )
    .await
    .unwrap();

    assert_eq!(seqs(&orders), seqs(&all[1..3]));
    assert_eq!(
        dlq_admin::get(&env.js, all[3].seq).await.unwrap().consumer.as_deref(),
        Some("payment-inventory-reserved")
    );
}

#[tokio::test]
async fn the_dead_letters_of_one_event_from_two_consumers_are_replayed_by_one_publish() {
    let env = setup().await;
    let subject = "payments.completed.v1";
    let a = publish_dead_letter_of(
        &env,
        subject,
        "order-payments-completed",
        DlqReason::SchemaInvalid,
        ("e-1", 1),
    )
    .await;
    let b = publish_dead_letter_of(
        &env,
        subject,
        "inventory-payments-completed",
        DlqReason::SchemaInvalid,
        ("e-1", 1),
    )
    .await;
    let other = publish_dead_letter_of(
        &env,
        subject,
        "order-payments-completed",
        DlqReason::SchemaInvalid,
        ("e-2", 2),
    )
    .await;

    let outcomes = dlq_admin::replay_matching(&env.js, &Filter::default()).await.unwrap();

    let replayed: Vec<_> = outcomes.iter().map(|o| o.result.as_ref().unwrap()).collect();
    assert_eq!(replayed.iter().map(|r| r.seq).collect::<Vec<_>>(), [a, b, other]);
    assert_eq!(replayed[0].stream_seq, replayed[1].stream_seq, "one publish for both");
    assert_eq!(replayed[0].message_id, format!("replay:{a}:e-1"));
    assert_eq!(replayed[1].message_id, replayed[0].message_id);
    assert_ne!(replayed[2].stream_seq, replayed[0].stream_seq);
    assert_eq!(stream_messages(&env, "PAYMENTS").await, 2);
    assert_eq!(stream_messages(&env, "DLQ").await, 0);
}

#[tokio::test]
async fn a_replay_to_a_subject_no_consumer_subscribes_to_keeps_the_dead_letter() {
    let env = setup().await;
    let seq =
        publish_dead_letter(&env, "orders.created.v1", "inventory-orders-created", DlqReason::UnknownType)
            .await;
    // v1 retired: the only consumer of ORDERS left takes orders.created.v2.
    let stream = env.js.get_stream("ORDERS").await.unwrap();
    let names: Vec<String> = {
        use futures_util::TryStreamExt as _;
        stream.consumer_names().try_collect().await.unwrap()
    };
    for name in names {
        stream.delete_consumer(&name).await.unwrap();
    }
    let v2_only = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("inventory-orders-created".into()),
        filter_subject: "orders.created.v2".into(),
        ..Default::default()
    };
    stream.create_consumer(v2_only).await.unwrap();

    let refused = dlq_admin::replay(&env.js, seq).await;

    assert!(
        matches!(&refused, Err(DlqAdminError::Unsubscribed { subject, .. }) if subject == "orders.created.v1"),
        "{refused:?}"
    );
    assert_eq!(stream_messages(&env, "ORDERS").await, 0, "nothing was republished");
    assert_eq!(dlq_admin::get(&env.js, seq).await.unwrap().seq, seq, "the dead letter is kept");

    // v1 accepted again: the same dead letter replays.
    provision(&env.js, &topology()).await.unwrap();
    dlq_admin::replay(&env.js, seq).await.unwrap();
    assert_eq!(stream_messages(&env, "ORDERS").await, 1);
}
