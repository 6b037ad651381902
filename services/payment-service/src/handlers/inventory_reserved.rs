//! `inventory.reserved.v1` → charge the gateway → `payments.completed.v1` or
//! `payments.failed.v1`.
//!
//! The gateway call happens outside any database transaction (a transaction must never wait on
//! the network); its result is recorded afterwards together with the inbox row and the outgoing
//! event. Retrying is safe at every step: the gateway de-duplicates on the order id, the payments
//! table on the order id, and the inbox on the event id.

use std::time::Duration;

use orderflow_events::{
    ChargeId, Envelope, InventoryReserved, Money, PaymentCompleted, PaymentFailed, PaymentFailureReason,
    PaymentId,
};
use orderflow_messaging::{Delivery, HandlerError};
use orderflow_platform::{WriteError, inbox, outbox};
use orderflow_resilience::{BackoffConfig, Clock, Rejected};
use orderflow_telemetry::trace::TraceContext;

use crate::domain::PaymentStatus;
use crate::gateway::{ChargeOutcome, GatewayError};
use crate::startup::AppState;
use crate::storage::{self, PaymentRecord, StorageError};

/// Inbox key of this handler.
pub(crate) const HANDLER: &str = "payment:inventory.reserved.v1";

/// The decision about one order's payment.
enum Decision {
    Charged(String),
    Declined(String),
    Unavailable(String),
}

/// Handles one delivery.
pub(crate) async fn handle(state: AppState, d: Delivery<InventoryReserved>) -> Result<(), HandlerError> {
    let env = &d.envelope;
    let order_id = env.data.order_id.to_string();
    let id = env.data.order_id;
    if state.db.read(move |tx| Box::pin(async move { storage::exists(tx, id).await })).await? {
        tracing::debug!(order_id, "payment already decided");
        return Ok(());
    }
    let (decision, attempts) = charge_with_retries(&state, env, d.trace()).await?;
    record(&state, &d, decision, attempts).await
}

/// The schedule of gateway retries: 100 ms doubling to 5 s, up to half of each delay random, no
/// time limit of its own (the order's `max_wait` is the limit).
pub(crate) const GATEWAY_RETRY: BackoffConfig = BackoffConfig {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(5),
    multiplier: 2.0,
    jitter: 0.5,
    max_elapsed: None,
};

/// What is left at `now` of the `max_wait` budget of a reservation stamped `reserved_at` (the
/// event's `time`, which comes off the network and may be anything RFC 3339 can say).
///
/// No arithmetic here can overflow or panic, whatever the time: the difference of two
/// `OffsetDateTime`s always fits a `time::Duration`, and everything after it saturates.
/// - A time in the past: the budget shrinks by the age, down to zero (an event older than
///   `max_wait` fails at once with `payment_unavailable`, without calling the gateway).
/// - A time in the future (clock skew, or a forged event): counted as "now", so the order
///   waits at most `max_wait` from its arrival — a far-future time never buys an endless wait.
pub(crate) fn budget_left(
    now: time::OffsetDateTime,
    reserved_at: time::OffsetDateTime,
    max_wait: Duration,
) -> Duration {
    let age = Duration::try_from(now - reserved_at).unwrap_or(Duration::ZERO);
    max_wait.saturating_sub(age)
}

/// Calls the gateway until it answers, the wait budget runs out, or shutdown begins. Every
/// attempt carries the order's trace (`trace`, the delivery's) in its `traceparent`.
async fn charge_with_retries(
    state: &AppState,
    env: &Envelope<InventoryReserved>,
    trace: &TraceContext,
) -> Result<(Decision, i64), HandlerError> {
    let data = &env.data;
    let order_id = data.order_id.to_string();
    let traceparent = orderflow_telemetry::trace::call_traceparent(trace);
    let clock = &state.clock;
    // The budget runs from the reservation, not from this delivery: a redelivered message does
    // not restart it. Its age is wall-clock time; from here on the service's clock counts.
    let left = budget_left(time::OffsetDateTime::now_utc(), env.time, state.max_wait);
    let mut backoff = state.retry.clone();
    backoff.reset();
    // `left` is at most `max_wait`, which the settings bound, so this cannot overflow; if it
    // ever did, the budget is spent rather than endless.
    let deadline = clock.now().checked_add(left).unwrap_or_else(|| clock.now());
    backoff = backoff.give_up_at(deadline);
    let mut attempts = 0i64;
    loop {
        let remaining = backoff.remaining().unwrap_or(Duration::MAX);
        if remaining.is_zero() {
            return Ok((
                Decision::Unavailable(format!(
                    "no answer from the payment gateway within {:?}",
                    state.max_wait
                )),
                attempts,
            ));
        }
        let permit = match state.breaker.try_acquire() {
            Ok(p) => p,
            Err(rejected) => {
                // Wait for the breaker instead of failing the delivery: progress acks keep the
                // message, and no delivery is burned while the gateway is down.
                let wait = match rejected {
                    Rejected::Open { retry_after } => retry_after,
                    Rejected::ProbesBusy => Duration::from_millis(200),
                };
                tokio::select! {
                    _ = state.shutdown.cancelled() => {
                        return Err(HandlerError::transient("shutting down while the breaker is open"));
                    }
                    _ = clock.sleep(wait.min(remaining).max(Duration::from_millis(10))) => {}
                }
                continue;
            }
        };
        attempts += 1;
        let result = state
            .gateway
            .charge(
                &order_id,
                data.total_cents,
                data.currency.as_str(),
                env.correlationid.as_str(),
                &traceparent,
            )
            .await;
        match result {
            Ok(ChargeOutcome::Succeeded { charge_id }) => {
                permit.success();
                return Ok((Decision::Charged(charge_id), attempts));
            }
            Ok(ChargeOutcome::Declined { charge_id }) => {
                permit.success();
                return Ok((Decision::Declined(charge_id), attempts));
            }
            Err(GatewayError::Rejected(detail)) => {
                // The gateway is healthy but will never accept this request: fail the payment so
                // the order is compensated rather than stuck.
                permit.success();
                return Ok((Decision::Unavailable(detail), attempts));
            }
            Err(GatewayError::Unavailable(detail)) => {
                permit.failure();
                tracing::info!(order_id, attempts, error = %detail, "gateway unavailable; retrying");
                // No delay means the budget is spent: the top of the loop fails the payment.
                let Some(delay) = backoff.next_delay() else { continue };
                tokio::select! {
                    _ = state.shutdown.cancelled() => {
                        return Err(HandlerError::transient(format!("shutting down after: {detail}")));
                    }
                    _ = clock.sleep(delay) => {}
                }
            }
        }
    }
}

/// In one transaction: inbox row, payment row, outgoing event (on the lane `d` came on).
async fn record(
    state: &AppState,
    d: &Delivery<InventoryReserved>,
    decision: Decision,
    attempts: i64,
) -> Result<(), HandlerError> {
    let env = &d.envelope;
    let data = &env.data;
    let payment_id = PaymentId::new();
    let charge = |id: &String| ChargeId::parse(id.clone()).map_err(HandlerError::permanent);
    let (status, charge_id, reason, detail) = match &decision {
        Decision::Charged(c) => (PaymentStatus::Completed, Some(charge(c)?), None, None),
        Decision::Declined(c) => {
            (PaymentStatus::Failed, Some(charge(c)?), Some(PaymentFailureReason::PaymentDeclined), None)
        }
        Decision::Unavailable(d) => {
            (PaymentStatus::Failed, None, Some(PaymentFailureReason::PaymentUnavailable), Some(d.clone()))
        }
    };
    let msgs = match (&charge_id, reason) {
        (Some(charge_id), None) => {
            let event = PaymentCompleted {
                order_id: data.order_id,
                payment_id,
                charge_id: charge_id.clone(),
                amount_cents: data.total_cents,
                currency: data.currency.clone(),
            };
            d.follow_up(crate::SOURCE, event)?
        }
        (_, Some(reason)) => {
            let event = PaymentFailed { order_id: data.order_id, reason, detail: detail.clone() };
            d.follow_up(crate::SOURCE, event)?
        }
        (None, None) => return Err(HandlerError::permanent("a payment neither charged nor failed")),
    };
    let record = PaymentRecord {
        order_id: data.order_id,
        payment_id,
        status,
        charge_id,
        amount: Money::new(data.total_cents, data.currency.clone()).map_err(HandlerError::permanent)?,
        reason,
        detail,
        attempts,
    };

    let event_id = env.id.to_string();
    let recorded = state
        .db
        .write(move |conn| {
            Box::pin(async move {
                if !inbox::first_time(conn, HANDLER, &event_id).await? {
                    return Ok(false);
                }
                if storage::insert(conn, &record).await? {
                    outbox::enqueue_all(conn, &msgs).await?;
                }
                Ok::<_, StorageError>(true)
            })
        })
        .await
        .map_err(WriteError::into_unit_error)?;
    if !recorded {
        return Ok(());
    }
    // A completed payment is the happy path (DEBUG; the order service logs the confirmation);
    // a failed one is news (INFO). The span carries the order and correlation ids.
    let status = status.as_str();
    if let Some(reason) = reason {
        tracing::info!(status, reason = reason.as_str(), attempts, "payment decided");
    } else {
        tracing::debug!(status, attempts, "payment decided");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn at(text: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_recent_reservation_has_what_is_left_of_the_budget() {
        let now = at("2026-12-04T12:00:00Z");

        let left = budget_left(now, at("2026-12-04T11:58:00Z"), FIVE_MINUTES);

        assert_eq!(left, Duration::from_secs(180));
    }

    #[test]
    fn a_reservation_from_the_far_past_has_no_budget_left_and_nothing_panics() {
        let now = at("2026-12-04T12:00:00Z");
        let oldest = time::PrimitiveDateTime::MIN.assume_utc();

        assert_eq!(budget_left(now, at("0000-01-01T00:00:00Z"), FIVE_MINUTES), Duration::ZERO);
        assert_eq!(budget_left(now, oldest, FIVE_MINUTES), Duration::ZERO);
        assert_eq!(
            budget_left(now, oldest, Duration::MAX),
            Duration::MAX - Duration::try_from(now - oldest).unwrap()
        );
    }

    #[test]
    fn a_reservation_from_the_future_waits_at_most_max_wait_from_now() {
        let now = at("2026-12-04T12:00:00Z");
        let latest =
            time::PrimitiveDateTime::MAX.assume_offset(time::UtcOffset::from_hms(-23, 59, 59).unwrap());

        assert_eq!(budget_left(now, at("2026-12-04T12:00:30Z"), FIVE_MINUTES), FIVE_MINUTES);
        assert_eq!(budget_left(now, at("9999-12-31T23:59:59Z"), FIVE_MINUTES), FIVE_MINUTES);
        assert_eq!(budget_left(now, latest, FIVE_MINUTES), FIVE_MINUTES);
        assert_eq!(
            budget_left(time::PrimitiveDateTime::MIN.assume_utc(), latest, FIVE_MINUTES),
            FIVE_MINUTES
        );
    }

    #[test]
    fn the_gateway_retry_schedule_is_valid_and_doubles_from_100_ms_to_5_s() {
        assert_eq!(GATEWAY_RETRY.validate(), Ok(()));
        let bases: Vec<_> = (0..8).map(|n| GATEWAY_RETRY.base_delay(n).as_millis()).collect();
        assert_eq!(bases, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
