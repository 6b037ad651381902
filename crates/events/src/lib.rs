//! The orderflow event contract: the CloudEvents 1.0 envelope, the v1 and v2 event
//! payloads and how one converts into the other and the identifier newtypes inside them, the subjects and streams
//! they travel on, their JSON Schemas (generated from these types into
//! `schemas/`) with the AsyncAPI document of every channel, the classifier that
//! tells a compatible schema change from a breaking one ([`compat`], the gate of
//! `cargo xtask schemas --check`), and validating decoding that classifies every
//! failure as a DLQ reason. It is pure data and functions: it must never do I/O beyond reading
//! and writing schema files on request, never talk to NATS or a database, and
//! never hold global mutable state (the compiled validators are immutable and
//! built once).
//!
//! ```
//! use orderflow_events::{
//!     decode, CorrelationId, CustomerId, Envelope, OrderCreated, OrderId, OrderItem, Priority,
//!     ProductId, Quantity,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let created = OrderCreated::new(
//!     OrderId::new(),
//!     CustomerId::parse("customer-1")?,
//!     vec![OrderItem { product_id: ProductId::parse("sku-1")?, quantity: Quantity::parse(2)? }],
//!     Priority::Standard,
//! )?;
//! let envelope = Envelope::new("orderflow/order-service", CorrelationId::generate(), created);
//! let bytes = envelope.to_json()?;
//! let decoded = decode::<OrderCreated>(&bytes)?;
//! assert_eq!(decoded, envelope);
//! # Ok(())
//! # }
//! ```

pub(crate) mod asyncapi;
pub mod compat;
mod de;
pub(crate) mod decode;
pub(crate) mod envelope;
pub mod gate;
pub mod headers;
pub(crate) mod ids;
pub(crate) mod kinds;
pub mod routing;
pub(crate) mod schema;
pub mod v1;
pub mod v2;
pub(crate) mod versioned;

pub use asyncapi::{ASYNCAPI_FILE, asyncapi_document, asyncapi_yaml, check_asyncapi, write_asyncapi};
pub use decode::{DecodeError, DecodeErrorKind, EnvelopeHead, decode, decode_as, peek};
pub use envelope::Envelope;
pub use ids::{
    ChargeId, CorrelationId, Currency, CustomerId, EventId, IdError, Money, OrderId, PaymentId, ProductId,
    Quantity, ReservationId,
};
pub use kinds::{EventKind, MessageType, Priority, Version, subjects};
pub use schema::{
    check_schemas, describe, envelope_schema, schema_file_contents, schema_file_name, write_schemas,
};
pub use v1::{
    CancelReason, Event, InventoryRejected, InventoryReleased, InventoryReserved, OrderCancelled,
    OrderConfirmed, OrderCreated, OrderItem, PayloadError, PaymentCompleted, PaymentFailed,
    PaymentFailureReason, RejectReason, ReservedLine,
};
pub use versioned::Versioned;
