//! The simulator's types and rules: charges, faults and the idempotent decision. No I/O.

mod charge;
mod faults;
mod ledger;

pub(crate) use charge::{AmountCents, ChargeStatus, Currency, IdempotencyKey, OrderRef, ValueError};
pub use charge::{Charge, ChargeRequest};
pub use faults::Faults;
pub(crate) use faults::FaultsPatch;
pub(crate) use ledger::{ChargeOutcome, Rolls, decide};
