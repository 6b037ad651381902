//! Version 1 event payloads (the CloudEvents `data` member), and what every version shares:
//! the [`Event`] trait, order lines, reasons.
//!
//! Field names are the wire names. Every field is always present on the wire;
//! nullable fields are `null`, never absent. Unknown fields are rejected.
//! Money is integer cents (`*_cents: i64`, never negative).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use schemars::JsonSchema;

use crate::de;
use crate::ids::{ChargeId, Currency, CustomerId, OrderId, PaymentId, ProductId, Quantity, ReservationId};
use crate::kinds::{EventKind, MessageType, Priority, Version};

/// Maximum number of lines in an order (and so in a reservation or a rejection).
pub const MAX_LINES: usize = 100;

/// A payload that breaks a rule its field types cannot express on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A list of lines is empty or longer than [`MAX_LINES`].
    #[error("expected 1 to {max} lines, got {count}", max = MAX_LINES)]
    LineCount {
        /// How many lines there were.
        count: usize,
    },
}

pub(crate) fn check_line_count(count: usize) -> Result<(), PayloadError> {
    if (1..=MAX_LINES).contains(&count) { Ok(()) } else { Err(PayloadError::LineCount { count }) }
}

/// An event payload: binds a Rust type to its [`EventKind`] and [`Version`].
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The kind of this payload.
    const KIND: EventKind;
    /// The version of the kind's contract it is (and so, with the kind, its subject and
    /// CloudEvents type).
    const VERSION: Version = Version::V1;

    /// The message type: [`Self::KIND`] at [`Self::VERSION`].
    #[must_use]
    fn message_type() -> MessageType {
        Self::KIND.at(Self::VERSION)
    }

    /// The order this event is about; it becomes the envelope's `subject`.
    fn order_id(&self) -> OrderId;
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    /// The product ordered.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
}

/// `orders.created.v1`: an order was accepted and is pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCreated {
    /// The new order.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// What was ordered: 1 to 100 lines.
    #[serde(deserialize_with = "de::lines")]
    #[schemars(length(min = 1, max = 100))]
    pub items: Vec<OrderItem>,
    /// Which lane the order's events travel on.
    pub priority: Priority,
}

impl OrderCreated {
    /// Builds the payload, checking that there are 1 to [`MAX_LINES`] items.
    ///
    /// # Errors
    /// [`PayloadError::LineCount`].
    pub fn new(
        order_id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderItem>,
        priority: Priority,
    ) -> Result<Self, PayloadError> {
        let created = Self { order_id, customer_id, items, priority };
        created.validate()?;
        Ok(created)
    }

    /// Checks the rules the field types cannot: 1 to [`MAX_LINES`] items.
    ///
    /// # Errors
    /// [`PayloadError::LineCount`].
    pub(crate) fn validate(&self) -> Result<(), PayloadError> {
        check_line_count(self.items.len())
    }
}

/// One reserved line, with the unit price at reservation time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservedLine {
    /// The product reserved.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
    /// Price of one unit, in cents of the reservation's currency.
    #[serde(deserialize_with = "de::non_negative_cents")]
    #[schemars(range(min = 0))]
    pub unit_price_cents: i64,
}

/// `inventory.reserved.v1`: every line of the order was reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryReserved {
    /// The order.
    pub order_id: OrderId,
    /// The reservation holding the stock.
    pub reservation_id: ReservationId,
    /// The reserved lines: 1 to 100.
    #[serde(deserialize_with = "de::lines")]
    #[schemars(length(min = 1, max = 100))]
    pub lines: Vec<ReservedLine>,
    /// Amount to charge, in cents.
    #[serde(deserialize_with = "de::non_negative_cents")]
    #[schemars(range(min = 0))]
    pub total_cents: i64,
    /// Currency of every amount in this event.
    pub currency: Currency,
}

/// Why inventory refused to reserve an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// At least one product lacks stock.
    OutOfStock,
    /// At least one product does not exist.
    UnknownProduct,
}

/// `inventory.rejected.v1`: the order could not be reserved; nothing was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryRejected {
    /// The order.
    pub order_id: OrderId,
    /// Why.
    pub reason: RejectReason,
    /// The products that caused the rejection: 1 to 100.
    #[serde(deserialize_with = "de::lines")]
    #[schemars(length(min = 1, max = 100))]
    pub product_ids: Vec<ProductId>,
}

/// `inventory.released.v1`: a reservation was released (compensation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryReleased {
    /// The order.
    pub order_id: OrderId,
    /// The reservation that was released.
    pub reservation_id: ReservationId,
}

/// `payments.completed.v1`: the order was charged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentCompleted {
    /// The order.
    pub order_id: OrderId,
    /// The payment service's id for this payment.
    pub payment_id: PaymentId,
    /// The gateway's id for the charge.
    pub charge_id: ChargeId,
    /// Amount charged, in cents.
    #[serde(deserialize_with = "de::non_negative_cents")]
    #[schemars(range(min = 0))]
    pub amount_cents: i64,
    /// Currency of the charge.
    pub currency: Currency,
}

/// Why a payment failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentFailureReason {
    /// The gateway declined the charge (permanent).
    PaymentDeclined,
    /// The gateway stayed unavailable past the retry budget / maximum wait.
    PaymentUnavailable,
}

/// `payments.failed.v1`: the order could not be charged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    /// The order.
    pub order_id: OrderId,
    /// Why.
    pub reason: PaymentFailureReason,
    /// Human-readable detail from the gateway; always present, may be null.
    #[serde(deserialize_with = "de::nullable")]
    pub detail: Option<String>,
}

/// `orders.confirmed.v1`: the order was paid and is final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderConfirmed {
    /// The order.
    pub order_id: OrderId,
    /// Amount charged, in cents.
    #[serde(deserialize_with = "de::non_negative_cents")]
    #[schemars(range(min = 0))]
    pub total_cents: i64,
    /// Currency of the charge.
    pub currency: Currency,
}

/// Why an order was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Inventory rejected the order: not enough stock.
    OutOfStock,
    /// Inventory rejected the order: unknown product.
    UnknownProduct,
    /// The payment was declined.
    PaymentDeclined,
    /// The payment gateway stayed unavailable.
    PaymentUnavailable,
}

impl CancelReason {
    /// The serialized (and stored) form: `out_of_stock`, `payment_declined`, … (v2's, which
    /// has every v1 reason under the same name).
    pub fn as_str(self) -> &'static str {
        crate::v2::CancelReason::from(self).as_str()
    }
}

impl PaymentFailureReason {
    /// The serialized (and stored) form: `payment_declined` or `payment_unavailable`.
    pub fn as_str(self) -> &'static str {
        CancelReason::from(self).as_str()
    }
}

impl From<RejectReason> for CancelReason {
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::OutOfStock => Self::OutOfStock,
            RejectReason::UnknownProduct => Self::UnknownProduct,
        }
    }
}

impl From<PaymentFailureReason> for CancelReason {
    fn from(reason: PaymentFailureReason) -> Self {
        match reason {
            PaymentFailureReason::PaymentDeclined => Self::PaymentDeclined,
            PaymentFailureReason::PaymentUnavailable => Self::PaymentUnavailable,
        }
    }
}

/// `orders.cancelled.v1`: the order was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: OrderId,
    /// Why.
    pub reason: CancelReason,
}

macro_rules! impl_event {
    ($($ty:ty => $kind:ident @ $version:ident),* $(,)?) => {
        $(
            impl Event for $ty {
                const KIND: EventKind = EventKind::$kind;
                const VERSION: Version = Version::$version;

                fn order_id(&self) -> OrderId {
                    self.order_id
                }
            }
        )*
    };
    ($($ty:ty => $kind:ident),* $(,)?) => {
        $(
            impl Event for $ty {
                const KIND: EventKind = EventKind::$kind;

                fn order_id(&self) -> OrderId {
                    self.order_id
                }
            }
        )*
    };
}

impl_event! {
    crate::v2::OrderCreated => OrdersCreated @ V2,
    crate::v2::OrderCancelled => OrdersCancelled @ V2,
    crate::v2::InventoryRejected => InventoryRejected @ V2,
}

impl_event! {
    OrderCreated => OrdersCreated,
    OrderConfirmed => OrdersConfirmed,
    OrderCancelled => OrdersCancelled,
    InventoryReserved => InventoryReserved,
    InventoryRejected => InventoryRejected,
    InventoryReleased => InventoryReleased,
    PaymentCompleted => PaymentsCompleted,
    PaymentFailed => PaymentsFailed,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item() -> OrderItem {
        OrderItem { product_id: ProductId::parse("sku-1").unwrap(), quantity: Quantity::parse(1).unwrap() }
    }

    #[test]
    fn an_order_needs_between_1_and_100_items() {
        let make = |n: usize| {
            OrderCreated::new(
                OrderId::new(),
                CustomerId::parse("c").unwrap(),
                vec![item(); n],
                Priority::Standard,
            )
        };
        assert_eq!(make(0), Err(PayloadError::LineCount { count: 0 }));
        assert!(make(1).is_ok());
        assert!(make(100).is_ok());
        assert_eq!(make(101), Err(PayloadError::LineCount { count: 101 }));
    }

    #[test]
    fn serde_refuses_empty_items_negative_cents_and_an_absent_detail() {
        let order_id = OrderId::new().to_string();
        assert!(
            serde_json::from_value::<OrderCreated>(json!({
                "order_id": order_id, "customer_id": "c", "items": [], "priority": "standard"
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<OrderConfirmed>(json!({
                "order_id": order_id, "total_cents": -1, "currency": "USD"
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<PaymentFailed>(json!({
                "order_id": order_id, "reason": "payment_declined"
            }))
            .is_err()
        );
        let failed: PaymentFailed = serde_json::from_value(json!({
            "order_id": order_id, "reason": "payment_declined", "detail": null
        }))
        .unwrap();
        assert_eq!(failed.detail, None);
    }

    #[test]
    fn a_null_detail_is_serialized_not_skipped() {
        let failed = PaymentFailed {
            order_id: OrderId::new(),
            reason: PaymentFailureReason::PaymentUnavailable,
            detail: None,
        };
        let value = serde_json::to_value(&failed).unwrap();
        assert_eq!(value["detail"], serde_json::Value::Null);
        assert_eq!(value["reason"], "payment_unavailable");
    }

    #[test]
    fn cancel_reasons_follow_the_failure_that_caused_them() {
        assert_eq!(CancelReason::from(RejectReason::UnknownProduct), CancelReason::UnknownProduct);
        assert_eq!(CancelReason::from(PaymentFailureReason::PaymentDeclined), CancelReason::PaymentDeclined);
    }
}
