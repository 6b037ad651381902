//! `orders.created` (v1 or v2) → reserve every line atomically, or reject the order with nothing
//! reserved.
//!
//! - Unknown products → `inventory.rejected` (`unknown_product`, the unknown ids).
//! - Not enough stock for any line → the stock moves are rolled back (a savepoint of their own)
//!   and `inventory.rejected` (`out_of_stock`, every short product) is recorded with the
//!   claims: nothing stays reserved.
//! - Products priced in a currency other than the one the order asks for (v2's `currency`), or
//!   in more than one currency → the stock moves are rolled back and `inventory.rejected.v2`
//!   (`currency_mismatch`, the products not priced in the order's currency — every product
//!   when the order names none) is recorded: the order is cancelled, nothing stays reserved.
//!   v1 has no such reason, so a service that publishes only v1 dead-letters the order instead
//!   (nothing reserved, nothing recorded; replayable once v2 is published).
//! - Otherwise the reservation is stored and `inventory.reserved.v1` announces it with the unit
//!   prices read under the same row locks as the stock moves.
//!
//! Rejections published as v2 carry per-product detail: units requested, units available (read
//! after the stock moves were undone) and the product's currency.
//!
//! One decision per order: besides the event's inbox row, the order id itself is claimed in the
//! inbox (handler [`ORDER_CLAIM`]), in the same transaction as the decision. A second
//! `orders.created` for the same order under another event id (a re-emission) therefore finds the
//! order decided — reserved or rejected — and does nothing, even when both run concurrently.

use orderflow_events::v2::{InventoryRejected, OrderCreated, RejectReason, RejectedLine};
use orderflow_events::{Currency, Priority, ProductId};
use orderflow_messaging::{Delivery, Handler, HandlerError};
use orderflow_platform::{Tx, inbox, outbox};

use super::SOURCE;
use crate::domain::{PlannedLine, Priced, PricedLine, PricingError, Reservation, plan_lines, price_lines};
use crate::startup::AppState;
use crate::storage::{products, reservations};

/// Inbox key of this handler (event ids).
pub(crate) const INBOX_KEY: &str = "inventory-orders-created";
/// Inbox key under which order ids are claimed (one decision per order).
pub(crate) const ORDER_CLAIM: &str = "inventory-orders-created:order";

/// Handles `orders.created.v1` on both lanes.
#[derive(Clone, Debug)]
pub(crate) struct OrdersCreatedHandler {
    state: AppState,
}

/// What reserving an order's lines came to.
enum Reserve {
    /// Every line reserved, priced in one currency.
    Priced(Priced),
    /// These products had too few units.
    Short(Vec<ProductId>),
    /// Reserved, but not priced in the order's currency, or in more than one: these products.
    Mismatch(Vec<ProductId>),
    /// Reserved, but the lines cannot be priced (a bug or corrupt data).
    Unpriceable(PricingError),
}

enum Claim {
    /// First time for this event and this order.
    New,
    /// The event was processed before, or the order was decided under another event.
    Done,
}

impl OrdersCreatedHandler {
    /// A handler on the service's state.
    #[must_use]
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn claim(conn: &mut Tx, delivery: &Delivery<OrderCreated>) -> Result<Claim, HandlerError> {
        let envelope = &delivery.envelope;
        if !inbox::first_time(conn, INBOX_KEY, &envelope.id.to_string()).await? {
            tracing::debug!("duplicate orders.created; already processed");
            return Ok(Claim::Done);
        }
        if !inbox::first_time(conn, ORDER_CLAIM, &envelope.data.order_id.to_string()).await? {
            tracing::info!("order already decided under another event; nothing to do");
            return Ok(Claim::Done);
        }
        Ok(Claim::New)
    }

    /// Records the rejection (the claims are already in the unit).
    async fn reject(
        conn: &mut Tx,
        delivery: &Delivery<OrderCreated>,
        plan: &[PlannedLine],
        reason: RejectReason,
        mut product_ids: Vec<ProductId>,
        express: bool,
    ) -> Result<(), HandlerError> {
        product_ids.sort();
        product_ids.dedup();
        tracing::info!(?reason, products = ?product_ids, "order rejected");
        let mut lines = Vec::with_capacity(product_ids.len());
        for product_id in &product_ids {
            let requested = plan.iter().find(|l| &l.product_id == product_id).map_or(0, |l| l.quantity);
            let product = products::find(conn, product_id).await?;
            lines.push(RejectedLine {
                product_id: product_id.clone(),
                requested: u64::try_from(requested).unwrap_or(0),
                available: product.as_ref().map(|p| u64::try_from(p.available).unwrap_or(0)),
                currency: product.map(|p| p.currency),
            });
        }
        let data =
            InventoryRejected { order_id: delivery.envelope.data.order_id, reason, product_ids, lines };
        Ok(outbox::enqueue_all(conn, &delivery.follow_up_on(SOURCE, data, express)?).await?)
    }

    /// Tries to reserve every line (all of them, even after a short one, so that the rejection
    /// names every short product), then checks the lines' currencies against `wanted` (the
    /// order's) or, with none, against each other.
    async fn reserve_all(
        conn: &mut Tx,
        plan: &[PlannedLine],
        wanted: Option<&Currency>,
    ) -> Result<Reserve, HandlerError> {
        let mut priced = Vec::with_capacity(plan.len());
        let mut short = Vec::new();
        for line in plan {
            match products::reserve(conn, &line.product_id, line.quantity).await? {
                Some(price) => priced.push(PricedLine {
                    product_id: line.product_id.clone(),
                    quantity: line.quantity,
                    unit_price_cents: price.unit_price_cents,
                    currency: price.currency,
                }),
                None => short.push(line.product_id.clone()),
            }
        }
        if !short.is_empty() {
            return Ok(Reserve::Short(short));
        }
        // Every line in the order's currency — or, with none asked for, in the first line's. A
        // mismatch names the products priced otherwise, or every product when the order named
        // no currency (none of them is the "right" one).
        if let Some(target) = wanted.or_else(|| priced.first().map(|l| &l.currency))
            && priced.iter().any(|l| &l.currency != target)
        {
            let named = priced
                .iter()
                .filter(|l| wanted.is_none() || &l.currency != target)
                .map(|l| l.product_id.clone())
                .collect();
            return Ok(Reserve::Mismatch(named));
        }
        Ok(match price_lines(priced) {
            Ok(p) => Reserve::Priced(p),
            Err(e) => Reserve::Unpriceable(e),
        })
    }

    /// The unit of work (one savepoint of the group commit).
    async fn apply(conn: &mut Tx, delivery: &Delivery<OrderCreated>) -> Result<(), HandlerError> {
        let order = &delivery.envelope.data;
        // The order's lane, remembered with the reservation for the events that follow.
        let express = order.priority == Priority::Express || delivery.is_express();
        let plan = plan_lines(&order.items);

        if let Claim::Done = Self::claim(conn, delivery).await? {
            return Ok(());
        }

        let mut unknown = Vec::new();
        for line in &plan {
            if !products::exists(conn, &line.product_id).await? {
                unknown.push(line.product_id.clone());
            }
        }
        if !unknown.is_empty() {
            Self::reject(conn, delivery, &plan, RejectReason::UnknownProduct, unknown, express).await?;
            return Ok(());
        }

        // The stock moves get a savepoint of their own when they may have to be undone: if any
        // line is short, or the lines are not priced in the order's currency (or in one), they
        // are, and the claims (taken above, in the same unit, so nobody else can decide this
        // order meanwhile) stay with the rejection. A one-line order with no currency of its own
        // needs none: its one conditional UPDATE either moved the stock or changed nothing (two
        // round trips fewer on the common path).
        let wanted = order.currency.as_ref();
        let reserved = if plan.len() == 1 && wanted.is_none() {
            Self::reserve_all(conn, &plan, None).await?
        } else {
            conn.savepoint("reserve_lines").await?;
            let reserved = Self::reserve_all(conn, &plan, wanted).await?;
            match reserved {
                Reserve::Priced(_) => conn.release("reserve_lines").await?,
                Reserve::Short(_) | Reserve::Mismatch(_) | Reserve::Unpriceable(_) => {
                    conn.rollback_to("reserve_lines").await?;
                }
            }
            reserved
        };
        let priced = match reserved {
            Reserve::Priced(p) => p,
            Reserve::Short(short) => {
                Self::reject(conn, delivery, &plan, RejectReason::OutOfStock, short, express).await?;
                return Ok(());
            }
            Reserve::Mismatch(products) => {
                Self::reject(conn, delivery, &plan, RejectReason::CurrencyMismatch, products, express)
                    .await?;
                return Ok(());
            }
            Reserve::Unpriceable(e) => {
                // The unit fails, so its savepoint (claims included) is rolled back.
                tracing::error!(error = %e, "order cannot be priced; dead-lettering it, nothing reserved");
                return Err(HandlerError::permanent(e));
            }
        };
        let reservation = Reservation::new(order.order_id, priced, express);
        reservations::insert(conn, &reservation).await?;
        outbox::enqueue_all(conn, &delivery.follow_up_on(SOURCE, reservation.reserved_event(), express)?)
            .await?;
        // The happy path's detail is DEBUG: the order service logs the order's own state changes
        // at INFO, and rejections are logged here at INFO.
        tracing::debug!(
            reservation_id = %reservation.reservation_id,
            total_cents = reservation.total_cents,
            currency = %reservation.currency,
            "order reserved"
        );
        Ok(())
    }
}

impl Handler<OrderCreated> for OrdersCreatedHandler {
    async fn handle(&self, delivery: Delivery<OrderCreated>) -> Result<(), HandlerError> {
        Ok(self
            .state
            .db
            .write(move |conn| Box::pin(async move { Self::apply(conn, &delivery).await }))
            .await?)
    }
}
