//! RFC 9457 problem details: every error response of every service.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// The base of every problem `type` URI.
pub(crate) const TYPE_BASE: &str = "https://orderflow.dev/problems/";

/// The stable error classes; their `type` URIs are listed in `docs/API.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemType {
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: a path or query parameter is malformed.
    InvalidParameter,
    /// 400: `X-Correlation-ID` is not 1–128 of `[A-Za-z0-9._:-]`.
    InvalidCorrelationId,
    /// 401: an admin route without the admin token (`WWW-Authenticate: Bearer`).
    Unauthorized,
    /// 404.
    NotFound,
    /// 413: body over 64 KiB.
    PayloadTooLarge,
    /// 415: not `application/json`.
    UnsupportedMediaType,
    /// 422: well-formed but invalid.
    ValidationFailed,
    /// 422: `Idempotency-Key` reused with a different body.
    IdempotencyKeyReused,
    /// 409: a request with the same `Idempotency-Key` is still being processed.
    IdempotencyKeyInFlight,
    /// 429: the client is over its request rate (`Retry-After`).
    TooManyRequests,
    /// 503: a dependency is unavailable; retry.
    Unavailable,
    /// 500: a bug.
    Internal,
}

impl ProblemType {
    /// `(slug, title, status)`.
    fn parts(self) -> (&'static str, &'static str, StatusCode) {
        use StatusCode as S;
        match self {
            Self::MalformedJson => ("malformed-json", "Malformed JSON", S::BAD_REQUEST),
            Self::InvalidParameter => ("invalid-parameter", "Invalid parameter", S::BAD_REQUEST),
            Self::InvalidCorrelationId => {
                ("invalid-correlation-id", "Invalid X-Correlation-ID header", S::BAD_REQUEST)
            }
            Self::Unauthorized => ("unauthorized", "Admin token required", S::UNAUTHORIZED),
            Self::NotFound => ("not-found", "Not found", S::NOT_FOUND),
            Self::PayloadTooLarge => ("payload-too-large", "Payload too large", S::PAYLOAD_TOO_LARGE),
            Self::UnsupportedMediaType => {
                ("unsupported-media-type", "Unsupported media type", S::UNSUPPORTED_MEDIA_TYPE)
            }
            Self::ValidationFailed => ("validation-failed", "Validation failed", S::UNPROCESSABLE_ENTITY),
            Self::IdempotencyKeyReused => (
                "idempotency-key-reused",
                "Idempotency-Key reused with a different request",
                S::UNPROCESSABLE_ENTITY,
            ),
            Self::IdempotencyKeyInFlight => (
                "idempotency-key-in-flight",
                "A request with this Idempotency-Key is in progress",
                S::CONFLICT,
            ),
            Self::TooManyRequests => ("too-many-requests", "Too many requests", S::TOO_MANY_REQUESTS),
            Self::Unavailable => ("unavailable", "Service unavailable", S::SERVICE_UNAVAILABLE),
            Self::Internal => ("internal", "Internal error", S::INTERNAL_SERVER_ERROR),
        }
    }

    /// The `type` URI.
    pub(crate) fn uri(self) -> String {
        format!("{TYPE_BASE}{}", self.parts().0)
    }
}

/// A problem+json response.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// URI of the error class.
    #[serde(rename = "type")]
    pub(crate) type_uri: String,
    /// Short summary of the class.
    pub(crate) title: &'static str,
    /// HTTP status.
    pub(crate) status: u16,
    /// What was wrong with this request.
    pub(crate) detail: String,
    /// Offending fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<FieldError>,
}

/// One invalid field.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FieldError {
    /// JSON pointer or dotted path.
    pub(crate) field: String,
    /// Why.
    pub(crate) message: String,
}

impl Problem {
    /// A problem of `kind` with `detail`.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        let (_, title, status) = kind.parts();
        Self {
            type_uri: kind.uri(),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A 422 naming one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        let mut p = Self::new(ProblemType::ValidationFailed, format!("{field}: {message}"));
        p.errors.push(FieldError { field, message });
        p
    }

    /// A 500 that logs the cause but does not leak it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(ProblemType::Internal, "the request could not be completed")
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response, with `Retry-After: seconds` (a `503` the client should simply retry).
    pub fn retry_after(self, seconds: u32) -> Response {
        let mut res = self.into_response();
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        res
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut res = (status, Json(self)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        res
    }
}
