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

/// A version of an event's contract. A breaking change to an event is a new version, with its
/// own subject and CloudEvents type (`orders.created.v2`, `orderflow.orders.created.v2`); within
/// a version only additive, optional changes are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// The first version of every event.
    V1,
    /// `orders.created.v2` (the currency the customer pays in), `inventory.rejected.v2` (the
    /// reason `currency_mismatch`, per-line detail) and `orders.cancelled.v2` (the reason
    /// `currency_mismatch`).
    V2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 2] = [Version::V1, Version::V2];

    /// The suffix of subjects and types: `"v1"`, `"v2"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    /// The version whose suffix is `s` (`"v2"`), if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version of one event: what travels on one subject with one CloudEvents `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageType {
    /// The fact it reports.
    pub kind: EventKind,
    /// The version of its contract.
    pub version: Version,
}

impl MessageType {
    /// Every message type, by kind, oldest version first.
    pub const ALL: [MessageType; 11] = [
        EventKind::OrdersCreated.at(Version::V1),
        EventKind::OrdersCreated.at(Version::V2),
        EventKind::OrdersConfirmed.at(Version::V1),
        EventKind::OrdersCancelled.at(Version::V1),
        EventKind::OrdersCancelled.at(Version::V2),
        EventKind::InventoryReserved.at(Version::V1),
        EventKind::InventoryRejected.at(Version::V1),
        EventKind::InventoryRejected.at(Version::V2),
        EventKind::InventoryReleased.at(Version::V1),
        EventKind::PaymentsCompleted.at(Version::V1),
        EventKind::PaymentsFailed.at(Version::V1),
    ];

    /// The NATS subject of the standard lane, e.g. `"orders.created.v2"`.
    #[must_use]
    pub const fn subject(self) -> &'static str {
        match (self.kind, self.version) {
            (EventKind::OrdersCreated, Version::V2) => "orders.created.v2",
            (EventKind::OrdersCancelled, Version::V2) => "orders.cancelled.v2",
            (EventKind::InventoryRejected, Version::V2) => "inventory.rejected.v2",
            (kind, _) => kind.subject(),
        }
    }

    /// The express lane's subject, e.g. `"orders.created.v2.express"`.
    #[must_use]
    pub const fn express_subject(self) -> &'static str {
        match (self.kind, self.version) {
            (EventKind::OrdersCreated, Version::V2) => "orders.created.v2.express",
            (EventKind::OrdersCancelled, Version::V2) => "orders.cancelled.v2.express",
            (EventKind::InventoryRejected, Version::V2) => "inventory.rejected.v2.express",
            (kind, _) => kind.express_subject(),
        }
    }

    /// The subject of the standard (`false`) or the express lane.
    #[must_use]
    pub const fn lane_subject(self, express: bool) -> &'static str {
        if express { self.express_subject() } else { self.subject() }
    }

    /// The CloudEvents `type`, e.g. `"orderflow.orders.created.v2"`.
    #[must_use]
    pub const fn type_name(self) -> &'static str {
        match (self.kind, self.version) {
            (EventKind::OrdersCreated, Version::V2) => "orderflow.orders.created.v2",
            (EventKind::OrdersCancelled, Version::V2) => "orderflow.orders.cancelled.v2",
            (EventKind::InventoryRejected, Version::V2) => "orderflow.inventory.rejected.v2",
            (kind, _) => kind.type_name(),
        }
    }

    /// The JetStream stream holding it (every version of a kind shares its stream).
    #[must_use]
    pub const fn stream(self) -> &'static str {
        self.kind.stream()
    }

    /// The message type whose CloudEvents `type` is `type_name`.
    #[must_use]
    pub fn from_type(type_name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.type_name() == type_name)
    }

    /// The message type published on `subject`, on either lane.
    #[must_use]
    pub fn from_subject(subject: &str) -> Option<Self> {
        let base = subject.strip_suffix(subjects::EXPRESS_SUFFIX).unwrap_or(subject);
        Self::ALL.into_iter().find(|m| m.subject() == base)
    }

    /// The JetStream `Nats-Msg-Id` of event `event_id` in this version: the id itself for v1,
    /// `<id>:v2` for v2. The versions of one dual-published event share its `id` (they are one
    /// event, so a consumer's inbox counts them once) but not their message id, or JetStream's
    /// de-duplication would drop the second version as a duplicate of the first.
    #[must_use]
    pub fn message_id(self, event_id: &str) -> String {
        match self.version {
            Version::V1 => event_id.to_owned(),
            version => format!("{event_id}:{version}"),
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subject())
    }
}

/// Every fact orderflow publishes, whatever the version of its contract ([`MessageType`] is one
/// version of one kind). [`Self::subject`] and [`Self::type_name`] are those of its v1.
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

    /// The v1 NATS subject, e.g. `"orders.created.v1"` ([`MessageType::subject`] for others).
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

    /// The v1 express-lane subject, e.g. `"orders.created.v1.express"`.
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

    /// The v1 CloudEvents `type`, e.g. `"orderflow.orders.created.v1"`. It is the
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

    /// The kind whose CloudEvents `type` is `type_name`, at any version this build knows.
    #[must_use]
    pub fn from_type(type_name: &str) -> Option<Self> {
        MessageType::from_type(type_name).map(|m| m.kind)
    }

    /// The kind published on `subject`, at any version this build knows, on the standard lane
    /// or the express lane (base + `.express`).
    #[must_use]
    pub fn from_subject(subject: &str) -> Option<Self> {
        MessageType::from_subject(subject).map(|m| m.kind)
    }

    /// This kind at `version` (whether this build knows it or not: see [`Self::versions`]).
    #[must_use]
    pub const fn at(self, version: Version) -> MessageType {
        MessageType { kind: self, version }
    }

    /// The versions of this kind this build knows, oldest first.
    #[must_use]
    pub const fn versions(self) -> &'static [Version] {
        match self {
            Self::OrdersCreated | Self::OrdersCancelled | Self::InventoryRejected => {
                &[Version::V1, Version::V2]
            }
            _ => &[Version::V1],
        }
    }

    /// The newest version of this kind.
    #[must_use]
    pub const fn latest(self) -> Version {
        match self.versions() {
            [.., last] => *last,
            [] => Version::V1,
        }
    }

    /// The name without the version, e.g. `"orders.created"`: what consumer names and
    /// configuration use.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::OrdersCreated => "orders.created",
            Self::OrdersConfirmed => "orders.confirmed",
            Self::OrdersCancelled => "orders.cancelled",
            Self::InventoryReserved => "inventory.reserved",
            Self::InventoryRejected => "inventory.rejected",
            Self::InventoryReleased => "inventory.released",
            Self::PaymentsCompleted => "payments.completed",
            Self::PaymentsFailed => "payments.failed",
        }
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
    fn message_types_round_trip_and_follow_the_naming_rule() {
        for m in MessageType::ALL {
            assert!(m.kind.versions().contains(&m.version), "{m}");
            assert_eq!(m.subject(), format!("{}.{}", m.kind.name(), m.version));
            assert_eq!(m.type_name(), format!("orderflow.{}", m.subject()));
            assert_eq!(m.express_subject(), format!("{}{}", m.subject(), subjects::EXPRESS_SUFFIX));
            assert_eq!(MessageType::from_type(m.type_name()), Some(m));
            assert_eq!(MessageType::from_subject(m.subject()), Some(m));
            assert_eq!(MessageType::from_subject(m.express_subject()), Some(m));
        }
        let listed: usize = EventKind::ALL.iter().map(|k| k.versions().len()).sum();
        assert_eq!(listed, MessageType::ALL.len());
        assert_eq!(EventKind::OrdersCreated.latest(), Version::V2);
        assert_eq!(EventKind::PaymentsCompleted.latest(), Version::V1);
    }

    #[test]
    fn versions_of_one_event_have_distinct_message_ids() {
        let v1 = EventKind::OrdersCreated.at(Version::V1).message_id("abc");
        let v2 = EventKind::OrdersCreated.at(Version::V2).message_id("abc");
        assert_eq!((v1.as_str(), v2.as_str()), ("abc", "abc:v2"));
    }

    #[test]
    fn unknown_versions_and_subjects_are_not_kinds() {
        assert_eq!(EventKind::from_type("orderflow.orders.created.v3"), None);
        assert_eq!(EventKind::from_type("orderflow.payments.completed.v2"), None);
        assert_eq!(EventKind::from_type("orders.created.v1"), None);
        assert_eq!(EventKind::from_subject("orders.created.v3"), None);
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
