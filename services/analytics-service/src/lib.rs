//! analytics-service: an event-sourced read model of the order saga and a live dashboard.
//!
//! It consumes every order, inventory and payment event with durable consumers of its own
//! (`analytics-orders-created`, …, both lanes) and folds each into counters keyed by the minute
//! of the event's own time: orders accepted, confirmed and cancelled, cancellations by reason,
//! revenue per currency, created → terminal latency (an HDR histogram), units per product and
//! the count of every saga step. The state is nothing but that fold: [`rebuild::replay`] folds
//! the streams from their first message into a fresh store and gets the same tables.
//!
//! Layout: `fold` (what each event changes, shared by the handlers and the rebuild),
//! [`summary`] (the JSON read model), `live` (the once-a-second summary for the stream),
//! `routes` (`/`, `/analytics/summary`, `/analytics/stream`), [`rebuild`], [`audit`] (dumps for
//! checks).
//!
//! Windows: a minute never closes. A late or out-of-order event is counted in the minute of its
//! own `time` whenever it arrives, so the live store and a rebuild agree; the summary shows the
//! last hour of minutes and totals over all time.

pub mod audit;
pub mod configuration;
pub(crate) mod fold;
pub(crate) mod handlers;
pub(crate) mod latency;
pub(crate) mod live;
pub mod rebuild;
pub(crate) mod routes;
pub mod startup;
pub mod summary;

pub use configuration::Settings;
pub use startup::{AnalyticsService, Application};
pub use summary::Summary;

/// The service name in settings sections and consumer names (`analytics-orders-created`).
pub const SECTION: &str = "analytics";
