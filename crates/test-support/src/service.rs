//! One orderflow service under test, in process, on infrastructure of its own.
//!
//! [`TestService`] starts a [`TestNats`], a [`TestDb`] of the requested backend and the service
//! (through the kernel's [`Application`], as the binary runs it) on a free port, and has what every
//! service's tests share: an HTTP client and the base URL, JetStream on a client of the test's
//! own, the service's database, publishing events as another service would, reading streams and
//! dead letters, counting rows, consumer info, waiting for readiness and for the service to be
//! quiet, and a graceful, bounded [`stop`](TestService::stop). Dropping it cancels the service.
//!
//! A service's own test helpers wrap it (typically a struct that derefs to it) and add only what
//! is the service's own: its HTTP resources, its events, its tables.
//!
//! ```ignore
//! let app = TestService::<OrderService>::spawn(DbBackend::Sqlite).await;
//! let app = TestService::<OrderService>::spawn_with(backend, |s| s.common.consumer.concurrency = 1).await;
//!
//! // A service value of the test's making (a manual clock, say):
//! let mut setup = TestService::<PaymentService>::setup(DbBackend::Sqlite);
//! setup.settings.gateway_url = gateway_url;
//! let service = PaymentService::with_clock(&setup.settings, clock)?;
//! let app = setup.start_with(service).await;
//! ```

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::StreamMessage, publish::PublishAck};
use orderflow_events::{CorrelationId, Envelope, Event};
use orderflow_messaging::{OutgoingMessage, Publisher};
use orderflow_platform::kernel::{Application, ConsumerId, HasCommon, Service};
use orderflow_platform::{Db, OutboxRelay, SqlError};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{DbBackend, TestDb, TestNats, eventually};

/// How long a test waits for something that should happen within a second or two; the bound only
/// ends a failing test.
pub const WAIT: Duration = Duration::from_secs(30);

/// A service under test drains within this (`shutdown_timeout_secs`, unless the test changes it).
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// How long past its own shutdown timeout [`TestService::stop`] waits for the service to return.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// The `source` of the envelopes [`TestService::publish_event`] makes.
pub const TEST_SOURCE: &str = "orderflow/test";

/// The correlation id of the envelopes [`TestService::publish_event`] makes.
pub const TEST_CORRELATION_ID: &str = "test-corr";

/// The admin token every service under test is given (`Authorization: Bearer …` on its admin
/// routes).
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A service under test before it is built: its nats-server and database exist and its settings
/// are placed on them; change [`settings`](Self::settings), then [`start`](Self::start) it.
pub struct Setup<S: Service> {
    /// What the service will be built with: `S`'s defaults, placed on the test's nats-server and
    /// database (loopback, a free port), `shutdown_timeout_secs` [`SHUTDOWN_TIMEOUT_SECS`].
    pub settings: S::Settings,
    nats: TestNats,
    db: TestDb,
}

impl<S: Service> std::fmt::Debug for Setup<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("service", &S::NAME)
            .field("settings", &self.settings)
            .field("nats", &self.nats)
            .field("db", &self.db)
            .finish()
    }
}

impl<S: Service> Setup<S> {
    /// The test's nats-server.
    pub fn nats(&self) -> &TestNats {
        &self.nats
    }

    /// A directory for other files of the test (next to a SQLite database); it lives as long as
    /// the service under test.
    pub fn dir(&self) -> &Path {
        self.db.dir()
    }

    /// Builds the service ([`Application::build`]) and runs it.
    pub async fn start(self) -> TestService<S> {
        let app = Application::<S>::build(self.settings.clone())
            .await
            .unwrap_or_else(|e| panic!("building {}: {e:#}", S::NAME));
        self.run(app).await
    }

    /// Builds the service with a value of the test's making ([`Application::build_with`]: a
    /// manual clock, for example) and runs it.
    pub async fn start_with(self, service: S) -> TestService<S> {
        let app = Application::<S>::build_with(self.settings.clone(), service)
            .await
            .unwrap_or_else(|e| panic!("building {}: {e:#}", S::NAME));
        self.run(app).await
    }

    async fn run(self, app: Application<S>) -> TestService<S> {
        let base = format!("http://127.0.0.1:{}", app.port());
        let db = app.db().clone();
        let settings = app.settings().clone();
        let wired = app.consumers();
        let shutdown = CancellationToken::new();
        let mut task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        // Wiring is the first thing the service does when it runs.
        let consumers = tokio::select! {
            consumers = wired.wait() => consumers.to_vec(),
            ended = &mut task => panic!("{} ended before it was wired: {ended:?}", S::NAME),
        };
        let js = self.nats.jetstream().await.unwrap_or_else(|e| panic!("{e:#}"));
        TestService {
            base,
            http: orderflow_platform::tls::http_client(),
            publisher: Publisher::new(js.clone()),
            js,
            db,
            settings,
            consumers,
            shutdown,
            task: Mutex::new(Some(task)),
            nats: self.nats,
            test_db: self.db,
        }
    }
}

/// A running service under test, with its nats-server and database. Dropping it cancels the
/// service (without waiting for it); [`stop`](Self::stop) stops it gracefully.
pub struct TestService<S: Service> {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// JetStream on a client of the test's own.
    pub js: jetstream::Context,
    /// The service's database (its own pool, closed once the service has stopped).
    pub db: Db,
    settings: S::Settings,
    consumers: Vec<ConsumerId>,
    publisher: Publisher,
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<anyhow::Result<()>>>>,
    nats: TestNats,
    test_db: TestDb,
}

impl<S: Service> std::fmt::Debug for TestService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestService")
            .field("service", &S::NAME)
            .field("base", &self.base)
            .field("consumers", &self.consumers)
            .field("nats", &self.nats)
            .field("db", &self.test_db)
            .finish_non_exhaustive()
    }
}

impl<S: Service> Drop for TestService<S> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl<S: Service> TestService<S> {
    /// A fresh nats-server and database of `backend` for `S`, and `S`'s settings placed on them:
    /// to change before the service is built.
    pub fn setup(backend: DbBackend) -> Setup<S> {
        orderflow_telemetry::init_for_tests();
        let nats = TestNats::start().unwrap_or_else(|e| panic!("{e:#}"));
        let db = TestDb::new(backend).unwrap_or_else(|e| panic!("creating a test database: {e:#}"));
        let (database_url, db_schema) = db.for_service(S::SECTION);
        let mut settings = S::Settings::default();
        let common = settings.common_mut();
        *common = std::mem::take(common).placed(nats.url(), database_url, db_schema);
        common.shutdown_timeout_secs = SHUTDOWN_TIMEOUT_SECS;
        common.admin_token = Some(orderflow_platform::http::Secret::new(TEST_ADMIN_TOKEN));
        Setup { settings, nats, db }
    }

    /// Starts a nats-server, a fresh database of `backend` and the service on a free port.
    pub async fn spawn(backend: DbBackend) -> Self {
        Self::setup(backend).start().await
    }

    /// [`spawn`](Self::spawn), with the settings changed by `configure` before the service is
    /// built.
    pub async fn spawn_with(backend: DbBackend, configure: impl FnOnce(&mut S::Settings)) -> Self {
        let mut setup = Self::setup(backend);
        configure(&mut setup.settings);
        setup.start().await
    }

    /// `base` followed by `path` (`/orders`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The settings the service was built with.
    pub fn settings(&self) -> &S::Settings {
        &self.settings
    }

    /// The durable consumers the service registered, both lanes of each, the standard lane's
    /// first, then its max-deliveries consumer on `ADVISORIES`.
    pub fn consumers(&self) -> &[ConsumerId] {
        &self.consumers
    }

    /// The test's nats-server.
    pub fn nats(&self) -> &TestNats {
        &self.nats
    }

    /// The test's database.
    pub fn test_db(&self) -> &TestDb {
        &self.test_db
    }

    /// Opens the service's database anew (the service's own pool is closed when it stops).
    pub async fn reopen_db(&self) -> Db {
        let common = self.settings.common();
        Db::connect(&common.database_url, &common.db_schema, S::MIGRATIONS)
            .await
            .unwrap_or_else(|e| panic!("reopening the database of {}: {e}", S::NAME))
    }

    /// `GET` a path of the service.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// Waits until `/health/ready` answers 200.
    pub async fn wait_until_ready(&self) {
        eventually(WAIT, "readiness", || async {
            let res = self.http.get(self.url("/health/ready")).send().await.ok()?;
            (res.status() == 200).then_some(())
        })
        .await
        .unwrap();
    }

    /// Every message stored in `stream`, oldest first.
    pub async fn stream_messages(&self, stream: &str) -> Vec<StreamMessage> {
        crate::stream_messages(&self.js, stream).await
    }

    /// The messages of `stream` published on `subject`, oldest first.
    pub async fn messages_on(&self, stream: &str, subject: &str) -> Vec<StreamMessage> {
        let all = self.stream_messages(stream).await;
        all.into_iter().filter(|m| m.subject.as_str() == subject).collect()
    }

    /// Waits until `stream` holds at least `n` messages on `subject`; returns them all.
    pub async fn wait_messages(&self, stream: &str, subject: &str, n: usize) -> Vec<StreamMessage> {
        eventually(WAIT, &format!("{n} message(s) on {subject}"), || async {
            let m = self.messages_on(stream, subject).await;
            (m.len() >= n).then_some(m)
        })
        .await
        .unwrap()
    }

    /// Every event of `stream`, oldest first, read back as [`Received`].
    pub async fn received(&self, stream: &str) -> Vec<Received> {
        self.stream_messages(stream).await.into_iter().map(Received::from).collect()
    }

    /// The events of `stream` about `subject` (their envelope's `subject`: an order id, say).
    pub async fn events_about(&self, stream: &str, subject: &str) -> Vec<Received> {
        let all = self.received(stream).await;
        all.into_iter().filter(|r| r.envelope["subject"] == subject).collect()
    }

    /// Waits until `stream` holds at least `n` events about `subject`; returns them all.
    pub async fn wait_events_about(&self, stream: &str, subject: &str, n: usize) -> Vec<Received> {
        eventually(WAIT, &format!("{n} event(s) on {stream} about {subject}"), || async {
            let events = self.events_about(stream, subject).await;
            (events.len() >= n).then_some(events)
        })
        .await
        .unwrap()
    }

    /// Every dead letter (the DLQ stream), oldest first.
    pub async fn dead_letters(&self) -> Vec<Received> {
        self.received("DLQ").await
    }

    /// The JetStream view of one durable consumer.
    pub async fn consumer_info(&self, stream: &str, durable: &str) -> consumer::Info {
        self.js.get_stream(stream).await.unwrap().consumer_info(durable).await.unwrap()
    }

    /// Waits until every consumer of the service has handled everything published so far and its
    /// outbox is empty: after this, the service emits nothing more without new input.
    pub async fn wait_until_quiet(&self) {
        let consumers: Vec<(&str, &str)> =
            self.consumers.iter().map(|c| (c.stream.as_str(), c.durable.as_str())).collect();
        let db = &self.db;
        let outbox_empty = || async { OutboxRelay::backlog(db).await.is_ok_and(|b| b.unsent == 0) };
        crate::wait_until_quiet(&self.js, &consumers, outbox_empty).await;
    }

    /// Rows in one of the service's tables (`orders`, `outbox`, …).
    pub async fn rows_in(&self, table: &'static str) -> i64 {
        self.db
            .read::<_, SqlError, _>(move |tx| {
                Box::pin(
                    async move { tx.query_one(&format!("SELECT COUNT(*) FROM {table}"), &[]).await?.int(0) },
                )
            })
            .await
            .unwrap()
    }

    /// Publishes an event as another service would (the project's envelope and headers), on its
    /// standard lane.
    pub async fn publish<T: Event>(&self, envelope: &Envelope<T>) -> PublishAck {
        self.publish_on_lane(envelope, false).await
    }

    /// Publishes an event on its standard or express lane.
    pub async fn publish_on_lane<T: Event>(&self, envelope: &Envelope<T>, express: bool) -> PublishAck {
        self.send(OutgoingMessage::from_envelope(envelope, express).unwrap()).await
    }

    /// Publishes the same envelope under another `Nats-Msg-Id`, so JetStream stores it again (as
    /// a re-sent event after the duplicate window would be).
    pub async fn publish_with_msg_id<T: Event>(&self, envelope: &Envelope<T>, msg_id: &str) -> PublishAck {
        let mut msg = OutgoingMessage::from_envelope(envelope, false).unwrap();
        msg.message_id = msg_id.to_owned();
        self.send(msg).await
    }

    /// [`publish_with_msg_id`](Self::publish_with_msg_id) with the message id `<envelope id>-again`.
    pub async fn publish_again<T: Event>(&self, envelope: &Envelope<T>) -> PublishAck {
        self.publish_with_msg_id(envelope, &format!("{}-again", envelope.id)).await
    }

    /// Publishes many events at once (pipelined), on their standard lanes.
    pub async fn publish_all<T: Event>(&self, envelopes: &[Envelope<T>]) {
        let msgs: Vec<_> =
            envelopes.iter().map(|e| OutgoingMessage::from_envelope(e, false).unwrap()).collect();
        for r in self.publisher.publish_all(&msgs).await {
            r.unwrap();
        }
    }

    /// Publishes `data` in an envelope from [`TEST_SOURCE`] with the correlation id
    /// [`TEST_CORRELATION_ID`], on its standard lane; returns the envelope.
    pub async fn publish_event<T: Event>(&self, data: T) -> Envelope<T> {
        let correlation = CorrelationId::parse(TEST_CORRELATION_ID).unwrap();
        let envelope = Envelope::new(TEST_SOURCE, correlation, data);
        self.publish(&envelope).await;
        envelope
    }

    async fn send(&self, msg: OutgoingMessage) -> PublishAck {
        self.publisher.publish(&msg).await.unwrap()
    }

    /// Cancels the service and waits for it to drain; returns what it returned. Panics when the
    /// service does not return within its shutdown timeout and a margin, when it panicked, or
    /// when it was stopped before.
    pub async fn stop(&self) -> anyhow::Result<()> {
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        let task = task.unwrap_or_else(|| panic!("{} is already stopped", S::NAME));
        self.shutdown.cancel();
        let bound = self.settings.common().shutdown_timeout() + STOP_MARGIN;
        match tokio::time::timeout(bound, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("the task of {} was cancelled: {e}", S::NAME),
            Err(_) => panic!("{} did not stop within {bound:?}", S::NAME),
        }
    }
}

/// An event as read back from a stream.
#[derive(Debug, Clone)]
pub struct Received {
    /// The subject it was published on.
    pub subject: String,
    /// The envelope (`Null` when the payload is not JSON).
    pub envelope: Value,
    /// Its `X-Correlation-ID` header.
    pub correlation_header: Option<String>,
    /// Its `traceparent` header.
    pub traceparent_header: Option<String>,
    /// Its `Orderflow-Dlq-Reason` header, on dead letters.
    pub dlq_reason: Option<String>,
}

impl Received {
    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.envelope["data"]
    }
}

impl From<StreamMessage> for Received {
    fn from(m: StreamMessage) -> Self {
        let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
        Self {
            subject: m.subject.to_string(),
            envelope: serde_json::from_slice(&m.payload).unwrap_or(Value::Null),
            correlation_header: header("X-Correlation-ID"),
            traceparent_header: header("traceparent"),
            dlq_reason: header("Orderflow-Dlq-Reason"),
        }
    }
}
