//! `/admin/faults` and `/admin/charges`: the operator's controls and the ledger's contents.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::domain::{Charge, Faults, FaultsPatch};
use crate::problem::{ApiError, ApiJson};
use crate::state::AppState;

/// `GET /admin/faults`.
pub(crate) async fn get_faults(State(state): State<AppState>) -> Json<Faults> {
    Json(state.faults())
}

/// `PUT /admin/faults`: merges a partial body; rates outside `0..=1` are a 422.
pub(crate) async fn put_faults(
    State(state): State<AppState>,
    ApiJson(patch): ApiJson<FaultsPatch>,
) -> Json<Faults> {
    let faults = state.update_faults(patch);
    tracing::info!(?faults, "faults updated");
    Json(faults)
}

/// Query of `GET /admin/charges`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChargesFilter {
    /// Only charges for this order.
    pub(crate) order_id: Option<String>,
}

/// Body of `GET /admin/charges`.
#[derive(Debug, Serialize)]
pub(crate) struct ChargeList {
    /// Oldest first.
    pub(crate) charges: Vec<Charge>,
}

/// `GET /admin/charges?order_id=…`.
pub(crate) async fn list_charges(
    State(state): State<AppState>,
    filter: Result<Query<ChargesFilter>, QueryRejection>,
) -> Result<Json<ChargeList>, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::Malformed(e.body_text()))?;
    Ok(Json(ChargeList { charges: state.charges(filter.order_id.as_deref()).await? }))
}
