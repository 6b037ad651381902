//! The five invariants of SPEC.md, checked from the services' databases, the gateway's charge
//! records and the DLQ once the system is quiet. Used by the end-to-end tests (after every test)
//! and by the fault-injection suite.
//!
//! 1. Every accepted order is `confirmed` or `cancelled`; none is left `pending`.
//! 2. Stock is conserved (initial = available + reserved + committed, per product) and never
//!    negative; each product's `reserved` and `committed` equal the sums of its reservations.
//! 3. At most one successful charge per order; exactly one per confirmed order, for its total;
//!    none for a cancelled order.
//! 4. Every dead letter carries a known reason (its count by reason is reported).
//! 5. A confirmed order's reservation is committed; a cancelled order's is released (or was never
//!    made).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use inventory_service::domain::ReservationStatus;
use order_service::domain::OrderStatus;
use orderflow_events::subjects;
use orderflow_messaging::connect::server_list;
use orderflow_platform::Db;
use serde::{Deserialize, Serialize};

use crate::system::DbTarget;

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// 1–5, as numbered in SPEC.md.
    pub invariant: u8,
    /// The order or product involved.
    pub subject: String,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invariant {} ({}): {}", self.invariant, self.subject, self.detail)
    }
}

/// What the checker saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Orders in the order database.
    pub orders: usize,
    /// Confirmed ones.
    pub confirmed: usize,
    /// Cancelled ones, by reason.
    pub cancelled: BTreeMap<String, usize>,
    /// Still pending.
    pub pending: usize,
    /// Successful charges at the gateway.
    pub charges_succeeded: usize,
    /// Dead letters by reason.
    pub dlq: BTreeMap<String, usize>,
    /// Everything that is wrong.
    pub violations: Vec<Violation>,
}

impl Report {
    /// No violations.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Where to look.
#[derive(Clone, Debug)]
pub struct Targets {
    /// The services' databases.
    pub databases: Vec<DbTarget>,
    /// Gateway base URL (for `GET /admin/charges`).
    pub gateway_url: String,
    /// The admin token `/admin/charges` asks for.
    pub admin_token: String,
    /// NATS, for the DLQ.
    pub nats_url: String,
    /// The admin identity's seed or credentials file, when the server requires one.
    pub nats_creds: Option<std::path::PathBuf>,
    /// TLS to NATS (the CA that signed the servers' certificates), when it uses TLS.
    pub nats_tls: orderflow_messaging::NatsTls,
}

/// A client of `targets`' NATS server, as the admin identity when it has credentials.
async fn nats_client(targets: &Targets) -> anyhow::Result<async_nats::Client> {
    let options =
        orderflow_messaging::connect::tool_options(targets.nats_creds.as_deref(), &targets.nats_tls)?;
    Ok(options.connect(server_list(&targets.nats_url).as_slice()).await?)
}

#[derive(Deserialize)]
struct Charges {
    charges: Vec<Charge>,
}

#[derive(Deserialize)]
struct Charge {
    order_id: String,
    amount_cents: i64,
    status: String,
}

/// Checks every invariant. `accepted` are the order ids answered with 202; `initial_stock` is the
/// per-product total (available + reserved + committed) before the run, when known.
pub async fn check(
    targets: &Targets,
    accepted: &[String],
    initial_stock: Option<&BTreeMap<String, i64>>,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let db_of = |service: &str| {
        targets
            .databases
            .iter()
            .find(|d| d.service == service)
            .with_context(|| format!("no {service} database"))
    };

    // Orders.
    let order_db = db_of("order")?;
    let orders_db = Db::open(&order_db.url, &order_db.schema).await?;
    let summaries = order_service::audit::orders(&orders_db).await;
    orders_db.close().await;
    let mut orders: HashMap<String, (OrderStatus, Option<i64>)> = HashMap::new();
    for o in summaries.context("reading the orders")? {
        match o.status {
            OrderStatus::Confirmed => report.confirmed += 1,
            OrderStatus::Cancelled => {
                *report.cancelled.entry(o.reason.unwrap_or_else(|| "none".into())).or_default() += 1;
            }
            OrderStatus::Pending => report.pending += 1,
        }
        orders.insert(o.order_id, (o.status, o.total_cents));
    }
    report.orders = orders.len();
    let mut violations = Vec::new();
    for id in accepted {
        match orders.get(id) {
            None => violations.push(violation(1, id, "accepted with 202 but not stored".into())),
            Some((s, _)) if *s == OrderStatus::Pending => {
                violations.push(violation(1, id, "still pending".into()))
            }
            _ => {}
        }
    }
    for (id, (s, _)) in &orders {
        if *s == OrderStatus::Pending && !accepted.contains(id) {
            violations.push(violation(1, id, "still pending".into()));
        }
    }

    // Stock and reservations, from one snapshot.
    let inv_target = db_of("inventory")?;
    let inv = Db::open(&inv_target.url, &inv_target.schema).await?;
    let ledger = inventory_service::audit::ledger(&inv).await;
    inv.close().await;
    let ledger = ledger.context("reading the inventory's ledger")?;
    let mut want: HashMap<String, (i64, i64)> = HashMap::new();
    let mut reservation_of: HashMap<String, ReservationStatus> = HashMap::new();
    for r in ledger.reservations {
        for (product_id, quantity) in r.lines {
            let e = want.entry(product_id).or_default();
            match r.status {
                ReservationStatus::Reserved => e.0 += quantity,
                ReservationStatus::Committed => e.1 += quantity,
                ReservationStatus::Released => {}
            }
        }
        reservation_of.insert(r.order_id, r.status);
    }
    for p in &ledger.products {
        let id = &p.product_id;
        let (available, reserved, committed) = (p.available, p.reserved, p.committed);
        if available < 0 || reserved < 0 || committed < 0 {
            violations.push(violation(2, id, format!("negative stock: {available}/{reserved}/{committed}")));
        }
        let (want_reserved, want_committed) = want.get(id).copied().unwrap_or_default();
        if (reserved, committed) != (want_reserved, want_committed) {
            violations.push(violation(
                2,
                id,
                format!(
                    "reserved/committed {reserved}/{committed} but reservations say {want_reserved}/{want_committed}"
                ),
            ));
        }
        if let Some(initial) = initial_stock.and_then(|s| s.get(id))
            && available + reserved + committed != *initial
        {
            violations.push(violation(
                2,
                id,
                format!(
                    "initial {initial} != available {available} + reserved {reserved} + committed {committed}"
                ),
            ));
        }
    }

    // Charges.
    let charges: Charges =
        reqwest_get_json(&format!("{}/admin/charges", targets.gateway_url), &targets.admin_token).await?;
    let mut succeeded: HashMap<String, Vec<i64>> = HashMap::new();
    for c in charges.charges.iter().filter(|c| c.status == "succeeded") {
        succeeded.entry(c.order_id.clone()).or_default().push(c.amount_cents);
        report.charges_succeeded += 1;
    }
    for (id, amounts) in &succeeded {
        if amounts.len() > 1 {
            violations.push(violation(3, id, format!("{} successful charges", amounts.len())));
        }
        if let Some((OrderStatus::Cancelled, _)) = orders.get(id) {
            violations.push(violation(3, id, "cancelled but charged".into()));
        }
    }
    for (id, (s, total)) in &orders {
        match s {
            OrderStatus::Confirmed => {
                match succeeded.get(id).map(Vec::as_slice) {
                    Some([amount]) if Some(*amount) == *total => {}
                    Some([amount]) => {
                        violations.push(violation(3, id, format!("charged {amount}, total {total:?}")))
                    }
                    _ => violations.push(violation(3, id, "confirmed without exactly one charge".into())),
                }
                if reservation_of.get(id) != Some(&ReservationStatus::Committed) {
                    violations.push(violation(
                        5,
                        id,
                        format!(
                            "confirmed but reservation is {:?}",
                            reservation_of.get(id).map(|r| r.as_str())
                        ),
                    ));
                }
            }
            OrderStatus::Cancelled => {
                if let Some(r) = reservation_of.get(id)
                    && *r != ReservationStatus::Released
                {
                    violations.push(violation(5, id, format!("cancelled but reservation is {}", r.as_str())));
                }
            }
            OrderStatus::Pending => {}
        }
    }

    // Dead letters.
    report.dlq = dlq_reasons(targets).await?;
    for reason in report.dlq.keys() {
        if reason.parse::<orderflow_messaging::DlqReason>().is_err() {
            violations.push(violation(4, reason, "dead letter without a known reason".into()));
        }
    }
    report.violations = violations;
    Ok(report)
}

/// The streams whose consumers [`wait_until_quiet`] watches: the event streams, and the
/// advisories of messages the server gave up on, which the services' max-deliveries consumers
/// copy to the DLQ.
const WATCHED_STREAMS: [&str; 4] = [
    subjects::STREAM_ORDERS,
    subjects::STREAM_INVENTORY,
    subjects::STREAM_PAYMENTS,
    subjects::STREAM_ADVISORIES,
];

/// Waits until the system is quiet: every durable consumer on the event streams and on
/// `ADVISORIES` (any service's) has nothing pending or un-acked and every outbox is empty, twice
/// in a row (events still in flight, or a message the server gave up on not yet in the DLQ,
/// would make a correct system look broken). Fails after `timeout`.
pub async fn wait_until_quiet(targets: &Targets, timeout: std::time::Duration) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(nats_client(targets).await?);
    let mut dbs = Vec::new();
    for t in &targets.databases {
        dbs.push(Db::open(&t.url, &t.schema).await?);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet_in_a_row = 0;
    let mut busy = String::new();
    while tokio::time::Instant::now() < deadline {
        busy.clear();
        // Every durable consumer on the event streams, whoever owns it (the analytics service's
        // too), not only the saga's; and every max-deliveries consumer.
        'streams: for name in WATCHED_STREAMS {
            let stream = js.get_stream_no_info(name).await?;
            let mut consumers = stream.consumers();
            while let Some(info) = consumers.next().await {
                // A consumer whose state cannot be read (its leader is being elected, a node is
                // frozen) is not known to be idle: it counts as busy, never as quiet.
                match info {
                    Ok(info) if info.num_pending + info.num_ack_pending as u64 > 0 => {
                        busy = format!(
                            "{} has {} pending, {} un-acked",
                            info.name, info.num_pending, info.num_ack_pending
                        );
                    }
                    Ok(_) => {}
                    Err(e) => busy = format!("the consumers of {name} cannot be read: {e}"),
                }
                if !busy.is_empty() {
                    break 'streams;
                }
            }
        }
        if busy.is_empty() {
            for (db, t) in dbs.iter().zip(&targets.databases) {
                let unsent = orderflow_platform::OutboxRelay::backlog(db).await?.unsent;
                if unsent > 0 {
                    busy = format!("{} has {unsent} unsent outbox rows", t.service);
                    break;
                }
            }
        }
        quiet_in_a_row = if busy.is_empty() { quiet_in_a_row + 1 } else { 0 };
        if quiet_in_a_row >= 2 {
            for db in &dbs {
                db.close().await;
            }
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for db in &dbs {
        db.close().await;
    }
    anyhow::bail!("the system did not become quiet within {timeout:?}: {busy}")
}

fn violation(invariant: u8, subject: &str, detail: String) -> Violation {
    Violation { invariant, subject: subject.to_owned(), detail }
}

async fn reqwest_get_json<T: serde::de::DeserializeOwned>(url: &str, admin_token: &str) -> anyhow::Result<T> {
    let res = orderflow_platform::tls::http_client()
        .get(url)
        .bearer_auth(admin_token)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(res.status().is_success(), "GET {url}: HTTP {}", res.status());
    Ok(res.json().await?)
}

/// Counts DLQ messages by `Orderflow-Dlq-Reason`.
pub async fn dlq_reasons(targets: &Targets) -> anyhow::Result<BTreeMap<String, usize>> {
    let js = async_nats::jetstream::new(nats_client(targets).await?);
    let mut out = BTreeMap::new();
    let Ok(mut stream) = js.get_stream(subjects::STREAM_DLQ).await else { return Ok(out) };
    let state = stream.info().await?.state.clone();
    if state.messages == 0 {
        return Ok(out);
    }
    for seq in state.first_sequence..=state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let reason = m
                .headers
                .get(orderflow_messaging::headers::DLQ_REASON)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| "missing".to_owned());
            *out.entry(reason).or_default() += 1;
        }
    }
    Ok(out)
}

/// available + reserved + committed per product, now.
pub async fn stock_totals(inventory: &DbTarget) -> anyhow::Result<BTreeMap<String, i64>> {
    let db = Db::open(&inventory.url, &inventory.schema).await?;
    let totals = inventory_service::audit::stock_totals(&db).await;
    db.close().await;
    Ok(totals?)
}
