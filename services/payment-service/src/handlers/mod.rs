//! One handler per consumed event.

pub mod inventory_reserved;
