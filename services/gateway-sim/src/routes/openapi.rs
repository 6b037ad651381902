//! `GET /openapi.json`: the hand-written OpenAPI 3.1 description in `src/openapi.json`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document, embedded at build time.
pub(crate) const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Serves [`OPENAPI_JSON`].
pub(crate) async fn openapi() -> Response {
    let mut response = OPENAPI_JSON.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
