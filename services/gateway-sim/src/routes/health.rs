//! `/health/live` and `/health/ready`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// The process is up.
pub(crate) async fn live() -> Json<Value> {
    Json(json!({"status": "live"}))
}

/// Ready unless shutting down or the ledger's database does not answer.
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "down": ["shutting_down"]})))
    } else if state.ledger().ping().await.is_err() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "down": ["database"]})))
    } else {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    }
}
