//! The inventory's types and rules: stock levels and prices, the catalog, how an order's lines
//! become a priced reservation, and which reservation transitions a payment outcome allows.
//!
//! Pure data and functions: nothing here performs I/O, so every rule is unit-tested without a
//! database or a broker.

pub mod catalog;
pub mod product;
pub mod reservation;

pub use catalog::{DemoProduct, demo_catalog};
pub use product::{Product, StockLevel, UnitPrice, ValueError};
pub use reservation::{
    PlannedLine, Priced, PricedLine, PricingError, Reservation, ReservationStatus, Step, TransitionError,
    plan_lines, price_lines, stock_moves,
};
