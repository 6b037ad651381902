//! Version 2 event payloads, for the kinds whose contract needed a breaking change, and how
//! each converts to and from its v1.
//!
//! - `orders.created.v2` adds `currency`, the currency the customer pays in (`null`: whatever the
//!   products are priced in, as long as it is one).
//! - `inventory.rejected.v2` adds the reason `currency_mismatch` and per-line detail (what was
//!   requested, what was available, the product's price currency).
//! - `orders.cancelled.v2` adds the reason `currency_mismatch`: without it the order service could
//!   not announce the cancellation a currency mismatch causes. A new enum value is a breaking
//!   change for a reader that validates the enum (every orderflow consumer does), so it is a new
//!   version rather than a widened v1.
//!
//! Upcasting (v1 → v2) never fails and loses nothing. Downcasting (v2 → v1) is refused — the v1
//! message is not published — when the v2 payload says something v1 cannot (a currency, the
//! reason `currency_mismatch`), so that the two messages of one dual-published event always have
//! the same effect, whichever a consumer happens to handle first.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::de;
use crate::ids::{Currency, CustomerId, OrderId, ProductId};
use crate::kinds::Priority;
use crate::v1::{self, OrderItem, PayloadError};

/// `orders.created.v2`: an order was accepted and is pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "OrderCreatedV2")]
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
    /// The currency the customer pays in. `null`: the products' currency, which must be one.
    #[serde(deserialize_with = "de::nullable")]
    pub currency: Option<Currency>,
}

impl OrderCreated {
    /// Builds the payload, checking that there are 1 to [`v1::MAX_LINES`] items.
    ///
    /// # Errors
    /// [`PayloadError::LineCount`].
    pub fn new(
        order_id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderItem>,
        priority: Priority,
        currency: Option<Currency>,
    ) -> Result<Self, PayloadError> {
        v1::check_line_count(items.len())?;
        Ok(Self { order_id, customer_id, items, priority, currency })
    }
}

impl From<v1::OrderCreated> for OrderCreated {
    fn from(v: v1::OrderCreated) -> Self {
        Self {
            order_id: v.order_id,
            customer_id: v.customer_id,
            items: v.items,
            priority: v.priority,
            currency: None,
        }
    }
}

impl OrderCreated {
    /// The v1 payload, unless the order names a currency (v1 cannot carry it: a v1 reader would
    /// reserve and charge it in whatever currency the products have).
    #[must_use]
    pub fn to_v1(&self) -> Option<v1::OrderCreated> {
        self.currency.is_none().then(|| v1::OrderCreated {
            order_id: self.order_id,
            customer_id: self.customer_id.clone(),
            items: self.items.clone(),
            priority: self.priority,
        })
    }
}

/// Why inventory refused to reserve an order (v2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "RejectReasonV2")]
pub enum RejectReason {
    /// At least one product lacks stock.
    OutOfStock,
    /// At least one product does not exist.
    UnknownProduct,
    /// The products are priced in a currency other than the one the order asks for, or the
    /// order's products are priced in more than one currency.
    CurrencyMismatch,
}

impl From<v1::RejectReason> for RejectReason {
    fn from(r: v1::RejectReason) -> Self {
        match r {
            v1::RejectReason::OutOfStock => Self::OutOfStock,
            v1::RejectReason::UnknownProduct => Self::UnknownProduct,
        }
    }
}

/// One product of a rejected order: what was asked and what there was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectedLine {
    /// The product.
    pub product_id: ProductId,
    /// Units the order asked for (over all its lines naming the product).
    #[schemars(range(min = 1))]
    pub requested: u64,
    /// Units available when the order was decided; `null` for an unknown product.
    #[serde(deserialize_with = "de::nullable")]
    pub available: Option<u64>,
    /// The currency the product is priced in; `null` for an unknown product.
    #[serde(deserialize_with = "de::nullable")]
    pub currency: Option<Currency>,
}

/// `inventory.rejected.v2`: the order could not be reserved; nothing was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "InventoryRejectedV2")]
pub struct InventoryRejected {
    /// The order.
    pub order_id: OrderId,
    /// Why.
    pub reason: RejectReason,
    /// The products that caused the rejection: 1 to 100.
    #[serde(deserialize_with = "de::lines")]
    #[schemars(length(min = 1, max = 100))]
    pub product_ids: Vec<ProductId>,
    /// Per-product detail of those products: up to 100 (empty when the event was upcast from a
    /// v1, which has none).
    #[schemars(length(max = 100))]
    pub lines: Vec<RejectedLine>,
}

impl From<v1::InventoryRejected> for InventoryRejected {
    fn from(v: v1::InventoryRejected) -> Self {
        Self { order_id: v.order_id, reason: v.reason.into(), product_ids: v.product_ids, lines: Vec::new() }
    }
}

impl InventoryRejected {
    /// The v1 payload (without the per-line detail), unless the reason is `currency_mismatch`,
    /// which v1 has not.
    #[must_use]
    pub fn to_v1(&self) -> Option<v1::InventoryRejected> {
        let reason = match self.reason {
            RejectReason::OutOfStock => v1::RejectReason::OutOfStock,
            RejectReason::UnknownProduct => v1::RejectReason::UnknownProduct,
            RejectReason::CurrencyMismatch => return None,
        };
        Some(v1::InventoryRejected { order_id: self.order_id, reason, product_ids: self.product_ids.clone() })
    }
}

/// Why an order was cancelled (v2): v1's reasons and `currency_mismatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "CancelReasonV2")]
pub enum CancelReason {
    /// Inventory rejected the order: not enough stock.
    OutOfStock,
    /// Inventory rejected the order: unknown product.
    UnknownProduct,
    /// Inventory rejected the order: its products are not priced in the order's currency.
    CurrencyMismatch,
    /// The payment was declined.
    PaymentDeclined,
    /// The payment gateway stayed unavailable.
    PaymentUnavailable,
}

impl CancelReason {
    /// Every reason.
    pub const ALL: [CancelReason; 5] = [
        Self::OutOfStock,
        Self::UnknownProduct,
        Self::CurrencyMismatch,
        Self::PaymentDeclined,
        Self::PaymentUnavailable,
    ];

    /// The serialized (and stored) form: `out_of_stock`, `currency_mismatch`, …
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::UnknownProduct => "unknown_product",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::PaymentDeclined => "payment_declined",
            Self::PaymentUnavailable => "payment_unavailable",
        }
    }

    /// The reason whose stored form is `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The v1 reason, unless it is `currency_mismatch`.
    #[must_use]
    pub const fn to_v1(self) -> Option<v1::CancelReason> {
        Some(match self {
            Self::OutOfStock => v1::CancelReason::OutOfStock,
            Self::UnknownProduct => v1::CancelReason::UnknownProduct,
            Self::CurrencyMismatch => return None,
            Self::PaymentDeclined => v1::CancelReason::PaymentDeclined,
            Self::PaymentUnavailable => v1::CancelReason::PaymentUnavailable,
        })
    }
}

impl std::fmt::Display for CancelReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<v1::CancelReason> for CancelReason {
    fn from(r: v1::CancelReason) -> Self {
        match r {
            v1::CancelReason::OutOfStock => Self::OutOfStock,
            v1::CancelReason::UnknownProduct => Self::UnknownProduct,
            v1::CancelReason::PaymentDeclined => Self::PaymentDeclined,
            v1::CancelReason::PaymentUnavailable => Self::PaymentUnavailable,
        }
    }
}

impl From<RejectReason> for CancelReason {
    fn from(r: RejectReason) -> Self {
        match r {
            RejectReason::OutOfStock => Self::OutOfStock,
            RejectReason::UnknownProduct => Self::UnknownProduct,
            RejectReason::CurrencyMismatch => Self::CurrencyMismatch,
        }
    }
}

impl From<v1::PaymentFailureReason> for CancelReason {
    fn from(r: v1::PaymentFailureReason) -> Self {
        v1::CancelReason::from(r).into()
    }
}

/// `orders.cancelled.v2`: the order was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "OrderCancelledV2")]
pub struct OrderCancelled {
    /// The order.
    pub order_id: OrderId,
    /// Why.
    pub reason: CancelReason,
}

impl From<v1::OrderCancelled> for OrderCancelled {
    fn from(v: v1::OrderCancelled) -> Self {
        Self { order_id: v.order_id, reason: v.reason.into() }
    }
}

impl OrderCancelled {
    /// The v1 payload, unless the reason is `currency_mismatch`.
    #[must_use]
    pub fn to_v1(&self) -> Option<v1::OrderCancelled> {
        Some(v1::OrderCancelled { order_id: self.order_id, reason: self.reason.to_v1()? })
    }
}
