//! `orders.created.v1` → reserve every line atomically, or reject the order with nothing
//! reserved.
//!
//! - Unknown products → `inventory.rejected.v1` (`unknown_product`, the unknown ids).
//! - Not enough stock for any line → the transaction is rolled back and, in a fresh one,
//!   `inventory.rejected.v1` (`out_of_stock`, every short product) is recorded: nothing stays
//!   reserved.
//! - Otherwise the reservation is stored and `inventory.reserved.v1` announces it with the unit
//!   prices read under the same row locks as the stock moves.
//! - Products priced in different currencies cannot be charged as one amount: that is a catalog
//!   error an operator must fix, so the event is dead-lettered (permanent error, nothing reserved,
//!   nothing recorded) and can be replayed from the DLQ once the catalog is consistent. The v1
//!   contract has no rejection reason for it, and inventing `out_of_stock` would mislead.
//!
//! One decision per order: besides the event's inbox row, the order id itself is claimed in the
//! inbox (handler [`ORDER_CLAIM`]), in the same transaction as the decision. A second
//! `orders.created` for the same order under another event id (a re-emission) therefore finds the
//! order decided — reserved or rejected — and does nothing, even when both run concurrently.

use orderflow_events::{EventKind, InventoryRejected, OrderCreated, Priority, ProductId, RejectReason};
use orderflow_messaging::{Delivery, Handler, HandlerError};
use sqlx::AnyConnection;

use super::{HandlerContext, enqueue, first_time, outgoing, storage};
use crate::domain::{PricedLine, Reservation, plan_lines, price_lines};
use crate::storage::{products, reservations};

/// Inbox key of this handler (event ids).
pub const INBOX_KEY: &str = "inventory-orders-created";
/// Inbox key under which order ids are claimed (one decision per order).
pub const ORDER_CLAIM: &str = "inventory-orders-created:order";

/// Handles `orders.created.v1` on both lanes.
#[derive(Clone, Debug)]
pub struct OrdersCreatedHandler {
    ctx: HandlerContext,
}

enum Claim {
    /// First time for this event and this order.
    New,
    /// The event was processed before, or the order was decided under another event.
    Done,
}

impl OrdersCreatedHandler {
    /// A handler on `ctx`.
    #[must_use]
    pub fn new(ctx: HandlerContext) -> Self {
        Self { ctx }
    }

    async fn claim(
        conn: &mut AnyConnection,
        delivery: &Delivery<OrderCreated>,
    ) -> Result<Claim, HandlerError> {
        let envelope = &delivery.envelope;
        if !first_time(conn, INBOX_KEY, &envelope.id.to_string()).await? {
            tracing::debug!("duplicate orders.created; already processed");
            return Ok(Claim::Done);
        }
        if !first_time(conn, ORDER_CLAIM, &envelope.data.order_id.to_string()).await? {
            tracing::info!("order already decided under another event; nothing to do");
            return Ok(Claim::Done);
        }
        Ok(Claim::New)
    }

    /// Records the rejection (with the claims) in a transaction of its own.
    async fn reject(
        &self,
        conn: &mut AnyConnection,
        delivery: &Delivery<OrderCreated>,
        reason: RejectReason,
        mut product_ids: Vec<ProductId>,
        express: bool,
    ) -> Result<(), HandlerError> {
        product_ids.sort();
        product_ids.dedup();
        tracing::info!(?reason, products = ?product_ids, "order rejected");
        let data = InventoryRejected { order_id: delivery.envelope.data.order_id, reason, product_ids };
        enqueue(conn, &outgoing(delivery, data, express)?).await
    }

    async fn process(&self, delivery: Delivery<OrderCreated>) -> Result<(), HandlerError> {
        let order = &delivery.envelope.data;
        let express = order.priority == Priority::Express || EventKind::is_express_subject(&delivery.subject);
        let plan = plan_lines(&order.items);

        let mut tx = self.ctx.db.pool().begin().await.map_err(storage)?;
        if let Claim::Done = Self::claim(&mut tx, &delivery).await? {
            tx.commit().await.map_err(storage)?;
            return Ok(());
        }

        let mut unknown = Vec::new();
        for line in &plan {
            if !products::exists(&mut tx, &line.product_id).await.map_err(storage)? {
                unknown.push(line.product_id.clone());
            }
        }
        if !unknown.is_empty() {
            self.reject(&mut tx, &delivery, RejectReason::UnknownProduct, unknown, express).await?;
            tx.commit().await.map_err(storage)?;
            self.ctx.outbox.wake();
            return Ok(());
        }

        // Every line is attempted even after a short one, so the rejection names every short
        // product; the whole transaction is rolled back anyway.
        let mut priced = Vec::with_capacity(plan.len());
        let mut short = Vec::new();
        for line in &plan {
            match products::reserve(&mut tx, &line.product_id, line.quantity).await.map_err(storage)? {
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
            tx.rollback().await.map_err(storage)?;
            let mut tx = self.ctx.db.pool().begin().await.map_err(storage)?;
            // Someone may have decided while the first transaction was rolled back.
            if let Claim::New = Self::claim(&mut tx, &delivery).await? {
                self.reject(&mut tx, &delivery, RejectReason::OutOfStock, short, express).await?;
            }
            tx.commit().await.map_err(storage)?;
            self.ctx.outbox.wake();
            return Ok(());
        }

        let priced = match price_lines(priced) {
            Ok(p) => p,
            Err(e) => {
                tx.rollback().await.map_err(storage)?;
                tracing::error!(error = %e, "order cannot be priced; dead-lettering it, nothing reserved");
                return Err(HandlerError::permanent(e));
            }
        };
        let reservation = Reservation::new(order.order_id, priced, express);
        reservations::insert(&mut tx, &reservation).await.map_err(storage)?;
        enqueue(&mut tx, &outgoing(&delivery, reservation.reserved_event(), express)?).await?;
        tx.commit().await.map_err(storage)?;
        self.ctx.outbox.wake();
        tracing::info!(
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
        self.process(delivery).await
    }
}
