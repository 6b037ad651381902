//! Watches the system's terminal order events and matches them to the orders a run placed.
//!
//! A core NATS subscription to `orders.confirmed.v1`, `orders.cancelled.v1`,
//! `orders.cancelled.v2` and their `.express` lanes sees every terminal event the order service
//! publishes (the JetStream stream captures the same subjects). Events are matched by
//! `data.order_id`. An event can arrive before the client has read the `202` that created its
//! order (the saga is fast, the HTTP answer was delayed): such events wait in an "early" map
//! until the order is registered.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use orderflow_events::{EventKind, Version, subjects};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::latency::Latency;

/// Terminal-event subjects, standard and express lanes, every version (an order cancelled for a
/// `currency_mismatch` is announced in v2 only; the second version of a dual-published event
/// finds its order no longer pending and ages out of the early map).
pub const TERMINAL_SUBJECTS: [&str; 6] = [
    subjects::ORDERS_CONFIRMED_V1,
    subjects::ORDERS_CANCELLED_V1,
    subjects::ORDERS_CONFIRMED_V1_EXPRESS,
    subjects::ORDERS_CANCELLED_V1_EXPRESS,
    EventKind::OrdersCancelled.at(Version::V2).subject(),
    EventKind::OrdersCancelled.at(Version::V2).express_subject(),
];

/// Early events older than this are dropped: they belong to someone else's orders.
const EARLY_TTL: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
enum Outcome {
    Confirmed,
    Cancelled(String),
}

#[derive(Debug)]
struct Pending {
    scheduled: Instant,
    group: usize,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<String, Pending>,
    early: HashMap<String, (Instant, Outcome)>,
    /// Scheduled → confirmed, per group.
    confirmed_latency: Vec<Latency>,
    /// Scheduled → cancelled, all groups.
    cancelled_latency: Latency,
    confirmed: u64,
    cancelled: BTreeMap<String, u64>,
    first_scheduled: Option<Instant>,
    last_terminal: Option<Instant>,
    undecodable: u64,
}

impl State {
    fn finish(&mut self, p: &Pending, at: Instant, outcome: Outcome) {
        let latency = at.saturating_duration_since(p.scheduled);
        match outcome {
            Outcome::Confirmed => {
                self.confirmed += 1;
                if let Some(l) = self.confirmed_latency.get_mut(p.group) {
                    l.record(latency);
                }
            }
            Outcome::Cancelled(reason) => {
                *self.cancelled.entry(reason).or_default() += 1;
                self.cancelled_latency.record(latency);
            }
        }
        self.last_terminal = Some(self.last_terminal.map_or(at, |t| t.max(at)));
    }
}

/// What the tracker saw, at the end of a run.
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    /// Confirmed orders.
    pub confirmed: u64,
    /// Cancelled orders by reason.
    pub cancelled: BTreeMap<String, u64>,
    /// Scheduled → confirmed, per group.
    pub confirmed_latency: Vec<Latency>,
    /// Scheduled → cancelled.
    pub cancelled_latency: Latency,
    /// Earliest scheduled time of a registered order.
    pub first_scheduled: Option<Instant>,
    /// Latest terminal event of a registered order.
    pub last_terminal: Option<Instant>,
    /// Orders still without a terminal event.
    pub pending: Vec<String>,
    /// Events on the terminal subjects without a readable `data.order_id`.
    pub undecodable: u64,
}

/// The subscription and the matching state.
#[derive(Debug)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

#[derive(Deserialize)]
struct Terminal<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    order_id: Cow<'a, str>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tracker {
    /// Connects to `nats_url` and subscribes before returning, so no event of an order placed
    /// afterwards can be missed. `groups` latency distributions are kept (an order names its
    /// group when it is registered).
    pub async fn start(
        nats_url: &str,
        creds: Option<&std::path::Path>,
        tls: &orderflow_messaging::NatsTls,
        groups: usize,
    ) -> anyhow::Result<Self> {
        let client = orderflow_messaging::connect::tool_options(creds, tls)?
            .name("orderflow-load")
            // A core subscription drops messages when its buffer is full; make it deep enough
            // for a long stall of this process.
            .subscription_capacity(1 << 20)
            .connect(orderflow_messaging::connect::server_list(nats_url).as_slice())
            .await
            .with_context(|| format!("connecting to NATS at {nats_url} to watch terminal order events"))?;
        let mut subs = Vec::new();
        for subject in TERMINAL_SUBJECTS {
            subs.push(client.subscribe(subject).await.with_context(|| format!("subscribing to {subject}"))?);
        }
        client.flush().await.context("flushing the subscriptions")?;
        let state = Arc::new(Mutex::new(State {
            confirmed_latency: vec![Latency::new(); groups],
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Keep the client alive for as long as the subscriptions are read.
            let _client = client;
            let mut events = futures_util::stream::select_all(subs);
            while let Some(msg) = events.next().await {
                let at = Instant::now();
                let confirmed = msg.subject.as_str().starts_with("orders.confirmed.");
                let mut s = lock(&shared);
                let Ok(event) = serde_json::from_slice::<Terminal<'_>>(&msg.payload) else {
                    s.undecodable += 1;
                    continue;
                };
                let outcome = if confirmed {
                    Outcome::Confirmed
                } else {
                    Outcome::Cancelled(
                        event.data.reason.map_or_else(|| "unknown".to_owned(), Cow::into_owned),
                    )
                };
                match s.pending.remove(event.data.order_id.as_ref()) {
                    Some(p) => s.finish(&p, at, outcome),
                    None => {
                        s.early.insert(event.data.order_id.into_owned(), (at, outcome));
                    }
                }
            }
        });
        Ok(Self { state, task })
    }

    /// Registers an accepted order: `scheduled` is when it was meant to be sent.
    pub fn accepted(&self, order_id: String, scheduled: Instant, group: usize) {
        let mut s = lock(&self.state);
        s.first_scheduled = Some(s.first_scheduled.map_or(scheduled, |t| t.min(scheduled)));
        let p = Pending { scheduled, group };
        match s.early.remove(&order_id) {
            Some((at, outcome)) => s.finish(&p, at, outcome),
            None => {
                s.pending.insert(order_id, p);
            }
        }
    }

    /// Accepted orders without a terminal event yet.
    pub fn outstanding(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Orders that reached a terminal state.
    pub fn terminal(&self) -> u64 {
        let s = lock(&self.state);
        s.confirmed + s.cancelled.values().sum::<u64>()
    }

    /// Forgets early events nobody claimed (other clients' orders).
    pub fn prune(&self) {
        let now = Instant::now();
        lock(&self.state).early.retain(|_, (at, _)| now.saturating_duration_since(*at) < EARLY_TTL);
    }

    /// Waits until every registered order is terminal, or `deadline`.
    pub async fn wait_quiet(&self, deadline: Instant) -> bool {
        loop {
            if self.outstanding() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops watching and hands over what was seen.
    pub fn finish(&self) -> Outcomes {
        self.task.abort();
        let mut s = lock(&self.state);
        Outcomes {
            confirmed: s.confirmed,
            cancelled: std::mem::take(&mut s.cancelled),
            confirmed_latency: std::mem::take(&mut s.confirmed_latency),
            cancelled_latency: std::mem::take(&mut s.cancelled_latency),
            first_scheduled: s.first_scheduled,
            last_terminal: s.last_terminal,
            pending: s.pending.keys().cloned().collect(),
            undecodable: s.undecodable,
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
