//! Validating decode of incoming messages.
//!
//! Order of checks, and the error each produces:
//! 1. the payload must be a JSON object → else [`DecodeError::Malformed`];
//! 2. `type` must be a string → else [`DecodeError::SchemaInvalid`];
//! 3. `type` must name a known kind at a known version → else
//!    [`DecodeError::UnknownType`]; [`decode`] additionally requires the message
//!    type it was asked for, [`decode_as`] the kind (→ else
//!    [`DecodeError::WrongType`]) at a version it accepts (→ else
//!    [`DecodeError::UnknownType`]);
//! 4. the whole envelope must match that kind's JSON Schema → else
//!    [`DecodeError::SchemaInvalid`] with the first few errors;
//! 5. serde must accept it → else [`DecodeError::SchemaInvalid`].
//!
//! Every error maps to a [`DecodeErrorKind`], whose [`DecodeErrorKind::as_str`]
//! is the DLQ reason. All of them are permanent: redelivering the same bytes
//! cannot succeed.

use serde_json::{Map, Value};

use crate::envelope::Envelope;
use crate::kinds::{EventKind, MessageType, Version};
use crate::schema;
use crate::v1::Event;
use crate::versioned::Versioned;

/// Why a payload could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON that is not an object.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// `type` is a string but not a type this build knows (a version it does not know, e.g.
    /// `orderflow.orders.created.v3`), or a version the consumer was told not to accept.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// `type` is a known type but not the one the caller asked [`decode`] for.
    /// Its [`DecodeErrorKind`] is [`DecodeErrorKind::UnknownType`]: the
    /// consumer does not handle that type.
    #[error("expected event type {expected:?}, got {found:?}", expected = .expected.type_name(), found = .found.type_name())]
    WrongType {
        /// The message type the caller asked for.
        expected: MessageType,
        /// The message type the payload declares.
        found: MessageType,
    },
    /// The envelope does not match the schema of its kind (or has no string
    /// `type` at all). The message is one line: the first few validation
    /// errors, each with the JSON pointer of the offending value.
    #[error("schema invalid: {0}")]
    SchemaInvalid(String),
}

/// The coarse class of a [`DecodeError`], as used for DLQ reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// See [`DecodeError::Malformed`].
    Malformed,
    /// See [`DecodeError::UnknownType`] and [`DecodeError::WrongType`].
    UnknownType,
    /// See [`DecodeError::SchemaInvalid`].
    SchemaInvalid,
}

impl DecodeErrorKind {
    /// The DLQ reason string: `"malformed"`, `"unknown_type"` or `"schema_invalid"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownType => "unknown_type",
            Self::SchemaInvalid => "schema_invalid",
        }
    }
}

impl std::fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DecodeError {
    /// The class of this error, to pick the DLQ reason.
    #[must_use]
    pub const fn kind(&self) -> DecodeErrorKind {
        match self {
            Self::Malformed(_) => DecodeErrorKind::Malformed,
            Self::UnknownType(_) | Self::WrongType { .. } => DecodeErrorKind::UnknownType,
            Self::SchemaInvalid(_) => DecodeErrorKind::SchemaInvalid,
        }
    }
}

/// What the consumer runtime can learn about a message without knowing its
/// payload type: enough to log and route it, or to dead-letter it.
///
/// Only `type` is checked; the other fields are read as-is when they are
/// strings and may therefore be invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeHead {
    /// The `id` attribute, if it is a string.
    pub id: Option<String>,
    /// The kind named by `type`.
    pub kind: EventKind,
    /// The version named by `type`.
    pub version: Version,
    /// The `correlationid` attribute, if it is a string.
    pub correlation_id: Option<String>,
    /// The `subject` attribute (the order id), if it is a string.
    pub subject: Option<String>,
}

/// Decodes and fully validates an envelope of exactly `T`'s message type.
///
/// # Errors
/// See the documentation of the `decode` module for the order of checks; another version of
/// `T`'s kind is [`DecodeError::WrongType`].
pub fn decode<T: Event>(payload: &[u8]) -> Result<Envelope<T>, DecodeError> {
    let value = parse_object(payload)?;
    let found = read_type(object(&value)?)?;
    if found != T::message_type() {
        return Err(DecodeError::WrongType { expected: T::message_type(), found });
    }
    schema::validate(found, &value).map_err(DecodeError::SchemaInvalid)?;
    serde_json::from_value(value).map_err(|e| DecodeError::SchemaInvalid(e.to_string()))
}

/// Decodes and fully validates an envelope of `T`'s kind at any of the versions in `accept`,
/// upcast into `T`: what a consumer that knows several versions of an event does.
///
/// # Errors
/// As [`decode`]; a version outside `accept` (or one `T` cannot be made from) is
/// [`DecodeError::UnknownType`], another kind [`DecodeError::WrongType`].
pub fn decode_as<T: Versioned>(payload: &[u8], accept: &[Version]) -> Result<Envelope<T>, DecodeError> {
    let value = parse_object(payload)?;
    let found = read_type(object(&value)?)?;
    if found.kind != T::KIND {
        return Err(DecodeError::WrongType { expected: T::message_type(), found });
    }
    if !accept.contains(&found.version) {
        return Err(DecodeError::UnknownType(found.type_name().to_owned()));
    }
    schema::validate(found, &value).map_err(DecodeError::SchemaInvalid)?;
    T::upcast(found.version, value)
}

/// Reads the envelope head without validating the payload.
///
/// # Errors
/// [`DecodeError::Malformed`], [`DecodeError::SchemaInvalid`] (no string
/// `type`) or [`DecodeError::UnknownType`].
pub fn peek(payload: &[u8]) -> Result<EnvelopeHead, DecodeError> {
    let value = parse_object(payload)?;
    let map = object(&value)?;
    let found = read_type(map)?;
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(EnvelopeHead {
        id: text("id"),
        kind: found.kind,
        version: found.version,
        correlation_id: text("correlationid"),
        subject: text("subject"),
    })
}

fn parse_object(payload: &[u8]) -> Result<Value, DecodeError> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(DecodeError::Malformed(format!("expected a JSON object, got {}", json_type(&value))))
    }
}

fn object(value: &Value) -> Result<&Map<String, Value>, DecodeError> {
    value
        .as_object()
        .ok_or_else(|| DecodeError::Malformed(format!("expected a JSON object, got {}", json_type(value))))
}

fn read_type(map: &Map<String, Value>) -> Result<MessageType, DecodeError> {
    match map.get("type") {
        Some(Value::String(type_name)) => {
            MessageType::from_type(type_name).ok_or_else(|| DecodeError::UnknownType(type_name.clone()))
        }
        Some(other) => {
            Err(DecodeError::SchemaInvalid(format!("at /type: expected a string, got {}", json_type(other))))
        }
        None => Err(DecodeError::SchemaInvalid("at /: \"type\" is a required property".to_owned())),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
