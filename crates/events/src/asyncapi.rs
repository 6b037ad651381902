//! The AsyncAPI 3.0 document of every channel and message, generated from the same types as
//! the JSON Schemas and committed as `schemas/asyncapi.yaml`.
//!
//! Every message type (every version of every event) gets two channels (its subject and the `.express` lane twin), one message
//! (name, version, CloudEvents `type`, content type, the NATS headers, and as payload a
//! reference to its committed envelope schema `<subject>.json` beside the document), a send
//! operation per lane for its producer and a receive operation per lane for each consumer
//! ([`crate::routing`]). The payload is referenced rather than inlined so the JSON Schema file
//! stays the one copy (its `$ref`s into its own `$defs` resolve inside that file).

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::envelope::DATA_CONTENT_TYPE;
use crate::headers::{CLOUDEVENTS_JSON, CORRELATION_ID, NATS_MSG_ID, TRACEPARENT};
use crate::kinds::MessageType;
use crate::routing::{consumers, producer, service_name};
use crate::schema::{canonical, describe, schema_file_name};

/// The file name of the document inside `schemas/`.
pub const ASYNCAPI_FILE: &str = "asyncapi.yaml";

/// The first lines of the file: where it comes from.
const HEADER: &str = "# Generated from the Rust event types by `cargo xtask schemas`; do not edit by hand.\n\
                      # The payload schemas are the JSON Schema files beside this one.\n";

/// The content type of the NATS message body (CloudEvents structured mode).
const MESSAGE_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The AsyncAPI 3.0 document as JSON (keys sorted).
#[must_use]
pub fn asyncapi_document() -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for message_type in MessageType::ALL {
        let kind = message_type.kind;
        let message_id = identifier(message_type.subject());
        messages.insert(message_id.clone(), message(message_type));
        for express in [false, true] {
            let subject = message_type.lane_subject(express);
            let channel_id = identifier(subject);
            channels.insert(channel_id.clone(), channel(message_type, express, &message_id));
            let mut operation = |section: &str, action: &str| {
                let service = service_name(section);
                let id = format!("{}_{action}_{channel_id}", identifier(&service));
                let verb = if action == "send" { "publishes" } else { "consumes" };
                operations.insert(
                    id,
                    json!({
                        "action": action,
                        "channel": { "$ref": format!("#/channels/{channel_id}") },
                        "messages": [{ "$ref": format!("#/channels/{channel_id}/messages/{message_id}") }],
                        "summary": format!("{service} {verb} `{subject}`."),
                        "x-orderflow-service": service,
                    }),
                );
            };
            operation(producer(kind), "send");
            for consumer in consumers(kind) {
                operation(consumer, "receive");
            }
        }
    }
    canonical(json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "orderflow events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event of the orderflow saga on NATS JetStream: CloudEvents 1.0 JSON \
                (structured mode), one subject per event version plus an `.express` lane that \
                consumers serve first. A breaking change is a new version with its own subject and \
                type; see docs/EVENTS.md.",
        },
        "defaultContentType": MESSAGE_CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The nats-server `orderflow up` starts (or the one NATS_URL names). \
                    Streams: ORDERS (orders.>), INVENTORY (inventory.>), PAYMENTS (payments.>).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": { "NatsHeaders": headers_schema() },
        },
    }))
}

/// The exact text of `schemas/asyncapi.yaml`.
///
/// # Errors
/// Only if the YAML serializer rejects the document, which it does not for JSON values.
pub fn asyncapi_yaml() -> Result<String, serde_norway::Error> {
    Ok(format!("{HEADER}{}", serde_norway::to_string(&asyncapi_document())?))
}

/// Writes `asyncapi.yaml` into `dir` and returns its path.
///
/// # Errors
/// An I/O error writing it (a serializer failure is reported as one too).
pub fn write_asyncapi(dir: &Path) -> io::Result<PathBuf> {
    let text = asyncapi_yaml().map_err(io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(ASYNCAPI_FILE);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Compares `dir/asyncapi.yaml` with a freshly generated document.
///
/// # Errors
/// One line saying what is wrong (missing, different, unreadable) and how to fix it.
pub fn check_asyncapi(dir: &Path) -> Result<(), String> {
    let path = dir.join(ASYNCAPI_FILE);
    let expected = asyncapi_yaml().map_err(|e| format!("cannot generate {ASYNCAPI_FILE}: {e}"))?;
    match std::fs::read_to_string(&path) {
        Ok(on_disk) if on_disk == expected => Ok(()),
        Ok(_) => Err(format!("{} differs from the Rust types: run `cargo xtask schemas`", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("{} is missing: run `cargo xtask schemas`", path.display()))
        }
        Err(e) => Err(format!("{} is unreadable: {e}", path.display())),
    }
}

/// An AsyncAPI identifier for a subject or name: `orders.created.v1` → `orders_created_v1`
/// (identifiers are RECOMMENDED to follow programming naming conventions; the dotted subject
/// is the channel's `address`).
fn identifier(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn channel(message_type: MessageType, express: bool, message_id: &str) -> Value {
    let address = message_type.lane_subject(express);
    let lane = if express { "Express lane, served before the standard lane." } else { "Standard lane." };
    json!({
        "address": address,
        "title": address,
        "description": format!("{} {lane} Stream {}.", describe(message_type.kind), message_type.stream()),
        "messages": { message_id: { "$ref": format!("#/components/messages/{message_id}") } },
    })
}

fn message(kind: MessageType) -> Value {
    let subject = kind.subject();
    json!({
        "name": subject,
        "title": kind.type_name(),
        "summary": describe(kind.kind),
        "description": format!(
            "CloudEvents `type` `{}`, `datacontenttype` `{DATA_CONTENT_TYPE}`, published on `{}` or \
             `{}`. The payload is the whole CloudEvents envelope; its schema is `{}`.",
            kind.type_name(),
            kind.subject(),
            kind.express_subject(),
            schema_file_name(kind),
        ),
        "contentType": MESSAGE_CONTENT_TYPE,
        "headers": { "$ref": "#/components/schemas/NatsHeaders" },
        "payload": { "$ref": format!("./{}", schema_file_name(kind)) },
        "correlationId": {
            "description": "The correlation id of the request that caused the event; also the envelope's `correlationid`.",
            "location": format!("$message.header#/{CORRELATION_ID}"),
        },
        "x-orderflow-event": kind.kind.name(),
        "x-orderflow-version": kind.version.as_str(),
        "x-orderflow-cloudevents-type": kind.type_name(),
        "x-orderflow-stream": kind.stream(),
    })
}

fn headers_schema() -> Value {
    json!({
        "type": "object",
        "description": format!(
            "NATS headers of every event. The body is CloudEvents JSON (`{CLOUDEVENTS_JSON}`)."
        ),
        "properties": {
            NATS_MSG_ID: {
                "type": "string",
                "description": "JetStream de-duplication id: the envelope's `id` (a UUIDv7).",
            },
            CORRELATION_ID: {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": "^[A-Za-z0-9._:-]+$",
                "description": "The envelope's `correlationid`.",
            },
            TRACEPARENT: {
                "type": "string",
                "description": "W3C trace context of the publishing span; the envelope's `traceparent`.",
            },
        },
        "required": [NATS_MSG_ID, CORRELATION_ID],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_and_its_express_twin_is_a_channel_with_its_message() {
        let doc = asyncapi_document();
        assert_eq!(doc["asyncapi"], "3.0.0");
        for kind in MessageType::ALL {
            for subject in [kind.subject(), kind.express_subject()] {
                let channel = &doc["channels"][identifier(subject)];
                assert_eq!(channel["address"], subject);
                let reference = format!("#/components/messages/{}", identifier(kind.subject()));
                assert_eq!(channel["messages"][identifier(kind.subject())]["$ref"], reference.as_str());
            }
            let message = &doc["components"]["messages"][identifier(kind.subject())];
            assert_eq!(message["title"], kind.type_name());
            assert_eq!(message["payload"]["$ref"], format!("./{}", schema_file_name(kind)));
        }
    }

    #[test]
    fn operations_follow_the_saga_and_point_at_existing_channels() {
        let doc = asyncapi_document();
        let operations = doc["operations"].as_object().unwrap();
        assert!(operations.contains_key("order_service_send_orders_created_v1"));
        assert!(operations.contains_key("inventory_service_receive_orders_created_v1_express"));
        assert!(operations.contains_key("analytics_service_receive_payments_failed_v1"));
        assert!(operations.contains_key("order_service_send_orders_created_v2"));
        assert!(operations.contains_key("order_service_receive_inventory_rejected_v2_express"));
        assert!(!operations.contains_key("payment_service_receive_orders_created_v1"));
        for (id, operation) in operations {
            let channel = operation["channel"]["$ref"].as_str().unwrap();
            let pointer = channel.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "{id}: {channel}");
            for message in operation["messages"].as_array().unwrap() {
                let pointer = message["$ref"].as_str().unwrap().strip_prefix('#').unwrap();
                assert!(doc.pointer(pointer).is_some(), "{id}: {pointer}");
            }
        }
    }

    #[test]
    fn the_yaml_starts_with_the_generated_header_and_parses_back_to_the_document() {
        let text = asyncapi_yaml().unwrap();
        assert!(text.starts_with("# Generated"));
        let parsed: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(parsed, asyncapi_document());
    }
}
