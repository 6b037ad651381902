//! The HTTP API: one file per resource, assembled into one router with the platform's defaults
//! (problem+json errors, correlation ids, body limit, timeout) and the health routes.

pub mod inventory;
pub mod openapi;

use axum::Router;
use axum::routing::get;
use orderflow_platform::Db;
use orderflow_platform::http::{Health, with_defaults};

/// What the route handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The service's database.
    pub db: Db,
}

/// The service's router: `/inventory…`, `/openapi.json`, `/health/live`, `/health/ready`.
pub fn router(state: AppState, health: Health) -> Router {
    let api = Router::new()
        .route("/inventory", get(inventory::list))
        .route("/inventory/{product_id}", get(inventory::get_one).put(inventory::put_one))
        .route("/openapi.json", get(openapi::document))
        .with_state(state)
        .merge(health.router());
    with_defaults(api)
}
