//! The closed set of event kinds, their NATS subjects, CloudEvents `type`
//! names and JetStream streams.
//!
//! Subjects and types carry the version (`orders.created.v1`); a new version is
//! a new [`EventKind`], never a silent change to an existing one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Subject and stream names as constants, for code that needs a `&'static str`
/// outside of an [`EventKind`] (stream configuration, consumer filters).
pub mod subjects {
    /// `orders.created.v1`
    pub(crate) const ORDERS_CREATED_V1: &str = "orders.created.v1";
    /// `orders.confirmed.v1`
    pub const ORDERS_CONFIRMED_V1: &str = "orders.confirmed.v1";
    /// `orders.cancelled.v1`
    pub const ORDERS_CANCELLED_V1: &str = "orders.cancelled.v1";
    /// `inventory.reserved.v1`
    pub(crate) const INVENTORY_RESERVED_V1: &str = "inventory.reserved.v1";
    /// `inventory.rejected.v1`
    pub(crate) const INVENTORY_REJECTED_V1: &str = "inventory.rejected.v1";
    /// `inventory.released.v1`
    pub(crate) const INVENTORY_RELEASED_V1: &str = "inventory.released.v1";
    /// `payments.completed.v1`
    pub(crate) const PAYMENTS_COMPLETED_V1: &str = "payments.completed.v1";
    /// `payments.failed.v1`
    pub(crate) const PAYMENTS_FAILED_V1: &str = "payments.failed.v1";

    /// Suffix appended to a base subject for the express lane.
    pub const EXPRESS_SUFFIX: &str = ".express";

    /// `orders.created.v1.express`
    pub(crate) const ORDERS_CREATED_V1_EXPRESS: &str = "orders.created.v1.express";
    /// `orders.confirmed.v1.express`
    pub const ORDERS_CONFIRMED_V1_EXPRESS: &str = "orders.confirmed.v1.express";
    /// `orders.cancelled.v1.express`
    pub const ORDERS_CANCELLED_V1_EXPRESS: &str = "orders.cancelled.v1.express";
    /// `inventory.reserved.v1.express`
    pub(crate) const INVENTORY_RESERVED_V1_EXPRESS: &str = "inventory.reserved.v1.express";
    /// `inventory.rejected.v1.express`
    pub(crate) const INVENTORY_REJECTED_V1_EXPRESS: &str = "inventory.rejected.v1.express";
    /// `inventory.released.v1.express`
    pub(crate) const INVENTORY_RELEASED_V1_EXPRESS: &str = "inventory.released.v1.express";
    /// `payments.completed.v1.express`
    pub(crate) const PAYMENTS_COMPLETED_V1_EXPRESS: &str = "payments.completed.v1.express";
    /// `payments.failed.v1.express`
    pub(crate) const PAYMENTS_FAILED_V1_EXPRESS: &str = "payments.failed.v1.express";

    /// Name of the stream holding `orders.>`.
    pub const STREAM_ORDERS: &str = "ORDERS";
    /// Subject filter of [`STREAM_ORDERS`].
    pub const STREAM_ORDERS_SUBJECTS: &str = "orders.>";
    /// Name of the stream holding `inventory.>`.
    pub const STREAM_INVENTORY: &str = "INVENTORY";
    /// Subject filter of [`STREAM_INVENTORY`].
    pub const STREAM_INVENTORY_SUBJECTS: &str = "inventory.>";
    /// Name of the stream holding `payments.>`.
    pub const STREAM_PAYMENTS: &str = "PAYMENTS";
    /// Subject filter of [`STREAM_PAYMENTS`].
    pub const STREAM_PAYMENTS_SUBJECTS: &str = "payments.>";
    /// Name of the dead-letter stream.
    pub const STREAM_DLQ: &str = "DLQ";
    /// Subject filter of [`STREAM_DLQ`].
    pub const STREAM_DLQ_SUBJECTS: &str = "dlq.>";
    /// Name of the stream that keeps the server's MAX_DELIVERIES advisories until a service
    /// has copied the message they name to the DLQ.
    pub const STREAM_ADVISORIES: &str = "ADVISORIES";
    /// The prefix of a MAX_DELIVERIES advisory's subject; `<stream>.<consumer>` follows.
    pub const MAX_DELIVERIES_ADVISORY_PREFIX: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.";
    /// Subject filter of [`STREAM_ADVISORIES`]: every consumer's MAX_DELIVERIES advisory.
    pub const STREAM_ADVISORIES_SUBJECTS: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>";
}

pub(crate) use subjects::{STREAM_INVENTORY, STREAM_ORDERS, STREAM_PAYMENTS};

/// Every event type orderflow publishes, at its current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// `orders.created.v1`: an order was accepted and is pending.
    OrdersCreated,
    /// `orders.confirmed.v1`: an order was paid and is final.
    OrdersConfirmed,
    /// `orders.cancelled.v1`: an order was cancelled (stock or payment).
    OrdersCancelled,
    /// `inventory.reserved.v1`: all lines of an order were reserved.
    InventoryReserved,
    /// `inventory.rejected.v1`: an order could not be reserved; nothing was.
    InventoryRejected,
    /// `inventory.released.v1`: a reservation was released (compensation).
    InventoryReleased,
    /// `payments.completed.v1`: the order was charged.
    PaymentsCompleted,
    /// `payments.failed.v1`: the order could not be charged.
    PaymentsFailed,
}

impl EventKind {
    /// All kinds, in a fixed order.
    pub const ALL: [EventKind; 8] = [
        EventKind::OrdersCreated,
        EventKind::OrdersConfirmed,
        EventKind::OrdersCancelled,
        EventKind::InventoryReserved,
        EventKind::InventoryRejected,
        EventKind::InventoryReleased,
        EventKind::PaymentsCompleted,
        EventKind::PaymentsFailed,
    ];

    /// The base NATS subject, e.g. `"orders.created.v1"`.
    #[must_use]
    pub const fn subject(self) -> &'static str {
        use subjects::*;
        match self {
            Self::OrdersCreated => ORDERS_CREATED_V1,
            Self::OrdersConfirmed => ORDERS_CONFIRMED_V1,
            Self::OrdersCancelled => ORDERS_CANCELLED_V1,
            Self::InventoryReserved => INVENTORY_RESERVED_V1,
            Self::InventoryRejected => INVENTORY_REJECTED_V1,
            Self::InventoryReleased => INVENTORY_RELEASED_V1,
            Self::PaymentsCompleted => PAYMENTS_COMPLETED_V1,
            Self::PaymentsFailed => PAYMENTS_FAILED_V1,
        }
    }

    /// The express-lane subject, e.g. `"orders.created.v1.express"`.
    #[must_use]
    pub const fn express_subject(self) -> &'static str {
        use subjects::*;
        match self {
            Self::OrdersCreated => ORDERS_CREATED_V1_EXPRESS,
            Self::OrdersConfirmed => ORDERS_CONFIRMED_V1_EXPRESS,
            Self::OrdersCancelled => ORDERS_CANCELLED_V1_EXPRESS,
            Self::InventoryReserved => INVENTORY_RESERVED_V1_EXPRESS,
            Self::InventoryRejected => INVENTORY_REJECTED_V1_EXPRESS,
            Self::InventoryReleased => INVENTORY_RELEASED_V1_EXPRESS,
            Self::PaymentsCompleted => PAYMENTS_COMPLETED_V1_EXPRESS,
            Self::PaymentsFailed => PAYMENTS_FAILED_V1_EXPRESS,
        }
    }

    /// The CloudEvents `type`, e.g. `"orderflow.orders.created.v1"`. It is the
    /// same for the standard and the express subject.
    #[must_use]
    pub const fn type_name(self) -> &'static str {
        match self {
            Self::OrdersCreated => "orderflow.orders.created.v1",
            Self::OrdersConfirmed => "orderflow.orders.confirmed.v1",
            Self::OrdersCancelled => "orderflow.orders.cancelled.v1",
            Self::InventoryReserved => "orderflow.inventory.reserved.v1",
            Self::InventoryRejected => "orderflow.inventory.rejected.v1",
            Self::InventoryReleased => "orderflow.inventory.released.v1",
            Self::PaymentsCompleted => "orderflow.payments.completed.v1",
            Self::PaymentsFailed => "orderflow.payments.failed.v1",
        }
    }

    /// The JetStream stream holding this kind: `"ORDERS"`, `"INVENTORY"` or `"PAYMENTS"`.
    #[must_use]
    pub const fn stream(self) -> &'static str {
        match self {
            Self::OrdersCreated | Self::OrdersConfirmed | Self::OrdersCancelled => STREAM_ORDERS,
            Self::InventoryReserved | Self::InventoryRejected | Self::InventoryReleased => STREAM_INVENTORY,
            Self::PaymentsCompleted | Self::PaymentsFailed => STREAM_PAYMENTS,
        }
    }

    /// The kind whose CloudEvents `type` is `type_name`; `None` for anything
    /// else, including other versions such as `orderflow.orders.created.v2`.
    #[must_use]
    pub(crate) fn from_type(type_name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.type_name() == type_name)
    }

    /// The kind published on `subject`, which may be the base subject or its
    /// express lane (base + `.express`).
    #[must_use]
    pub fn from_subject(subject: &str) -> Option<Self> {
        let base = subject.strip_suffix(subjects::EXPRESS_SUFFIX).unwrap_or(subject);
        Self::ALL.into_iter().find(|k| k.subject() == base)
    }

    /// Whether `subject` is an express-lane subject (ends in `.express`).
    #[must_use]
    pub fn is_express_subject(subject: &str) -> bool {
        subject.ends_with(subjects::EXPRESS_SUFFIX)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subject())
    }
}

/// Service priority of an order. Express orders' events travel on the
/// express-lane subjects, which consumers serve first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// The default lane.
    #[default]
    Standard,
    /// Served before standard work when both are pending.
    Express,
}

impl Priority {
    /// The wire name: `"standard"` or `"express"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Express => "express",
        }
    }

    /// The priority whose wire name is `s`, if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Standard, Self::Express].into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_name_is_the_prefix_plus_the_base_subject() {
        for kind in EventKind::ALL {
            assert_eq!(kind.type_name(), format!("orderflow.{}", kind.subject()));
            assert_eq!(kind.express_subject(), format!("{}{}", kind.subject(), subjects::EXPRESS_SUFFIX));
        }
    }

    #[test]
    fn kinds_round_trip_through_type_and_both_subjects() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_type(kind.type_name()), Some(kind));
            assert_eq!(EventKind::from_subject(kind.subject()), Some(kind));
            assert_eq!(EventKind::from_subject(kind.express_subject()), Some(kind));
            assert_eq!(kind.to_string(), kind.subject());
        }
    }

    #[test]
    fn unknown_versions_and_subjects_are_not_kinds() {
        assert_eq!(EventKind::from_type("orderflow.orders.created.v2"), None);
        assert_eq!(EventKind::from_type("orders.created.v1"), None);
        assert_eq!(EventKind::from_subject("orders.created.v2"), None);
        assert_eq!(EventKind::from_subject("orders.created.v1.slow"), None);
        assert_eq!(EventKind::from_subject(".express"), None);
    }

    #[test]
    fn each_subject_belongs_to_its_stream_filter() {
        for kind in EventKind::ALL {
            let filter = match kind.stream() {
                STREAM_ORDERS => subjects::STREAM_ORDERS_SUBJECTS,
                STREAM_INVENTORY => subjects::STREAM_INVENTORY_SUBJECTS,
                STREAM_PAYMENTS => subjects::STREAM_PAYMENTS_SUBJECTS,
                other => panic!("unexpected stream {other}"),
            };
            let prefix = filter.trim_end_matches('>');
            assert!(kind.subject().starts_with(prefix));
            assert!(kind.express_subject().starts_with(prefix));
        }
    }

    #[test]
    fn priority_defaults_to_standard_and_serializes_in_snake_case() {
        assert_eq!(Priority::default(), Priority::Standard);
        assert_eq!(serde_json::to_string(&Priority::Express).ok().as_deref(), Some("\"express\""));
    }
}
