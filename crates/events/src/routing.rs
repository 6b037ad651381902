//! Who publishes and who consumes each event: SPEC.md's saga as data.
//!
//! The messaging crate provisions one durable consumer per [`SUBSCRIPTIONS`] entry, and the
//! AsyncAPI document ([`crate::asyncapi_yaml`]) lists the same table's receive operations, so
//! the two cannot disagree. It lives here rather than in messaging because this crate generates
//! the document and must not depend on messaging (messaging depends on it).

use crate::kinds::EventKind;

/// The analytics service's section name: it folds every event into its read model, with its
/// own consumers (created by its startup, not from [`SUBSCRIPTIONS`]).
pub const ANALYTICS: &str = "analytics";

/// Which service consumes which event: SPEC.md's consumer table, one durable consumer each
/// (`<service>-<subject with dashes>`), plus its express-lane twin.
pub const SUBSCRIPTIONS: [(&str, EventKind); 7] = [
    ("inventory", EventKind::OrdersCreated),
    ("inventory", EventKind::PaymentsCompleted),
    ("inventory", EventKind::PaymentsFailed),
    ("payment", EventKind::InventoryReserved),
    ("order", EventKind::InventoryRejected),
    ("order", EventKind::PaymentsCompleted),
    ("order", EventKind::PaymentsFailed),
];

/// The service (section name) that publishes `kind`: order publishes `orders.*`, inventory
/// `inventory.*`, payment `payments.*`.
#[must_use]
pub const fn producer(kind: EventKind) -> &'static str {
    match kind {
        EventKind::OrdersCreated | EventKind::OrdersConfirmed | EventKind::OrdersCancelled => "order",
        EventKind::InventoryReserved | EventKind::InventoryRejected | EventKind::InventoryReleased => {
            "inventory"
        }
        EventKind::PaymentsCompleted | EventKind::PaymentsFailed => "payment",
    }
}

/// Every service that consumes `kind`: the saga's consumers of [`SUBSCRIPTIONS`], then
/// analytics, which reads everything.
#[must_use]
pub fn consumers(kind: EventKind) -> Vec<&'static str> {
    let mut services: Vec<&'static str> =
        SUBSCRIPTIONS.iter().filter(|(_, k)| *k == kind).map(|(service, _)| *service).collect();
    services.push(ANALYTICS);
    services
}

/// The service's name as deployed and as its CloudEvents `source` says: `order-service`.
#[must_use]
pub fn service_name(section: &str) -> String {
    format!("{section}-service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_producer_whose_stream_it_is_on() {
        for kind in EventKind::ALL {
            let stream = match producer(kind) {
                "order" => "ORDERS",
                "inventory" => "INVENTORY",
                "payment" => "PAYMENTS",
                other => panic!("unexpected producer {other}"),
            };
            assert_eq!(kind.stream(), stream, "{kind}");
        }
    }

    #[test]
    fn no_service_consumes_its_own_events_and_analytics_reads_them_all() {
        for (service, kind) in SUBSCRIPTIONS {
            assert_ne!(service, producer(kind), "{kind}");
        }
        for kind in EventKind::ALL {
            assert_eq!(consumers(kind).last(), Some(&ANALYTICS));
        }
        assert_eq!(consumers(EventKind::PaymentsCompleted), ["inventory", "order", "analytics"]);
    }
}
