//! The simulator's types and rules: charges, faults and the idempotent decision. No I/O.

mod charge;
mod faults;
mod ledger;

pub use charge::{
    AmountCents, Charge, ChargeRequest, ChargeStatus, Currency, IdempotencyKey, OrderRef, ValueError,
};
pub use faults::{FaultError, Faults, FaultsPatch, Latency, Rate};
pub use ledger::{ChargeOutcome, Rolls, decide};
