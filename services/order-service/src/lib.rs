//! The order service: takes orders over HTTP and owns each order's state machine.
//!
//! `POST /orders` writes the order (`pending`) and its `orders.created.v1` event in one
//! transaction (the outbox); the order then moves to `confirmed` on `payments.completed.v1`, or to
//! `cancelled` on `inventory.rejected.v1` / `payments.failed.v1`, each move with its event and
//! inbox row in one transaction. It never talks to the other services directly and never knows
//! products or prices: an unknown product is accepted here and cancelled by the saga.

pub(crate) mod admission;
pub mod audit;
pub(crate) mod configuration;
pub mod domain;
pub(crate) mod handlers;
pub(crate) mod routes;
pub(crate) mod startup;
pub mod storage;

pub use configuration::Settings;
pub use startup::{Application, OrderService};

/// CloudEvents `source` of this service's events.
pub(crate) const SOURCE: &str = "orderflow/order-service";
/// The consumer-name prefix of this service.
pub(crate) const SERVICE: &str = "order";
