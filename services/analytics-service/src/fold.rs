//! The fold: how one event changes the read model. The live handlers and the rebuild both go
//! through [`fold_event`], so a store rebuilt from the streams is the store the handlers built.
//!
//! Every change is commutative (counters that only add, and a latency recorded by whichever end
//! of an order arrives second), so the result does not depend on the order the events arrive
//! in: the streams are consumed in parallel live and one after the other by the rebuild.

use orderflow_events::v2::{InventoryRejected, OrderCancelled, OrderCreated};
use orderflow_events::{
    Envelope, Event, EventKind, InventoryReleased, InventoryReserved, OrderConfirmed, PaymentCompleted,
    PaymentFailed,
};
use orderflow_messaging::ConsumerSpec;
use orderflow_platform::sql::{SqlError, Tx};
use orderflow_platform::{Db, WriteError, args, inbox};
use time::OffsetDateTime;

use crate::latency;

/// A saga step, as counted on the dashboard's flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `orders.created`.
    Created,
    /// `inventory.reserved`.
    Reserved,
    /// `inventory.rejected`.
    Rejected,
    /// `payments.completed`.
    Paid,
    /// `payments.failed`.
    PaymentFailed,
    /// `inventory.released`.
    Released,
    /// `orders.confirmed`.
    Confirmed,
    /// `orders.cancelled`.
    Cancelled,
}

impl Step {
    /// Every step, in the saga's order.
    pub const ALL: [Step; 8] = [
        Step::Created,
        Step::Reserved,
        Step::Rejected,
        Step::Paid,
        Step::PaymentFailed,
        Step::Released,
        Step::Confirmed,
        Step::Cancelled,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Reserved => "reserved",
            Self::Rejected => "rejected",
            Self::Paid => "paid",
            Self::PaymentFailed => "payment_failed",
            Self::Released => "released",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What an event means to the read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// An order was accepted, with its lines.
    Accepted {
        /// Its id.
        order_id: String,
        /// `(product_id, quantity)` per line.
        lines: Vec<(String, i64)>,
    },
    /// An order was confirmed for `cents` in `currency`.
    Confirmed {
        /// Its id.
        order_id: String,
        /// The amount.
        cents: i64,
        /// The currency.
        currency: String,
    },
    /// An order was cancelled.
    Cancelled {
        /// Its id.
        order_id: String,
        /// Why (`out_of_stock`, …).
        reason: &'static str,
    },
    /// A step in between, only counted.
    Step,
}

/// An event the read model folds (in the newest version of its kind, every version upcast into
/// it): its saga step and its fact.
pub trait Foldable: orderflow_events::Versioned {
    /// The step it counts as.
    const STEP: Step;
    /// Its fact.
    fn fact(&self) -> Fact;
}

macro_rules! step_only {
    ($($ty:ty => $step:ident;)*) => {$(
        impl Foldable for $ty {
            const STEP: Step = Step::$step;
            fn fact(&self) -> Fact {
                Fact::Step
            }
        }
    )*};
}

step_only! {
    InventoryReserved => Reserved;
    InventoryRejected => Rejected;
    InventoryReleased => Released;
    PaymentCompleted => Paid;
    PaymentFailed => PaymentFailed;
}

impl Foldable for OrderCreated {
    const STEP: Step = Step::Created;
    fn fact(&self) -> Fact {
        Fact::Accepted {
            order_id: self.order_id.to_string(),
            lines: self
                .items
                .iter()
                .map(|i| (i.product_id.as_str().to_owned(), i64::from(i.quantity.get())))
                .collect(),
        }
    }
}

impl Foldable for OrderConfirmed {
    const STEP: Step = Step::Confirmed;
    fn fact(&self) -> Fact {
        Fact::Confirmed {
            order_id: self.order_id.to_string(),
            cents: self.total_cents,
            currency: self.currency.as_str().to_owned(),
        }
    }
}

impl Foldable for OrderCancelled {
    const STEP: Step = Step::Cancelled;
    fn fact(&self) -> Fact {
        Fact::Cancelled { order_id: self.order_id.to_string(), reason: self.reason.as_str() }
    }
}

/// The inbox key of `kind`'s events (the standard consumer's name: both lanes share it, and so
/// does the rebuild, so an event folded by one is a duplicate to the others).
pub fn inbox_key(kind: EventKind) -> String {
    ConsumerSpec::for_event(crate::SECTION, kind).durable
}

/// The Unix second of the start of `at`'s minute.
pub fn minute_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60) * 60
}

/// Folds `envelope` into `db`, once, in one unit of the writer's group commit: `false` when its
/// id was folded before (nothing changes then). The live handlers and the rebuild both fold
/// through here.
///
/// # Errors
/// The database failed.
pub async fn fold_event<T: Foldable>(db: &Db, envelope: &Envelope<T>) -> Result<bool, SqlError> {
    let (id, at, fact) = (envelope.id.to_string(), envelope.time, envelope.data.fact());
    db.write(move |tx| Box::pin(async move { apply(tx, <T as Event>::KIND, T::STEP, &id, at, &fact).await }))
        .await
        .map_err(WriteError::into_unit_error)
}

/// Folds one event inside `tx`, once: `false` when its id was folded before.
async fn apply(
    tx: &mut Tx,
    kind: EventKind,
    step: Step,
    event_id: &str,
    at: OffsetDateTime,
    fact: &Fact,
) -> Result<bool, SqlError> {
    if !inbox::first_time(tx, &inbox_key(kind), event_id).await? {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO analytics_flow (step, n) VALUES ($1, 1) ON CONFLICT (step) DO UPDATE SET n = analytics_flow.n + 1",
        args![step.as_str()],
    )
    .await?;
    let minute = minute_of(at);
    let at_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    match fact {
        Fact::Step => {}
        Fact::Accepted { order_id, lines } => {
            count_minute(tx, minute, "accepted").await?;
            for (product_id, quantity) in lines {
                tx.execute(
                    "INSERT INTO analytics_products (product_id, quantity, orders) VALUES ($1, $2, 1) \
                     ON CONFLICT (product_id) DO UPDATE SET quantity = analytics_products.quantity + \
                     excluded.quantity, orders = analytics_products.orders + 1",
                    args![product_id.as_str(), *quantity],
                )
                .await?;
            }
            pair(tx, order_id, End::Created(at_ms)).await?;
        }
        Fact::Confirmed { order_id, cents, currency } => {
            count_minute(tx, minute, "confirmed").await?;
            // Revenue is never negative (the event's schema says so); clamped anyway, so that
            // the saturating sums below cannot overflow either.
            let cents = (*cents).max(0);
            tx.execute(
                "INSERT INTO analytics_revenue (minute, currency, cents) VALUES ($1, $2, $3) \
                 ON CONFLICT (minute, currency) DO UPDATE SET cents = CASE \
                 WHEN analytics_revenue.cents > 9223372036854775807 - excluded.cents THEN 9223372036854775807 \
                 ELSE analytics_revenue.cents + excluded.cents END",
                args![minute, currency.as_str(), cents],
            )
            .await?;
            tx.execute(
                "INSERT INTO analytics_revenue_total (currency, cents) VALUES ($1, $2) \
                 ON CONFLICT (currency) DO UPDATE SET cents = CASE \
                 WHEN analytics_revenue_total.cents > 9223372036854775807 - excluded.cents \
                 THEN 9223372036854775807 ELSE analytics_revenue_total.cents + excluded.cents END",
                args![currency.as_str(), cents],
            )
            .await?;
            pair(tx, order_id, End::Terminal(at_ms)).await?;
        }
        Fact::Cancelled { order_id, reason } => {
            count_minute(tx, minute, "cancelled").await?;
            tx.execute(
                "INSERT INTO analytics_reasons (reason, n) VALUES ($1, 1) \
                 ON CONFLICT (reason) DO UPDATE SET n = analytics_reasons.n + 1",
                args![*reason],
            )
            .await?;
            pair(tx, order_id, End::Terminal(at_ms)).await?;
        }
    }
    Ok(true)
}

async fn count_minute(tx: &mut Tx, minute: i64, column: &'static str) -> Result<(), SqlError> {
    let sql = format!(
        "INSERT INTO analytics_minutes (minute, {column}) VALUES ($1, 1) \
         ON CONFLICT (minute) DO UPDATE SET {column} = analytics_minutes.{column} + 1"
    );
    tx.execute(&sql, args![minute]).await?;
    Ok(())
}

/// One end of an order's latency, in Unix milliseconds.
#[derive(Clone, Copy, Debug)]
enum End {
    Created(i64),
    Terminal(i64),
}

/// Records `end`; when the order's other end is already there, records the latency (in the
/// terminal end's minute) and forgets the order.
async fn pair(tx: &mut Tx, order_id: &str, end: End) -> Result<(), SqlError> {
    let row = tx
        .query_opt(
            "SELECT created_ms, terminal_ms FROM analytics_open_orders WHERE order_id = $1",
            args![order_id],
        )
        .await?;
    let other = match (&row, end) {
        (None, End::Created(ms)) => {
            let sql = "INSERT INTO analytics_open_orders (order_id, created_ms) VALUES ($1, $2)";
            tx.execute(sql, args![order_id, ms]).await?;
            return Ok(());
        }
        (None, End::Terminal(ms)) => {
            let sql = "INSERT INTO analytics_open_orders (order_id, terminal_ms) VALUES ($1, $2)";
            tx.execute(sql, args![order_id, ms]).await?;
            return Ok(());
        }
        (Some(row), End::Created(_)) => row.opt_int(1)?,
        (Some(row), End::Terminal(_)) => row.opt_int(0)?,
    };
    // The same end twice (two terminal events for one order cannot happen; kept safe anyway).
    let Some(other) = other else { return Ok(()) };
    let (created, terminal) = match end {
        End::Created(ms) => (ms, other),
        End::Terminal(ms) => (other, ms),
    };
    let bucket = latency::bucket(terminal.saturating_sub(created));
    let minute = terminal.div_euclid(60_000) * 60;
    tx.execute(
        "INSERT INTO analytics_latency (minute, bucket, n) VALUES ($1, $2, 1) \
         ON CONFLICT (minute, bucket) DO UPDATE SET n = analytics_latency.n + 1",
        args![minute, bucket],
    )
    .await?;
    tx.execute(
        "INSERT INTO analytics_latency_total (bucket, n) VALUES ($1, 1) \
         ON CONFLICT (bucket) DO UPDATE SET n = analytics_latency_total.n + 1",
        args![bucket],
    )
    .await?;
    tx.execute("DELETE FROM analytics_open_orders WHERE order_id = $1", args![order_id]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_keys_are_the_standard_consumer_names() {
        assert_eq!(inbox_key(EventKind::OrdersCreated), "analytics-orders-created");
        assert_eq!(inbox_key(EventKind::PaymentsFailed), "analytics-payments-failed");
    }

    #[test]
    fn minutes_start_on_the_minute_even_before_1970() {
        let at = OffsetDateTime::from_unix_timestamp(125).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(minute_of(at), 120);
        let before = OffsetDateTime::from_unix_timestamp(-1).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(minute_of(before), -60);
    }
}
