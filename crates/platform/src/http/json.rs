//! A JSON body extractor whose every rejection is a problem+json with the right status:
//! 415 wrong content type, 413 too large, 400 not JSON, 422 JSON of the wrong shape (missing or
//! unknown fields, wrong types, values a newtype refuses, or anything but an object: serde's
//! derive would otherwise accept a struct written as an array, `[10, 1999]`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::problem::{FieldError, Problem, ProblemType};

/// `Json<T>` with problem+json rejections.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(v))) => Ok(Self(v)),
            Err(rejection) => Err(problem_for(&rejection)),
        }
    }
}

/// A value that must be written as a JSON object; field paths in errors are kept.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

fn problem_for(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(ProblemType::UnsupportedMediaType, "send the body as application/json")
        }
        JsonRejection::JsonSyntaxError(e) => Problem::new(ProblemType::MalformedJson, e.body_text()),
        JsonRejection::JsonDataError(e) => {
            let text = e.body_text();
            // serde_path_to_error puts the path first: "items[0].quantity: invalid value…".
            let detail = text.strip_prefix("Failed to deserialize the JSON body into the target type: ");
            let detail = detail.unwrap_or(&text).to_owned();
            let mut p = Problem::new(ProblemType::ValidationFailed, detail.clone());
            if let Some((field, message)) = detail.split_once(": ") {
                p.errors.push(FieldError { field: field.to_owned(), message: message.to_owned() });
            }
            p
        }
        other if other.status() == http::StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            ProblemType::PayloadTooLarge,
            format!("the body is larger than {} bytes", super::BODY_LIMIT),
        ),
        other => Problem::new(ProblemType::MalformedJson, other.body_text()),
    }
}
