//! The inventory's types and rules: stock levels and prices, the catalog, how an order's lines
//! become a priced reservation, and which reservation transitions a payment outcome allows.
//!
//! Pure data and functions: nothing here performs I/O, so every rule is unit-tested without a
//! database or a broker.

pub(crate) mod catalog;
pub(crate) mod product;
pub mod reservation;

pub(crate) use catalog::demo_catalog;
pub use product::{Product, StockLevel, UnitPrice, ValueError};
pub use reservation::ReservationStatus;
pub(crate) use reservation::{
    PlannedLine, Priced, PricedLine, PricingError, Reservation, Step, plan_lines, price_lines, stock_moves,
};
