//! `GET /openapi.json`: the OpenAPI 3.1 description of the public API.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

const SPEC: &str = include_str!("../openapi.json");

/// Serves the document.
pub(crate) async fn openapi() -> Response {
    let mut res = SPEC.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
