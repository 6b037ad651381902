//! `GET /schemas/asyncapi.yaml` and `GET /schemas/{subject}.json`: the event contract, as
//! generated from the Rust types this build speaks (the same documents as the repository's
//! `schemas/`). The AsyncAPI document refers to each message's schema by a relative path, which
//! resolves to the schema route beside it.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use orderflow_events::{MessageType, asyncapi_yaml, schema_file_contents, schema_file_name};
use orderflow_platform::http::{Problem, ProblemType};

/// `GET /schemas/asyncapi.yaml`.
pub(crate) async fn asyncapi() -> Result<Response, Problem> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| asyncapi_yaml().map_err(|e| e.to_string()));
    let text =
        document.as_ref().map_err(|e| Problem::internal(&format!("rendering the AsyncAPI document: {e}")))?;
    Ok(with_type(text.clone(), "application/yaml"))
}

/// `GET /schemas/{file}`: `orders.created.v2.json`, …
pub(crate) async fn schema(Path(file): Path<String>) -> Result<Response, Problem> {
    let message = MessageType::ALL
        .into_iter()
        .find(|m| schema_file_name(*m) == file)
        .ok_or_else(|| Problem::new(ProblemType::NotFound, format!("no event schema {file}")))?;
    Ok(with_type(schema_file_contents(message), "application/schema+json"))
}

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}
