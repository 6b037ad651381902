//! The payment service: on `inventory.reserved.v1` it charges the external payment gateway and
//! announces `payments.completed.v1` or `payments.failed.v1`.
//!
//! Every charge uses the order id as the gateway's `Idempotency-Key`, so no retry, redelivery or
//! second instance can charge an order twice. Calls go through a circuit breaker; while it is
//! open the consumer stops pulling new work, and messages already taken wait (kept alive by
//! progress acks) instead of burning deliveries. An order whose payment cannot be made within
//! `max_wait` fails with `payment_unavailable` so the saga compensates it. It never decides
//! stock or order state.

pub mod configuration;
pub(crate) mod domain;
pub(crate) mod gateway;
pub(crate) mod handlers;
pub(crate) mod startup;
pub(crate) mod storage;

pub use configuration::Settings;
pub use startup::{Application, PaymentService};

/// CloudEvents `source` of this service's events.
pub(crate) const SOURCE: &str = "orderflow/payment-service";
/// The consumer-name prefix of this service.
pub(crate) const SERVICE: &str = "payment";
