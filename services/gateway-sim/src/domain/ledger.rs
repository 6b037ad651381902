//! The ledger: every charge ever made, indexed by idempotency key, and the rules that decide
//! what a charge request gets. No I/O and no clock: time and faults are passed in.

use std::collections::HashMap;

use time::OffsetDateTime;
use uuid::Uuid;

use super::charge::{Charge, ChargeRequest, ChargeStatus, IdempotencyKey};
use super::faults::Faults;

/// What a charge request gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// A new charge was recorded (succeeded or declined).
    Created(Charge),
    /// The key was seen before with the same request: the original charge, nothing new.
    Replayed(Charge),
    /// The key was seen before with a different request.
    KeyReused,
    /// Injected outage: nothing recorded.
    Outage,
    /// Injected server error: nothing recorded.
    InjectedError,
}

/// Every charge in creation order, with an index by idempotency key. Keys are kept for the
/// life of the process (SPEC asks for at least 24 h).
#[derive(Debug)]
pub struct Ledger {
    charges: Vec<Charge>,
    by_key: HashMap<IdempotencyKey, usize>,
    rng: fastrand::Rng,
}

impl Ledger {
    /// An empty ledger whose fault rolls come from `rng` (seed it for reproducible runs).
    pub fn new(rng: fastrand::Rng) -> Self {
        Self { charges: Vec::new(), by_key: HashMap::new(), rng }
    }

    /// Decides a charge request. A known key is answered from the ledger whatever the faults;
    /// only a request that would create a new charge meets them, in this order: outage, error
    /// rate, decline rate.
    pub fn charge(
        &mut self,
        key: IdempotencyKey,
        request: ChargeRequest,
        faults: &Faults,
        now: OffsetDateTime,
    ) -> ChargeOutcome {
        if let Some(&index) = self.by_key.get(&key) {
            let existing = &self.charges[index];
            return if existing.matches(&request) {
                ChargeOutcome::Replayed(existing.clone())
            } else {
                ChargeOutcome::KeyReused
            };
        }
        if faults.outage {
            return ChargeOutcome::Outage;
        }
        if faults.error_rate.hit(self.rng.f64()) {
            return ChargeOutcome::InjectedError;
        }
        let status = if faults.decline_rate.hit(self.rng.f64()) {
            ChargeStatus::Declined
        } else {
            ChargeStatus::Succeeded
        };
        let charge = Charge {
            charge_id: format!("ch_{}", Uuid::now_v7().simple()),
            order_id: request.order_id,
            amount_cents: request.amount_cents,
            currency: request.currency,
            status,
            idempotency_key: key.clone(),
            created_at: now,
        };
        self.by_key.insert(key, self.charges.len());
        self.charges.push(charge.clone());
        ChargeOutcome::Created(charge)
    }

    /// Charges for one order (all when `order_id` is `None`), oldest first.
    pub fn charges(&self, order_id: Option<&str>) -> Vec<Charge> {
        self.charges.iter().filter(|c| order_id.is_none_or(|id| c.order_id.as_str() == id)).cloned().collect()
    }

    /// How many charges have each status: `(succeeded, declined)`.
    pub fn count_by_status(&self) -> (u64, u64) {
        self.charges.iter().fold((0, 0), |(ok, declined), c| match c.status {
            ChargeStatus::Succeeded => (ok + 1, declined),
            ChargeStatus::Declined => (ok, declined + 1),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::domain::{AmountCents, Currency, OrderRef, Rate};

    fn request(order: &str, cents: u64) -> ChargeRequest {
        ChargeRequest {
            order_id: OrderRef::parse(order).unwrap(),
            amount_cents: AmountCents::parse(cents).unwrap(),
            currency: Currency::parse("USD").unwrap(),
        }
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }

    fn ledger() -> Ledger {
        Ledger::new(fastrand::Rng::with_seed(7))
    }

    fn created(outcome: ChargeOutcome) -> Charge {
        match outcome {
            ChargeOutcome::Created(charge) => charge,
            other => panic!("expected a new charge, got {other:?}"),
        }
    }

    #[test]
    fn a_known_key_is_replayed_even_during_an_outage() {
        let mut ledger = ledger();
        let now = OffsetDateTime::now_utc();
        let first = created(ledger.charge(key("k"), request("o-1", 100), &Faults::default(), now));
        let outage = Faults { outage: true, error_rate: Rate::ALWAYS, ..Faults::default() };

        let again = ledger.charge(key("k"), request("o-1", 100), &outage, now);

        assert_eq!(again, ChargeOutcome::Replayed(first));
        assert_eq!(ledger.charges(None).len(), 1);
    }

    #[test]
    fn a_known_key_with_another_request_is_refused() {
        let mut ledger = ledger();
        let now = OffsetDateTime::now_utc();
        created(ledger.charge(key("k"), request("o-1", 100), &Faults::default(), now));

        let outcome = ledger.charge(key("k"), request("o-1", 101), &Faults::default(), now);

        assert_eq!(outcome, ChargeOutcome::KeyReused);
    }

    #[test]
    fn an_outage_wins_over_the_error_rate_and_records_nothing() {
        let mut ledger = ledger();
        let faults = Faults { outage: true, error_rate: Rate::ALWAYS, ..Faults::default() };

        let outcome = ledger.charge(key("k"), request("o-1", 1), &faults, OffsetDateTime::now_utc());

        assert_eq!(outcome, ChargeOutcome::Outage);
        assert!(ledger.charges(None).is_empty());
    }

    #[test]
    fn a_decline_is_recorded() {
        let mut ledger = ledger();
        let faults = Faults { decline_rate: Rate::ALWAYS, ..Faults::default() };

        let charge = created(ledger.charge(key("k"), request("o-1", 1), &faults, OffsetDateTime::now_utc()));

        assert_eq!(charge.status, ChargeStatus::Declined);
        assert_eq!(ledger.count_by_status(), (0, 1));
    }

    #[test]
    fn the_same_seed_gives_the_same_verdicts() {
        let faults = Faults { decline_rate: Rate::parse(0.5).unwrap(), ..Faults::default() };
        let run = || {
            let mut ledger = ledger();
            (0..50)
                .map(|i| {
                    created(ledger.charge(
                        key(&format!("k{i}")),
                        request("o", 1),
                        &faults,
                        OffsetDateTime::now_utc(),
                    ))
                    .status
                })
                .collect::<Vec<_>>()
        };

        assert_eq!(run(), run());
    }
}
