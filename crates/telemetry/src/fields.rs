//! Span fields in JSON log lines, without the OpenTelemetry attributes.
//!
//! A span such as the consumer's `process` carries `otel.*` and `messaging.*` attributes for
//! the trace exporter. Printed on every log line inside the span they doubled its size and said
//! nothing a reader of logs needs: the line keeps what joins it to an order and a trace
//! (`service`, `correlation_id`, `order_id`, `event_id`, …) and leaves the rest to the trace.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// Whether a span field is printed in log lines.
fn printed(name: &str) -> bool {
    !(name.starts_with("otel.") || name.starts_with("messaging."))
}

/// JSON span fields for the JSON log format, minus the trace-only attributes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LeanJsonFields;

impl<'w> FormatFields<'w> for LeanJsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut map = Map::new();
        fields.record(&mut Collect(&mut map));
        write!(writer, "{}", Value::Object(map))
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut map = match serde_json::from_str::<Value>(&current.fields) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        fields.record(&mut Collect(&mut map));
        current.fields = Value::Object(map).to_string();
        Ok(())
    }
}

struct Collect<'a>(&'a mut Map<String, Value>);

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if printed(field.name()) {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_keep_the_order_fields_of_their_span_and_drop_the_trace_attributes() {
        // Arrange
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(LeanJsonFields)
            .with_writer(move || writer.clone())
            .finish();

        // Act
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "process",
                otel.name = "orders.created.v1 process",
                messaging.system = "nats",
                order_id = "o-1",
                delivered = 2_u64,
                late = tracing::field::Empty,
            );
            span.record("late", "yes");
            let _entered = span.enter();
            tracing::info!("order reserved");
        });

        // Assert
        let line = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let json: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(json["message"], "order reserved");
        assert_eq!(json["span"]["order_id"], "o-1");
        assert_eq!(json["span"]["delivered"], 2);
        assert_eq!(json["span"]["late"], "yes");
        assert!(json["span"].get("otel.name").is_none(), "{line}");
        assert!(json["span"].get("messaging.system").is_none(), "{line}");
    }
}
