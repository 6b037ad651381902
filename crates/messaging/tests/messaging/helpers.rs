//! What both suites share: a nats-server with the orderflow topology provisioned (on a short
//! redelivery schedule), an `orders.created.v1` event to publish, and raw publishing.

use std::time::Duration;

use async_nats::jetstream;
use orderflow_events::{
    CorrelationId, CustomerId, Envelope, OrderCreated, OrderId, OrderItem, Priority, ProductId, Quantity,
};
use orderflow_messaging::{
    ConnectConfig, Publisher, RedeliverySchedule, Topology, connect, headers, topology::provision,
};
use orderflow_test_support::TestNats;

pub const WAIT: Duration = Duration::from_secs(30);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn schedule() -> RedeliverySchedule {
    RedeliverySchedule::new(vec![ms(400), ms(600), ms(800), ms(1000)], 5).unwrap()
}

pub fn topology() -> Topology {
    Topology::orderflow(1).with_schedule(&schedule())
}

pub struct Env {
    pub nats: TestNats,
    pub js: jetstream::Context,
    pub publisher: Publisher,
}

pub async fn setup() -> Env {
    orderflow_telemetry::init_for_tests();
    let nats = TestNats::start().unwrap();
    let mut cfg = ConnectConfig::new(nats.url(), "orderflow/test");
    cfg.max_backoff = ms(200);
    cfg.request_timeout = Duration::from_secs(2);
    let client = connect(&cfg).await.unwrap();
    let js = jetstream::new(client);
    provision(&js, &topology()).await.unwrap();
    Env { nats, publisher: Publisher::new(js.clone()), js }
}

pub fn order_created(correlation: &str) -> Envelope<OrderCreated> {
    let data = OrderCreated::new(
        OrderId::new(),
        CustomerId::parse("customer-1").unwrap(),
        vec![OrderItem {
            product_id: ProductId::parse("sku-001").unwrap(),
            quantity: Quantity::parse(2).unwrap(),
        }],
        Priority::Standard,
    )
    .unwrap();
    Envelope::new("orderflow/test", CorrelationId::parse(correlation).unwrap(), data)
}

pub async fn publish_raw(env: &Env, payload: &'static [u8], id: &str) {
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::NATS_MSG_ID, id);
    env.js.publish_with_headers("orders.created.v1", h, payload.into()).await.unwrap().await.unwrap();
}
