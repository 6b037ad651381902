//! `POST /charges`: idempotent charges, with the injected faults.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use orderflow_telemetry::trace::{self, TraceContext};
use serde::Serialize;

use crate::domain::{Charge, ChargeOutcome, ChargeRequest, ChargeStatus, IdempotencyKey};
use crate::problem::{ApiError, ApiJson};
use crate::state::AppState;

/// The request header carrying the client's idempotency key.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set to `true` on a response that replays an earlier charge.
pub(crate) const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The answer to a charge.
#[derive(Debug, Serialize)]
pub(crate) struct ChargeResponse {
    /// The gateway's id for the charge.
    pub(crate) charge_id: String,
    /// Succeeded or declined.
    pub(crate) status: ChargeStatus,
}

impl From<Charge> for ChargeResponse {
    fn from(charge: Charge) -> Self {
        Self { charge_id: charge.charge_id, status: charge.status }
    }
}

/// Body errors (400, 413, 415, 422) come first, then the key (422); only a valid request waits
/// out the injected latency, replays included, before the ledger decides. A valid `traceparent`
/// is kept with a new charge; a missing or malformed one is no reason to refuse a payment.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ChargeRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let trace = headers
        .get(trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|tp| TraceContext::parse(tp).ok());
    state.inject_latency().await;
    match state.charge(key, request, trace.map(|t| t.to_string())).await? {
        ChargeOutcome::Created(charge) => {
            // The caller's correlation id and trace id, when it sent plausible ones, tie this
            // line to the order's saga and trace in the logs.
            let correlation_id = headers.get("x-correlation-id").and_then(|v| v.to_str().ok()).filter(|c| {
                c.len() <= 128 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
            });
            tracing::debug!(
                service = "gateway-sim",
                order_id = charge.order_id.as_str(),
                correlation_id,
                trace_id = trace.map(|t| tracing::field::display(t.trace_id())),
                charge_id = %charge.charge_id,
                status = charge.status.as_str(),
                "charge recorded"
            );
            Ok(Json(ChargeResponse::from(charge)).into_response())
        }
        ChargeOutcome::Replayed(charge) => {
            let replayed = [(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"))];
            Ok((replayed, Json(ChargeResponse::from(charge))).into_response())
        }
        ChargeOutcome::KeyReused => Err(ApiError::IdempotencyKeyReused),
        ChargeOutcome::Outage => Err(ApiError::Outage),
        ChargeOutcome::InjectedError => Err(ApiError::InjectedError),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    let value = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| ApiError::InvalidIdempotencyKey("the Idempotency-Key header is required".into()))?;
    let text = value.to_str().map_err(|_| ApiError::InvalidIdempotencyKey(key_rule()))?;
    IdempotencyKey::parse(text).map_err(|e| ApiError::InvalidIdempotencyKey(e.to_string()))
}

fn key_rule() -> String {
    crate::domain::ValueError::IdempotencyKey.to_string()
}
