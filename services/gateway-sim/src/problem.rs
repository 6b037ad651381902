//! Errors as RFC 9457 `application/problem+json`, one stable `type` per error class, and the
//! JSON extractor whose rejections become those problems.
//!
//! | status | `type` (after `TYPE_BASE`) | when |
//! |---|---|---|
//! | 400 | `malformed-json` | the body is not JSON, or the query string does not parse |
//! | 404 | `not-found` | no such route |
//! | 405 | `method-not-allowed` | the route exists, the method does not |
//! | 413 | `payload-too-large` | the body is over 64 KiB |
//! | 415 | `unsupported-media-type` | the body is not `application/json` |
//! | 422 | `invalid-request` | well-formed JSON with missing, unknown or invalid fields |
//! | 422 | `invalid-idempotency-key` | `Idempotency-Key` missing or not 1–255 visible ASCII characters |
//! | 422 | `idempotency-key-reused` | the key was used before with a different request |
//! | 500 | `injected-error` | the `error_rate` fault fired |
//! | 503 | `outage` | the `outage` fault is on |

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Prefix of every problem `type`.
pub(crate) const TYPE_BASE: &str = "https://orderflow.dev/problems/";

/// An error a route answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or query string does not parse.
    #[error("{0}")]
    Malformed(String),
    /// 404: no such route.
    #[error("no route for {0}")]
    NotFound(String),
    /// 405: the route does not take this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: the body is too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid.
    #[error("{0}")]
    Invalid(String),
    /// 422: missing or malformed `Idempotency-Key`.
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    /// 422: the key was used with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// 500: injected by the `error_rate` fault.
    #[error("injected error (error_rate fault); no charge was recorded")]
    InjectedError,
    /// 503: injected by the `outage` fault.
    #[error("the gateway is down (outage fault); no charge was recorded")]
    Outage,
    /// 503: the ledger's database failed; nothing was recorded (retry with the same key).
    #[error("the ledger is unavailable ({0}); no charge was recorded")]
    Unavailable(String),
}

impl ApiError {
    /// A failure of the ledger's database, logged here.
    pub(crate) fn storage(e: orderflow_platform::SqlError) -> Self {
        tracing::error!(error = %e, "the ledger's database failed");
        Self::Unavailable(e.to_string())
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) | Self::InvalidIdempotencyKey(_) | Self::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::InjectedError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Outage | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable last segment of the problem `type`.
    pub(crate) fn slug(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed-json",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::PayloadTooLarge(_) => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Invalid(_) => "invalid-request",
            Self::InvalidIdempotencyKey(_) => "invalid-idempotency-key",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::InjectedError => "injected-error",
            Self::Outage => "outage",
            Self::Unavailable(_) => "unavailable",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "Malformed request",
            Self::NotFound(_) => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge(_) => "Payload too large",
            Self::UnsupportedMediaType(_) => "Unsupported media type",
            Self::Invalid(_) => "Invalid request",
            Self::InvalidIdempotencyKey(_) => "Invalid Idempotency-Key",
            Self::IdempotencyKeyReused => "Idempotency-Key reused",
            Self::InjectedError => "Injected error",
            Self::Outage => "Gateway outage",
            Self::Unavailable(_) => "Ledger unavailable",
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let problem = Problem {
            kind: format!("{TYPE_BASE}{}", self.slug()),
            title: self.title(),
            status: status.as_u16(),
            detail: self.to_string(),
        };
        // Serializing strings and a number cannot fail; an empty body is the fallback anyway.
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if matches!(self, Self::Outage | Self::Unavailable(_)) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(detail),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(detail),
            StatusCode::UNPROCESSABLE_ENTITY => Self::Invalid(detail),
            _ => Self::Malformed(detail),
        }
    }
}

/// `axum::Json` whose rejections are problems: 400 syntax, 413 size, 415 content type, 422 data.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}
