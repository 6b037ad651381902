//! The order state machine, free of I/O.

use serde::{Deserialize, Serialize};

/// Where an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted, saga running.
    Pending,
    /// Stock committed and paid.
    Confirmed,
    /// Rejected or compensated.
    Cancelled,
}

impl OrderStatus {
    /// The stored and serialized form.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored form.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Confirmed, Self::Cancelled].into_iter().find(|v| v.as_str() == s)
    }
}

/// What to do when an event wants to move an order to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Apply it.
    Apply,
    /// Already there (a replay of a different event id): nothing to do.
    AlreadyDone,
    /// A terminal order asked to become something else: the saga is broken for this order.
    Conflict,
}

/// The only legal moves are pending → confirmed and pending → cancelled.
pub(crate) fn transition(from: OrderStatus, to: OrderStatus) -> Transition {
    match (from, to) {
        (OrderStatus::Pending, OrderStatus::Confirmed | OrderStatus::Cancelled) => Transition::Apply,
        (a, b) if a == b => Transition::AlreadyDone,
        _ => Transition::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pending_orders_move_and_terminal_states_are_final() {
        use OrderStatus::*;
        assert_eq!(transition(Pending, Confirmed), Transition::Apply);
        assert_eq!(transition(Pending, Cancelled), Transition::Apply);
        assert_eq!(transition(Confirmed, Confirmed), Transition::AlreadyDone);
        assert_eq!(transition(Confirmed, Cancelled), Transition::Conflict);
        assert_eq!(transition(Cancelled, Confirmed), Transition::Conflict);
    }
}
