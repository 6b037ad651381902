//! The HTTP API: one file per resource, assembled into one router; `orderflow_platform::service`
//! adds the defaults (problem+json errors, correlation ids, metrics, body limit, timeout), the
//! health routes and `/metrics`.

pub mod inventory;
pub mod openapi;

use crate::startup::AppState;
use axum::Router;
use axum::routing::get;

/// The service's routes: `/inventory…` and `/openapi.json`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/inventory", get(inventory::list))
        .route("/inventory/{product_id}", get(inventory::get_one).put(inventory::put_one))
        .route("/openapi.json", get(openapi::document))
        .with_state(state)
}
