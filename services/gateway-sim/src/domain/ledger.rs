//! The rules that decide what a charge request gets. No I/O, no clock and no randomness: the
//! charge already recorded under the key, the faults, the dice and the time are passed in (the
//! durable ledger that keeps charges is [`crate::storage`]).

use time::OffsetDateTime;
use uuid::Uuid;

use super::charge::{Charge, ChargeRequest, ChargeStatus, IdempotencyKey};
use super::faults::Faults;

/// What a charge request gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChargeOutcome {
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

/// The dice for one request, drawn before the decision (from the seeded generator, so a seed
/// gives reproducible verdicts) and used only when the request would create a charge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rolls {
    /// Against `error_rate`.
    pub(crate) error: f64,
    /// Against `decline_rate`.
    pub(crate) decline: f64,
}

impl Rolls {
    /// Two draws from `rng`.
    pub(crate) fn draw(rng: &mut fastrand::Rng) -> Self {
        Self { error: rng.f64(), decline: rng.f64() }
    }
}

/// Decides a charge request, given the charge already recorded under its key (if any). A known
/// key is answered from the record whatever the faults; only a request that would create a new
/// charge meets them, in this order: outage, error rate, decline rate. A new charge keeps the
/// request's `traceparent`; a replay answers with the charge as first recorded.
pub(crate) fn decide(
    existing: Option<Charge>,
    key: IdempotencyKey,
    request: ChargeRequest,
    traceparent: Option<String>,
    faults: &Faults,
    rolls: Rolls,
    now: OffsetDateTime,
) -> ChargeOutcome {
    if let Some(existing) = existing {
        return if existing.matches(&request) {
            ChargeOutcome::Replayed(existing)
        } else {
            ChargeOutcome::KeyReused
        };
    }
    if faults.outage {
        return ChargeOutcome::Outage;
    }
    if faults.error_rate.hit(rolls.error) {
        return ChargeOutcome::InjectedError;
    }
    let status =
        if faults.decline_rate.hit(rolls.decline) { ChargeStatus::Declined } else { ChargeStatus::Succeeded };
    ChargeOutcome::Created(Charge {
        charge_id: format!("ch_{}", Uuid::now_v7().simple()),
        order_id: request.order_id,
        amount_cents: request.amount_cents,
        currency: request.currency,
        status,
        idempotency_key: key,
        traceparent,
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::domain::faults::Rate;
    use crate::domain::{AmountCents, Currency, OrderRef};

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

    const CLEAN: Rolls = Rolls { error: 0.5, decline: 0.5 };

    fn created(outcome: ChargeOutcome) -> Charge {
        match outcome {
            ChargeOutcome::Created(charge) => charge,
            other => panic!("expected a new charge, got {other:?}"),
        }
    }

    #[test]
    fn a_known_key_is_replayed_even_during_an_outage() {
        let now = OffsetDateTime::now_utc();
        let first =
            created(decide(None, key("k"), request("o-1", 100), None, &Faults::default(), CLEAN, now));
        let outage = Faults { outage: true, error_rate: Rate::parse(1.0).unwrap(), ..Faults::default() };

        let again = decide(Some(first.clone()), key("k"), request("o-1", 100), None, &outage, CLEAN, now);

        assert_eq!(again, ChargeOutcome::Replayed(first));
    }

    #[test]
    fn a_known_key_with_another_request_is_refused() {
        let now = OffsetDateTime::now_utc();
        let first =
            created(decide(None, key("k"), request("o-1", 100), None, &Faults::default(), CLEAN, now));

        let outcome =
            decide(Some(first), key("k"), request("o-1", 101), None, &Faults::default(), CLEAN, now);

        assert_eq!(outcome, ChargeOutcome::KeyReused);
    }

    #[test]
    fn an_outage_wins_over_the_error_rate() {
        let faults = Faults { outage: true, error_rate: Rate::parse(1.0).unwrap(), ..Faults::default() };

        let outcome =
            decide(None, key("k"), request("o-1", 1), None, &faults, CLEAN, OffsetDateTime::now_utc());

        assert_eq!(outcome, ChargeOutcome::Outage);
    }

    #[test]
    fn a_decline_is_a_charge_with_the_declined_status() {
        let faults = Faults { decline_rate: Rate::parse(1.0).unwrap(), ..Faults::default() };

        let charge = created(decide(
            None,
            key("k"),
            request("o-1", 1),
            None,
            &faults,
            CLEAN,
            OffsetDateTime::now_utc(),
        ));

        assert_eq!(charge.status, ChargeStatus::Declined);
    }

    #[test]
    fn the_same_seed_gives_the_same_verdicts() {
        let faults = Faults { decline_rate: Rate::parse(0.5).unwrap(), ..Faults::default() };
        let run = || {
            let mut rng = fastrand::Rng::with_seed(7);
            (0..50)
                .map(|i| {
                    let rolls = Rolls::draw(&mut rng);
                    created(decide(
                        None,
                        key(&format!("k{i}")),
                        request("o", 1),
                        None,
                        &faults,
                        rolls,
                        OffsetDateTime::now_utc(),
                    ))
                    .status
                })
                .collect::<Vec<_>>()
        };

        assert_eq!(run(), run());
        assert!(run().contains(&ChargeStatus::Declined) && run().contains(&ChargeStatus::Succeeded));
    }
}
