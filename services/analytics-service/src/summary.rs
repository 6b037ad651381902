//! `GET /analytics/summary`: the read model as one JSON document, read in one snapshot.

use std::collections::BTreeMap;

use orderflow_platform::Db;
use orderflow_platform::args;
use orderflow_platform::sql::{SqlError, Tx};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fold::Step;
use crate::latency::Percentiles;

/// Minutes in `per_minute`: the last hour, the current minute included.
pub const WINDOW_MINUTES: i64 = 60;

/// Products in `top_products`.
pub const TOP_PRODUCTS: i64 = 10;

/// The summary (SPEC: Analytics). Fields beyond the contract's (`flow`, `top_products`,
/// per-minute percentiles, `as_of`) are additive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Orders accepted, confirmed and cancelled, all time.
    pub totals: Totals,
    /// Cancellations by reason (`out_of_stock`, …).
    pub cancelled_by_reason: BTreeMap<String, i64>,
    /// Confirmed revenue per currency, in cents.
    pub revenue_cents: BTreeMap<String, i64>,
    /// Created → terminal latency over all orders, from the events' times.
    pub latency_ms: Latency,
    /// Accepted orders not yet confirmed or cancelled.
    pub in_flight: i64,
    /// The last [`WINDOW_MINUTES`] minutes, oldest first, minutes without events included.
    pub per_minute: Vec<Minute>,
    /// Events seen per saga step (`created`, `reserved`, `rejected`, `paid`, `payment_failed`,
    /// `released`, `confirmed`, `cancelled`).
    pub flow: BTreeMap<String, i64>,
    /// The most ordered products, by units.
    pub top_products: Vec<ProductCount>,
    /// When the summary was read (RFC 3339).
    pub as_of: String,
}

/// Order counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// `orders.created`.
    pub accepted: i64,
    /// `orders.confirmed`.
    pub confirmed: i64,
    /// `orders.cancelled`.
    pub cancelled: i64,
}

/// Latency percentiles in milliseconds; `null` before any order ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
}

/// One minute of the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// Its start (RFC 3339).
    pub minute: String,
    /// Orders accepted in it.
    pub accepted: i64,
    /// Orders confirmed in it.
    pub confirmed: i64,
    /// Orders cancelled in it.
    pub cancelled: i64,
    /// Revenue confirmed in it, per currency.
    pub revenue_cents: BTreeMap<String, i64>,
    /// Latency of the orders that ended in it.
    pub latency_ms: Latency,
}

/// A product's orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCount {
    /// The product.
    pub product_id: String,
    /// Units ordered.
    pub quantity: i64,
    /// Orders with it.
    pub orders: i64,
}

/// Reads the summary at `now`.
///
/// # Errors
/// The database failed.
pub async fn read(db: &Db, now: OffsetDateTime) -> Result<Summary, SqlError> {
    db.read_snapshot(move |tx| Box::pin(async move { read_in(tx, now).await })).await
}

async fn read_in(tx: &mut Tx, now: OffsetDateTime) -> Result<Summary, SqlError> {
    let row = tx
        .query_one(
            "SELECT CAST(COALESCE(SUM(accepted), 0) AS BIGINT), CAST(COALESCE(SUM(confirmed), 0) AS BIGINT), \
             CAST(COALESCE(SUM(cancelled), 0) AS BIGINT) FROM analytics_minutes",
            &[],
        )
        .await?;
    let totals = Totals { accepted: row.int(0)?, confirmed: row.int(1)?, cancelled: row.int(2)? };
    let cancelled_by_reason = pairs(tx, "SELECT reason, n FROM analytics_reasons", &[]).await?;
    let revenue_cents = pairs(tx, "SELECT currency, cents FROM analytics_revenue_total", &[]).await?;
    let mut flow = pairs(tx, "SELECT step, n FROM analytics_flow", &[]).await?;
    for step in Step::ALL {
        flow.entry(step.as_str().to_owned()).or_insert(0);
    }
    let total_latency = counts(tx, "SELECT bucket, n FROM analytics_latency_total", &[]).await?;
    let latency_ms = latency(total_latency);

    let last = crate::fold::minute_of(now);
    let first = last - (WINDOW_MINUTES - 1) * 60;
    let per_minute = window(tx, first, last).await?;

    let products = tx
        .query_all(
            "SELECT product_id, quantity, orders FROM analytics_products \
             ORDER BY quantity DESC, product_id ASC LIMIT $1",
            args![TOP_PRODUCTS],
        )
        .await?;
    let top_products = products
        .iter()
        .map(|r| Ok(ProductCount { product_id: r.text(0)?, quantity: r.int(1)?, orders: r.int(2)? }))
        .collect::<Result<_, SqlError>>()?;

    Ok(Summary {
        totals,
        cancelled_by_reason,
        revenue_cents,
        latency_ms,
        in_flight: (totals.accepted - totals.confirmed - totals.cancelled).max(0),
        per_minute,
        flow,
        top_products,
        as_of: rfc3339(now.unix_timestamp()),
    })
}

/// The minutes `first..=last` (Unix seconds of minute starts), zero-filled.
async fn window(tx: &mut Tx, first: i64, last: i64) -> Result<Vec<Minute>, SqlError> {
    let mut minutes: BTreeMap<i64, Minute> = (0..WINDOW_MINUTES)
        .map(|i| {
            let m = first + i * 60;
            (
                m,
                Minute {
                    minute: rfc3339(m),
                    accepted: 0,
                    confirmed: 0,
                    cancelled: 0,
                    revenue_cents: BTreeMap::new(),
                    latency_ms: Latency::default(),
                },
            )
        })
        .collect();
    let rows = tx
        .query_all(
            "SELECT minute, accepted, confirmed, cancelled FROM analytics_minutes \
             WHERE minute >= $1 AND minute <= $2",
            args![first, last],
        )
        .await?;
    for r in &rows {
        if let Some(m) = minutes.get_mut(&r.int(0)?) {
            (m.accepted, m.confirmed, m.cancelled) = (r.int(1)?, r.int(2)?, r.int(3)?);
        }
    }
    let rows = tx
        .query_all(
            "SELECT minute, currency, cents FROM analytics_revenue WHERE minute >= $1 AND minute <= $2",
            args![first, last],
        )
        .await?;
    for r in &rows {
        if let Some(m) = minutes.get_mut(&r.int(0)?) {
            m.revenue_cents.insert(r.text(1)?, r.int(2)?);
        }
    }
    let rows = tx
        .query_all(
            "SELECT minute, bucket, n FROM analytics_latency WHERE minute >= $1 AND minute <= $2",
            args![first, last],
        )
        .await?;
    let mut buckets: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for r in &rows {
        buckets.entry(r.int(0)?).or_default().push((r.int(1)?, r.int(2)?));
    }
    for (minute, counts) in buckets {
        if let Some(m) = minutes.get_mut(&minute) {
            m.latency_ms = latency(counts);
        }
    }
    Ok(minutes.into_values().collect())
}

fn latency(counts: Vec<(i64, i64)>) -> Latency {
    let p = Percentiles::from_counts(counts);
    Latency { p50: p.at(0.5), p99: p.at(0.99) }
}

async fn pairs(
    tx: &mut Tx,
    sql: &str,
    params: &[orderflow_platform::sql::Param<'_>],
) -> Result<BTreeMap<String, i64>, SqlError> {
    let rows = tx.query_all(sql, params).await?;
    rows.iter().map(|r| Ok((r.text(0)?, r.int(1)?))).collect()
}

async fn counts(
    tx: &mut Tx,
    sql: &str,
    params: &[orderflow_platform::sql::Param<'_>],
) -> Result<Vec<(i64, i64)>, SqlError> {
    let rows = tx.query_all(sql, params).await?;
    rows.iter().map(|r| Ok((r.int(0)?, r.int(1)?))).collect()
}

/// A Unix second as RFC 3339 (UTC).
fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}
