//! The HTTP API: one file per resource, assembled into one router; `orderflow_platform::service`
//! adds the defaults (problem+json errors, correlation ids, metrics, body limit, timeout), the
//! health routes and `/metrics`.

pub(crate) mod inventory;
pub(crate) mod openapi;

use crate::startup::AppState;
use axum::Router;
use axum::handler::Handler as _;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use orderflow_platform::http::{AdminGuard, require_admin};

/// The service's routes: `/inventory…` (`PUT` only with the admin token) and `/openapi.json`.
pub(crate) fn router(state: AppState, admin: AdminGuard) -> Router {
    let put_one = inventory::put_one.layer(from_fn_with_state(admin, require_admin));
    Router::new()
        .route("/inventory", get(inventory::list))
        .route("/inventory/{product_id}", get(inventory::get_one).put(put_one))
        .route("/openapi.json", get(openapi::document))
        .with_state(state)
}
