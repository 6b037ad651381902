//! The messaging layer against the raw JetStream ceiling, on one nats-server: plain async-nats
//! pipelined publish and pull-consume-and-ack, then orderflow's `Publisher::publish_all` and
//! `ConsumerRuntime` (decode + schema validation + a no-op handler) on real envelopes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use orderflow_events::{
    CorrelationId, CustomerId, Envelope, EventKind, OrderCreated, OrderId, OrderItem, Priority, ProductId,
    Quantity,
};
use orderflow_messaging::topology::{self, Topology};
use orderflow_messaging::{
    ConsumerRuntime, ConsumerSpec, Delivery, HandlerError, OutgoingMessage, Publisher, RuntimeConfig,
};
use orderflow_natsd::{NatsServer, Options};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Pipeline window of the raw publish (the same as `orderflow_messaging::publish::PIPELINE_WINDOW`).
pub const RAW_WINDOW: usize = 1024;
/// Payload of the raw publish.
pub const RAW_PAYLOAD: usize = 200;
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const RAW_STREAM: &str = "BENCH_RAW";
const RAW_SUBJECT: &str = "bench.raw";

/// Messages per second, raw and through orderflow's layer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JetStreamNumbers {
    /// Messages per measurement.
    pub messages: u64,
    /// Raw payload size (bytes).
    pub raw_payload_bytes: usize,
    /// async-nats publish, `Nats-Msg-Id` + `traceparent`, window of 1024 PubAcks.
    pub raw_publish: f64,
    /// Pull consume + ack, batch 200.
    pub raw_consume_batch_200: f64,
    /// Pull consume + ack, batch 1000.
    pub raw_consume_batch_1000: f64,
    /// Size of the `orders.created.v1` envelope orderflow publishes (bytes).
    pub envelope_bytes: usize,
    /// `Publisher::publish_all` (all messages in one call, windows of 1024).
    pub publish_all: f64,
    /// publish_all / raw publish.
    pub publish_all_ratio: f64,
    /// `ConsumerRuntime` with the services' default tuning (32 handlers, fetch batch 64), no-op
    /// handler after decode and schema validation.
    pub consumer_runtime: f64,
    /// consumer_runtime / best raw consume.
    pub consumer_runtime_ratio: f64,
    /// The same with 256 handlers and fetch batch 256 (what more concurrency would buy).
    pub consumer_runtime_wide: f64,
}

/// Runs every measurement on a fresh nats-server.
pub async fn measure(messages: u64, log: &dyn Fn(String)) -> anyhow::Result<JetStreamNumbers> {
    let dir = tempfile::Builder::new().prefix("orderflow-bench-nats-").tempdir()?;
    let store = dir.path().join("store");
    let mut server = tokio::task::spawn_blocking(move || NatsServer::start(Options::new(store)))
        .await?
        .context("starting a nats-server for the JetStream benchmark")?;
    let result = measure_on(&server.url(), messages, log).await;
    tokio::task::spawn_blocking(move || server.stop(Duration::from_secs(10))).await?;
    result
}

async fn measure_on(url: &str, n: u64, log: &dyn Fn(String)) -> anyhow::Result<JetStreamNumbers> {
    let client = async_nats::connect(url).await.context("connecting to the benchmark nats-server")?;
    let js = jetstream::new(client.clone());
    let mut out = JetStreamNumbers { messages: n, raw_payload_bytes: RAW_PAYLOAD, ..Default::default() };

    out.raw_publish = raw_publish(&js, n).await.context("raw publish")?;
    log(format!("raw JetStream publish (pipelined, window {RAW_WINDOW}): {:.0} msgs/s", out.raw_publish));
    out.raw_consume_batch_200 = raw_consume(&js, n, 200).await.context("raw consume, batch 200")?;
    out.raw_consume_batch_1000 = raw_consume(&js, n, 1000).await.context("raw consume, batch 1000")?;
    log(format!(
        "raw JetStream pull consume + ack: {:.0} msgs/s (batch 200), {:.0} msgs/s (batch 1000)",
        out.raw_consume_batch_200, out.raw_consume_batch_1000
    ));

    let (rate, bytes) = publish_all(&js, n).await.context("Publisher::publish_all")?;
    out.publish_all = rate;
    out.envelope_bytes = bytes;
    out.publish_all_ratio = ratio(rate, out.raw_publish);
    log(format!("orderflow Publisher::publish_all: {rate:.0} msgs/s ({bytes} B envelopes)"));

    let raw_consume_best = out.raw_consume_batch_200.max(out.raw_consume_batch_1000);
    out.consumer_runtime =
        consume_with_runtime(&js, n, "bench", RuntimeConfig::default()).await.context("ConsumerRuntime")?;
    out.consumer_runtime_ratio = ratio(out.consumer_runtime, raw_consume_best);
    let wide = RuntimeConfig { concurrency: 256, fetch_batch: 256, ..RuntimeConfig::default() };
    out.consumer_runtime_wide =
        consume_with_runtime(&js, n, "benchwide", wide).await.context("ConsumerRuntime (wide)")?;
    log(format!(
        "orderflow ConsumerRuntime (decode + schema + no-op handler): {:.0} msgs/s (default tuning), {:.0} msgs/s (256 handlers)",
        out.consumer_runtime, out.consumer_runtime_wide
    ));
    client.flush().await.ok();
    Ok(out)
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn per_second(n: u64, since: Instant) -> f64 {
    n as f64 / since.elapsed().as_secs_f64().max(1e-9)
}

async fn raw_publish(js: &jetstream::Context, n: u64) -> anyhow::Result<f64> {
    js.create_stream(stream::Config {
        name: RAW_STREAM.to_owned(),
        subjects: vec![RAW_SUBJECT.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        duplicate_window: topology::DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await?;
    let payload = Bytes::from(vec![b'x'; RAW_PAYLOAD]);
    let start = Instant::now();
    let mut window = Vec::with_capacity(RAW_WINDOW);
    for i in 0..n {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("raw-{i}").as_str());
        headers.insert("traceparent", TRACEPARENT);
        window.push(js.publish_with_headers(RAW_SUBJECT, headers, payload.clone()).await?);
        if window.len() == RAW_WINDOW {
            for ack in window.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in window.drain(..) {
        ack.await?;
    }
    Ok(per_second(n, start))
}

async fn raw_consume(js: &jetstream::Context, n: u64, batch: usize) -> anyhow::Result<f64> {
    let stream = js.get_stream(RAW_STREAM).await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(format!("bench-raw-{batch}")),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: i64::try_from(batch * 4).unwrap_or(i64::MAX),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.stream().max_messages_per_batch(batch).messages().await?;
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        let next = tokio::time::timeout(Duration::from_secs(30), messages.next()).await;
        let msg = match next {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(anyhow::anyhow!("pull failed: {e}")),
            Ok(None) => anyhow::bail!("the message stream ended after {got} messages"),
            Err(_) => anyhow::bail!("no message for 30 s after {got} messages"),
        };
        msg.ack().await.map_err(|e| anyhow::anyhow!("ack failed: {e}"))?;
        got += 1;
    }
    js.client().flush().await?;
    Ok(per_second(n, start))
}

fn envelopes(n: u64) -> anyhow::Result<Vec<OutgoingMessage>> {
    let customer = CustomerId::parse("bench-customer")?;
    let item = OrderItem { product_id: ProductId::parse("sku-001")?, quantity: Quantity::parse(2)? };
    (0..n)
        .map(|_| {
            let created =
                OrderCreated::new(OrderId::new(), customer.clone(), vec![item.clone()], Priority::Standard)?;
            let env = Envelope::new("orderflow/order-service", CorrelationId::generate(), created)
                .with_traceparent(Some(TRACEPARENT.to_owned()));
            Ok(OutgoingMessage::from_envelope(&env, false)?)
        })
        .collect()
}

async fn publish_all(js: &jetstream::Context, n: u64) -> anyhow::Result<(f64, usize)> {
    let streams_only = Topology { streams: Topology::orderflow(1).streams, consumers: Vec::new() };
    topology::provision(js, &streams_only).await?;
    let msgs = envelopes(n)?;
    let bytes = msgs.first().map_or(0, |m| m.payload.len());
    let publisher = Publisher::new(js.clone());
    let start = Instant::now();
    let results = publisher.publish_all(&msgs).await;
    let rate = per_second(n, start);
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} of {n} publishes failed");
    Ok((rate, bytes))
}

async fn consume_with_runtime(
    js: &jetstream::Context,
    n: u64,
    service: &str,
    config: RuntimeConfig,
) -> anyhow::Result<f64> {
    let spec = ConsumerSpec::for_event(service, EventKind::OrdersCreated);
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let handler = move |_d: Delivery<OrderCreated>| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok::<(), HandlerError>(())
        }
    };
    let stop = CancellationToken::new();
    let start = Instant::now();
    let runtime = ConsumerRuntime::new(js.clone(), spec, handler).with_config(config).spawn(stop.clone());
    let deadline = start + Duration::from_secs(300);
    while handled.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} messages handled in 300 s",
            handled.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = per_second(n, start);
    stop.cancel();
    runtime.join().await;
    Ok(rate)
}
