//! The one place that owns orderflow's JetStream contract.
//!
//! - [`mod@connect`]: connect with exponential backoff and jitter, reconnect forever, log connection
//!   events.
//! - [`topology`]: the streams and durable pull consumers of SPEC.md, provisioned idempotently
//!   (drifted configuration is updated, matching configuration is left alone).
//! - [`publish`]: publishing with `Nats-Msg-Id` = event id, correlation and trace headers,
//!   pipelined so that many messages share the wait for their PubAcks, every ack awaited.
//! - `consumer`: the consumer runtime. Handlers return `Ok`, a transient or a permanent error;
//!   the runtime alone acks, naks with the scheduled delay, or dead-letters and terms. Handlers
//!   never touch acks. A message the server gave up on by itself (its last delivery never
//!   answered) is copied to the DLQ from the MAX_DELIVERIES advisory the `ADVISORIES` stream
//!   kept, by each service's `<service>-max-deliveries` consumer (`MaxDeliveriesRuntime`).
//! - [`stream_fill`]: how full each stream is (`orderflow_stream_bytes` and its limit), for the
//!   alert that fires before a bounded stream starts refusing messages.
//! - [`dlq`]: the dead-letter format (original payload and headers plus the `Orderflow-Dlq-*`
//!   headers) and its publisher.
//!
//! It must never ack a message whose processing failed, never drop a message it could not
//! dead-letter (it naks instead), and never use WorkQueue or Interest retention, which lose
//! messages at MaxDeliver.

pub mod connect;
pub(crate) mod consumer;
pub mod dlq;
pub mod dlq_admin;
pub mod headers;
pub mod identity;
pub mod publish;
pub mod schedule;
pub mod stream_fill;
pub mod topology;
pub mod versions;

pub use connect::{ConnectConfig, ConnectRetry, NatsTls, connect, connect_observed};
pub use consumer::{
    ConsumerHandle, ConsumerRuntime, ConsumerState, Delivery, Handler, HandlerError, MaxDeliveriesRuntime,
    RuntimeConfig,
};
pub use dlq::DlqReason;
pub use publish::{OutgoingMessage, PublishError, Publisher};
pub use schedule::RedeliverySchedule;
pub use topology::{ConsumerSpec, StreamSpec, Topology};
pub use versions::{EventVersions, Unpublishable};

/// A boxed error that handlers and callbacks may return.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
