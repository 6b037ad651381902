//! The `orderflow` command line, and [`system::System`]: the whole order system (nats-server,
//! order, inventory, payment and analytics services, gateway simulator) in one process, as `orderflow up`
//! runs it and as the end-to-end tests drive it.

pub mod analytics;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod db_roles;
pub mod dlq;
pub mod invariants;
pub mod load;
pub mod nats;
mod output;
pub mod schemas;
pub mod serve;
pub mod system;
pub mod verify;
