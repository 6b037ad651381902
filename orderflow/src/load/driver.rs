//! Places orders over HTTP and counts what happened: one `reqwest` client (HTTP/1.1 keep-alive,
//! a connection per concurrent request, reused), the `202` latency from the scheduled time and
//! from the actual send, duplicate-key checks, and error counts by kind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::config::OrderMix;
use super::latency::Latency;
use super::tracker::Tracker;

/// Standard or express.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// `"priority": "standard"`.
    Standard,
    /// `"priority": "express"`.
    Express,
}

impl Lane {
    fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Express => "express",
        }
    }
}

/// Counters shared by every request of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Orders sent (first sends only).
    pub sent: AtomicU64,
    /// Answered `202`.
    pub accepted: AtomicU64,
    /// Failed (transport error or another status).
    pub errors: AtomicU64,
    /// Duplicate-key re-sends.
    pub duplicates_sent: AtomicU64,
    /// Re-sends answered with the same order id.
    pub duplicates_same: AtomicU64,
    /// Re-sends answered with something else.
    pub duplicates_mismatched: AtomicU64,
    /// Requests in flight.
    pub inflight: AtomicU64,
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    error_kinds: BTreeMap<String, u64>,
    first_errors: Vec<String>,
    /// Scheduled → 202.
    accept: Latency,
    /// Sent → 202 (what the server alone took, without the client's queueing).
    accept_service: Latency,
    accepted_ids: Vec<String>,
}

impl Stats {
    fn inner(&self) -> MutexGuard<'_, StatsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, kind: String, detail: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut i = self.inner();
        *i.error_kinds.entry(kind).or_default() += 1;
        if i.first_errors.len() < 5 {
            i.first_errors.push(detail);
        }
    }

    /// Errors by kind (`http_503`, `timeout`, `connect`, …).
    pub fn error_kinds(&self) -> BTreeMap<String, u64> {
        self.inner().error_kinds.clone()
    }

    /// The first few error messages.
    pub fn first_errors(&self) -> Vec<String> {
        self.inner().first_errors.clone()
    }

    /// Scheduled → 202 and sent → 202.
    pub fn accept_latency(&self) -> (Latency, Latency) {
        let i = self.inner();
        (i.accept.clone(), i.accept_service.clone())
    }

    /// Ids of the accepted orders (kept only when the driver was asked to).
    pub fn take_accepted_ids(&self) -> Vec<String> {
        std::mem::take(&mut self.inner().accepted_ids)
    }
}

#[derive(Serialize)]
struct NewOrder<'a> {
    customer_id: &'a str,
    items: [Item<'a>; 1],
    priority: &'static str,
}

#[derive(Serialize)]
struct Item<'a> {
    product_id: &'a str,
    quantity: u32,
}

#[derive(Deserialize)]
struct Accepted {
    order_id: String,
}

/// Sends orders and hands accepted ones to the tracker.
#[derive(Debug)]
pub struct Driver {
    http: reqwest::Client,
    orders_url: String,
    mix: OrderMix,
    tracker: Tracker,
    stats: Arc<Stats>,
    keep_ids: bool,
    run_id: String,
    seq: AtomicU64,
}

/// An HTTP client for load: keep-alive connections, no Nagle delay, bounded requests.
pub fn http_client(request_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    orderflow_platform::tls::http_client_builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .timeout(request_timeout)
        .connect_timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .context("building the HTTP client")
}

impl Driver {
    /// A driver for `order_url`, watching terminal events with `tracker`. `keep_ids` keeps every
    /// accepted order id (for the invariant checker).
    pub fn new(
        http: reqwest::Client,
        order_url: &str,
        mix: OrderMix,
        tracker: Tracker,
        keep_ids: bool,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            http,
            orders_url: format!("{}/orders", order_url.trim_end_matches('/')),
            mix,
            tracker,
            stats,
            keep_ids,
            run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            seq: AtomicU64::new(0),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The terminal-event tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Places one order of the configured mix: express with the mix's share, latency in group 0
    /// (standard) or 1 (express).
    pub async fn place_mixed(&self, scheduled: Instant) {
        let lane = if self.mix.express_share.pick() { Lane::Express } else { Lane::Standard };
        let group = usize::from(lane == Lane::Express);
        self.place(scheduled, lane, group).await;
    }

    /// Places one order on `lane`; its accept → terminal latency goes to `group`.
    pub async fn place(&self, scheduled: Instant, lane: Lane, group: usize) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let customer = format!("load-{}", n % 1000);
        let body = NewOrder {
            customer_id: &customer,
            items: [Item { product_id: self.mix.products.pick(), quantity: self.mix.quantity.pick() }],
            priority: lane.as_str(),
        };
        let Ok(body) = serde_json::to_vec(&body).map(bytes::Bytes::from) else {
            self.stats.error("encode".into(), "could not encode an order".into());
            return;
        };
        let key = self.mix.duplicate_key_share.pick().then(|| format!("load-{}-{n}", self.run_id));
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.stats.inflight.fetch_add(1, Ordering::Relaxed);
        let sent_at = Instant::now();
        let first = self.post(&body, key.as_deref()).await;
        let answered = Instant::now();
        self.stats.inflight.fetch_sub(1, Ordering::Relaxed);
        let order_id = match first {
            Ok(id) => id,
            Err((kind, detail)) => return self.stats.error(kind, detail),
        };
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        {
            let mut i = self.stats.inner();
            i.accept.record(answered.saturating_duration_since(scheduled));
            i.accept_service.record(answered.saturating_duration_since(sent_at));
            if self.keep_ids {
                i.accepted_ids.push(order_id.clone());
            }
        }
        self.tracker.accepted(order_id.clone(), scheduled, group);

        if let Some(key) = key {
            self.stats.duplicates_sent.fetch_add(1, Ordering::Relaxed);
            match self.post(&body, Some(&key)).await {
                Ok(again) if again == order_id => {
                    self.stats.duplicates_same.fetch_add(1, Ordering::Relaxed);
                }
                Ok(again) => {
                    self.stats.duplicates_mismatched.fetch_add(1, Ordering::Relaxed);
                    self.stats.error(
                        "duplicate_mismatch".into(),
                        format!("Idempotency-Key {key}: first {order_id}, then {again}"),
                    );
                }
                Err((kind, detail)) => self.stats.error(format!("duplicate_{kind}"), detail),
            }
        }
    }

    /// POSTs one order; `Ok(order id)` on `202`, else `Err((kind, detail))`.
    async fn post(&self, body: &bytes::Bytes, key: Option<&str>) -> Result<String, (String, String)> {
        let mut req = self
            .http
            .post(&self.orders_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let res = req.send().await.map_err(|e| (transport_kind(&e).to_owned(), e.to_string()))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| (transport_kind(&e).to_owned(), e.to_string()))?;
        if status != reqwest::StatusCode::ACCEPTED {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err((format!("http_{}", status.as_u16()), format!("HTTP {status}: {text}")));
        }
        serde_json::from_slice::<Accepted>(&bytes)
            .map(|a| a.order_id)
            .map_err(|e| ("bad_body".to_owned(), format!("202 without an order id: {e}")))
    }
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    }
}
