//! `spawn_app` (the shared harness), the summary calls and event builders.

use analytics_service::{AnalyticsService, Settings, Summary};
use orderflow_events::{
    CancelReason, CorrelationId, Currency, CustomerId, Envelope, Event, OrderCancelled, OrderConfirmed,
    OrderCreated, OrderId, OrderItem, Priority, ProductId, Quantity,
};
use orderflow_test_support::service::{TEST_CORRELATION_ID, TEST_SOURCE, TestService, WAIT};
use orderflow_test_support::{DbBackend, eventually};
use time::OffsetDateTime;

/// The running analytics service: the shared harness, with the summary calls of [`Summaries`].
pub type TestApp = TestService<AnalyticsService>;

pub async fn spawn_app(backend: DbBackend) -> TestApp {
    TestService::spawn(backend).await
}

pub async fn spawn_with(backend: DbBackend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestService::spawn_with(backend, configure).await
}

/// The analytics API's own calls.
pub trait Summaries {
    /// `GET /analytics/summary`.
    async fn summary(&self) -> Summary;
    /// Waits until the summary satisfies `ok`.
    async fn wait_summary(&self, what: &str, ok: impl Fn(&Summary) -> bool) -> Summary;
}

impl Summaries for TestApp {
    async fn summary(&self) -> Summary {
        let res = self.get("/analytics/summary").await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn wait_summary(&self, what: &str, ok: impl Fn(&Summary) -> bool) -> Summary {
        eventually(WAIT, what, || async {
            let s = self.summary().await;
            ok(&s).then_some(s)
        })
        .await
        .unwrap()
    }
}

pub fn envelope<T: Event>(data: T, at: OffsetDateTime) -> Envelope<T> {
    let mut env = Envelope::new(TEST_SOURCE, CorrelationId::parse(TEST_CORRELATION_ID).unwrap(), data);
    env.time = at;
    env
}

pub fn created(order_id: OrderId, lines: &[(&str, u32)], at: OffsetDateTime) -> Envelope<OrderCreated> {
    let items = lines
        .iter()
        .map(|(p, q)| OrderItem {
            product_id: ProductId::parse(*p).unwrap(),
            quantity: Quantity::parse(*q).unwrap(),
        })
        .collect();
    envelope(
        OrderCreated {
            order_id,
            customer_id: CustomerId::parse("c-1").unwrap(),
            items,
            priority: Priority::Standard,
        },
        at,
    )
}

pub fn confirmed(
    order_id: OrderId,
    cents: i64,
    currency: &str,
    at: OffsetDateTime,
) -> Envelope<OrderConfirmed> {
    envelope(
        OrderConfirmed { order_id, total_cents: cents, currency: Currency::parse(currency).unwrap() },
        at,
    )
}

pub fn cancelled(order_id: OrderId, reason: CancelReason, at: OffsetDateTime) -> Envelope<OrderCancelled> {
    envelope(OrderCancelled { order_id, reason }, at)
}

/// The start of the current minute, minus `minutes_ago` minutes, plus `secs` seconds.
pub fn minute(minutes_ago: i64, secs: i64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    OffsetDateTime::from_unix_timestamp(now - now.rem_euclid(60) - minutes_ago * 60 + secs).unwrap()
}

/// The summary's entry for the minute `at` is in.
pub fn minute_entry(summary: &Summary, at: OffsetDateTime) -> &analytics_service::summary::Minute {
    let start = at.replace_second(0).unwrap().replace_nanosecond(0).unwrap();
    let name = start.format(&time::format_description::well_known::Rfc3339).unwrap();
    summary.per_minute.iter().find(|m| m.minute == name).unwrap_or_else(|| panic!("no minute {name}"))
}
