//! The service kernel: what a service is, and the one way every service is configured, built,
//! run and stopped.
//!
//! A service implements [`Service`]: its name, its settings (with [`CommonSettings`] flattened
//! in), its migrations, what it checks before anything is bound, what it does once its database
//! is open, and its wiring — routes, consumers, request-reply endpoints and background tasks —
//! through [`Wiring`]. [`Application`] does everything else the same way for every service:
//! bind ([`Starting`]), open and migrate the database and connect NATS — waiting for each with
//! backoff while the port answers live 200 and ready 503 naming what it waits for, and stopping
//! at once on a shutdown meanwhile — provision JetStream, serve HTTP with health and metrics, and
//! drain in the order that loses nothing on shutdown (readiness 503, HTTP finishes its requests,
//! consumers their handlers, the outbox relay publishes what they committed, NATS drains), all
//! within one deadline.
//! [`main`] is a service binary's whole `main`; [`load_settings`] is how `orderflow up` and
//! `orderflow serve` configure the same services in one process.
//!
//! It never decides business rules, and it is the only place that spawns a service's consumers,
//! so every consumer gets both lanes, the service's tuning and a readiness check, and every
//! service that consumes anything gets its max-deliveries consumer (`<section>-max-deliveries`
//! on `ADVISORIES`), which copies to the DLQ what the server gave up on for any of them — even
//! while no instance was running.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use axum::Router;
use clap::{Args as _, FromArgMatches as _};
use orderflow_events::{EventKind, Versioned};
use orderflow_messaging::{
    ConsumerHandle, ConsumerRuntime, ConsumerSpec, EventVersions, Handler, MaxDeliveriesRuntime,
    RuntimeConfig,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{SetOnce, watch};
use tokio_util::sync::CancellationToken;

use crate::config::ServiceFlags;
use crate::discovery::MicroEndpoint;
use crate::http::{AdminGuard, HealthCheck, Secret};
use crate::service::{Infra, InfraConfig, Running};
use crate::{Db, Migration};

/// The settings every service has, flattened into its own (`[order] port = 8080`,
/// `ORDERFLOW__INVENTORY__CONSUMER__CONCURRENCY=8`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonSettings {
    /// Interface the HTTP server listens on.
    pub host: String,
    /// HTTP port; 0 picks a free one (tests).
    pub port: u16,
    /// NATS server URL(s), comma-separated.
    pub nats_url: String,
    /// The service's NATS identity: a credentials file (user JWT + seed) or an nkey seed file
    /// (`orderflow nats credentials` writes `<service>.nk`). With one, the service binds to the
    /// consumers the admin identity provisioned instead of creating them (its permissions do
    /// not allow that); without, it connects anonymously and provisions JetStream itself.
    pub nats_creds: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed the NATS servers' certificates, trusted instead of the
    /// system's roots (`NATS_CA`); setting it requires TLS.
    pub nats_ca: Option<std::path::PathBuf>,
    /// PEM client certificate for NATS servers that verify clients (`verify: true`), with
    /// `nats_key`.
    pub nats_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `nats_cert`.
    pub nats_key: Option<std::path::PathBuf>,
    /// Refuse a NATS server that does not offer TLS, even without `nats_ca` (the system's roots
    /// are trusted then).
    pub nats_tls_required: bool,
    /// `sqlite://path` (a file under `.orderflow/` by default) or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL schema of this service (ignored for SQLite).
    pub db_schema: String,
    /// Upper bound on a graceful shutdown (stop HTTP, finish handlers, flush the outbox, drain
    /// NATS); past it the service gives up and reports an error.
    pub shutdown_timeout_secs: u64,
    /// How long readiness answers 503 before the listener closes on shutdown, so that a load
    /// balancer stops routing first. 0 closes at once; set it to the balancer's probe period.
    pub(crate) ready_drain_delay_ms: u64,
    /// JetStream stream replicas this service provisions (1 locally, 3 in a cluster); every
    /// service of one deployment must agree, or provisioning flips the replica count.
    pub(crate) stream_replicas: usize,
    /// Tuning of each of the service's consumers.
    pub consumer: ConsumerSettings,
    /// Requests of the service's own routes handled at once; beyond it they are answered
    /// `503` + `Retry-After: 1` at once (health and metrics are never shed).
    pub max_concurrent_requests: usize,
    /// The admin token its admin routes ask for (`Authorization: Bearer …`); none keeps them
    /// closed. Usually from `ORDERFLOW_ADMIN_TOKEN` or `--admin-token`, shared by every service.
    pub admin_token: Option<Secret>,
    /// The versions of each event the service publishes and accepts (`[order.events]
    /// publish = ["v1", "v2"]`): the knob of a schema migration (docs/EVENTS.md).
    pub events: EventVersions,
}

/// Tuning of one consumer runtime.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerSettings {
    /// Handlers running at once per consumer.
    pub concurrency: usize,
    /// Largest pull request.
    pub fetch_batch: usize,
    /// A handler running longer is abandoned and its message redelivered.
    pub handler_timeout_secs: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        Self {
            concurrency: 32,
            fetch_batch: runtime.fetch_batch,
            handler_timeout_secs: runtime.handler_timeout.as_secs(),
        }
    }
}

impl Default for CommonSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 0,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            nats_creds: None,
            nats_ca: None,
            nats_cert: None,
            nats_key: None,
            nats_tls_required: false,
            database_url: String::new(),
            db_schema: String::new(),
            shutdown_timeout_secs: 30,
            ready_drain_delay_ms: 0,
            stream_replicas: 1,
            consumer: ConsumerSettings::default(),
            max_concurrent_requests: 1024,
            admin_token: None,
            events: EventVersions::default(),
        }
    }
}

impl CommonSettings {
    /// The defaults of a service listening on `port`, with its SQLite file
    /// `.orderflow/<db_file>.db` and its PostgreSQL schema `db_schema`.
    pub fn for_service(port: u16, db_file: &str, db_schema: &str) -> Self {
        Self {
            port,
            database_url: format!("sqlite://.orderflow/{db_file}.db"),
            db_schema: db_schema.to_owned(),
            ..Self::default()
        }
    }

    /// These settings on loopback and any free port, with the given NATS server and database:
    /// how tests and in-process systems place a service.
    pub fn placed(self, nats_url: String, database_url: String, db_schema: String) -> Self {
        Self { host: "127.0.0.1".to_owned(), port: 0, nats_url, database_url, db_schema, ..self }
    }

    /// How to use TLS to NATS: `nats_ca`, `nats_cert`, `nats_key`, `nats_tls_required`.
    pub fn nats_tls(&self) -> orderflow_messaging::NatsTls {
        orderflow_messaging::NatsTls {
            ca_file: self.nats_ca.clone(),
            cert_file: self.nats_cert.clone(),
            key_file: self.nats_key.clone(),
            required: self.nats_tls_required,
        }
    }

    /// [`Self::shutdown_timeout_secs`] as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// The consumer runtimes' tuning.
    pub(crate) fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            concurrency: self.consumer.concurrency.max(1),
            fetch_batch: self.consumer.fetch_batch.max(1),
            handler_timeout: Duration::from_secs(self.consumer.handler_timeout_secs.max(1)),
            versions: Arc::new(self.events.clone()),
            provision: self.nats_creds.is_none(),
            ..RuntimeConfig::default()
        }
    }
}

// By hand so that a password in `database_url` never reaches a log line.
impl std::fmt::Debug for CommonSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("nats_url", &crate::config::redact_urls(&self.nats_url))
            .field("nats_creds", &self.nats_creds)
            .field("nats_ca", &self.nats_ca)
            .field("nats_cert", &self.nats_cert)
            .field("nats_key", &self.nats_key)
            .field("nats_tls_required", &self.nats_tls_required)
            .field("database_url", &crate::db::redact(&self.database_url))
            .field("db_schema", &self.db_schema)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("ready_drain_delay_ms", &self.ready_drain_delay_ms)
            .field("stream_replicas", &self.stream_replicas)
            .field("consumer", &self.consumer)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("admin_token", &self.admin_token)
            .field("events", &self.events)
            .finish()
    }
}

/// Settings that hold [`CommonSettings`]: a service's, where they are flattened into the field
/// `common`. Implement it with [`common_settings!`](crate::common_settings).
pub trait HasCommon {
    /// The settings every service has.
    fn common(&self) -> &CommonSettings;
    /// … to change (an in-process system places every service).
    fn common_mut(&mut self) -> &mut CommonSettings;
}

/// Implements [`HasCommon`] for a settings struct with a `common: CommonSettings` field.
#[macro_export]
macro_rules! common_settings {
    ($settings:ty) => {
        impl $crate::kernel::HasCommon for $settings {
            fn common(&self) -> &$crate::kernel::CommonSettings {
                &self.common
            }
            fn common_mut(&mut self) -> &mut $crate::kernel::CommonSettings {
                &mut self.common
            }
        }
    };
}

/// A service binary's flags: the ones every service takes, and the service's own.
#[derive(Clone, Debug, clap::Args, Serialize)]
pub struct Flags<F: clap::Args> {
    /// The flags every service takes.
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) common: ServiceFlags,
    /// The service's own.
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) own: F,
}

/// For a service with no flags of its own.
#[derive(Clone, Debug, Default, clap::Args, Serialize)]
pub struct NoFlags {}

/// A service: its domain, storage, handlers and routes, as the kernel runs them.
pub trait Service: Sized + Send + 'static {
    /// `order-service`: logs, metrics labels, the NATS client name, the micro service.
    const NAME: &'static str;
    /// `order`: the section of the configuration file and environment, and the prefix of the
    /// service's durable consumer names (`order-payments-completed`).
    const SECTION: &'static str;
    /// The service's own migrations (the platform adds the outbox and the inbox).
    const MIGRATIONS: &'static [Migration];
    /// Flags of its own, besides [`ServiceFlags`] ([`NoFlags`] for none); absent ones are
    /// skipped when serialized, so they never override the file or the environment.
    type Flags: clap::Args + Serialize + std::fmt::Debug + Send + Sync + 'static;
    /// Its settings, with [`CommonSettings`] flattened in.
    type Settings: HasCommon
        + Clone
        + std::fmt::Debug
        + Default
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// Checks the service's own settings and builds what it holds (clients, breakers), before
    /// anything is bound or connected: a misconfiguration fails here.
    fn new(settings: &Self::Settings) -> anyhow::Result<Self>;

    /// Once the database is open and migrated and NATS is connected (seeding, for example).
    fn on_connected(
        &self,
        _settings: &Self::Settings,
        _db: &Db,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Routes, consumers, endpoints and background tasks. Health and metrics routes are added
    /// by the kernel.
    fn wire(self, settings: &Self::Settings, wiring: &mut Wiring) -> Router;
}

/// What a service wires itself with: its database and JetStream, and the one way to start
/// consumers and background tasks.
#[derive(Debug)]
pub struct Wiring {
    db: Db,
    js: jetstream::Context,
    shutdown: CancellationToken,
    section: &'static str,
    runtime: RuntimeConfig,
    pause: Option<watch::Receiver<bool>>,
    consumers: Vec<ConsumerHandle>,
    registered: Vec<ConsumerId>,
    endpoints: Vec<MicroEndpoint>,
    admin: AdminGuard,
}

/// A durable consumer a service registered with [`Wiring::consume`]: the stream it reads and
/// its durable name (`ORDERS`, `inventory-orders-created`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerId {
    /// The stream.
    pub stream: String,
    /// The durable name.
    pub durable: String,
}

/// The durable consumers an [`Application`] registers, in the order its wiring added them (the
/// standard lane's before the express lane's of each event), then its max-deliveries consumer
/// (`ADVISORIES`, `<section>-max-deliveries`) when it has any: known once
/// [`Application::run_until_stopped`] has wired the service, and readable through this handle
/// after the application has moved into its task (tests wait for a service to be quiet this way).
#[derive(Clone, Debug, Default)]
pub struct WiredConsumers(Arc<SetOnce<Vec<ConsumerId>>>);

impl WiredConsumers {
    /// Waits until the service is wired, then returns its consumers.
    pub async fn wait(&self) -> &[ConsumerId] {
        self.0.wait().await
    }
}

impl Wiring {
    /// The service's database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// JetStream on the service's connection.
    pub fn js(&self) -> &jetstream::Context {
        &self.js
    }

    /// Cancelled when the service begins to shut down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// What the service's admin routes check: layer them with
    /// [`require_admin`](crate::http::require_admin).
    pub fn admin(&self) -> &AdminGuard {
        &self.admin
    }

    /// Adjusts the tuning of the consumers added after this call.
    pub fn tune(&mut self, adjust: impl FnOnce(&mut RuntimeConfig)) -> &mut Self {
        adjust(&mut self.runtime);
        self
    }

    /// Consumers added after this call stop fetching while `paused` is `true`.
    pub fn pause_while(&mut self, paused: watch::Receiver<bool>) -> &mut Self {
        self.pause = Some(paused);
        self
    }

    /// Runs `handler` for every `kind` event, on the standard lane's consumer and on the express
    /// lane's (`<section>-<event>` and `<section>-<event>-express`), in every version of `kind`
    /// the service accepts (`events.consume`), each upcast into `T`.
    pub fn consume<T: Versioned, H: Handler<T> + Clone>(&mut self, kind: EventKind, handler: H) -> &mut Self {
        debug_assert_eq!(kind, T::KIND, "a consumer of {kind} must handle that kind");
        let accept = self.runtime.versions.consume_of(kind);
        for express in [false, true] {
            let spec = ConsumerSpec::for_lane(self.section, kind, express).accepting(&accept);
            self.registered.push(ConsumerId { stream: spec.stream.clone(), durable: spec.durable.clone() });
            let mut runtime = ConsumerRuntime::new(self.js.clone(), spec, handler.clone())
                .with_config(self.runtime.clone());
            if let Some(paused) = &self.pause {
                runtime = runtime.with_pause(paused.clone());
            }
            self.consumers.push(runtime.spawn(self.shutdown.child_token()));
        }
        self
    }

    /// Starts the service's max-deliveries consumer, filtered to the advisories of every consumer
    /// registered so far (called by the kernel once the service is wired). A service without
    /// consumers has none.
    fn watch_max_deliveries(&mut self, config: RuntimeConfig) {
        if self.registered.is_empty() {
            return;
        }
        let spec = ConsumerSpec::for_max_deliveries(
            self.section,
            self.registered.iter().map(|c| (c.stream.as_str(), c.durable.as_str())),
        );
        self.registered.push(ConsumerId { stream: spec.stream.clone(), durable: spec.durable.clone() });
        let runtime = MaxDeliveriesRuntime::new(self.js.clone(), spec).with_config(config);
        self.consumers.push(runtime.spawn(self.shutdown.child_token()));
    }

    /// A request-reply endpoint of the service's NATS micro service.
    pub fn endpoint(&mut self, endpoint: MicroEndpoint) -> &mut Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Runs `task` in the background; it is given the shutdown token and must end when it is
    /// cancelled.
    pub fn spawn<F, Fut>(&mut self, task: F) -> &mut Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(task(self.shutdown.clone()));
        self
    }
}

/// A service built and connected, not yet serving.
#[derive(Debug)]
pub struct Application<S: Service> {
    settings: S::Settings,
    service: S,
    infra: Infra,
    listener: TcpListener,
    port: u16,
    consumers: WiredConsumers,
    admin: AdminGuard,
}

/// A service whose settings are checked and whose port is bound, not yet connected: see
/// [`Starting::connect`].
#[derive(Debug)]
pub struct Starting<S: Service> {
    settings: S::Settings,
    service: S,
    listener: TcpListener,
    port: u16,
    admin: AdminGuard,
}

impl<S: Service> Application<S> {
    /// Checks the settings, binds the listener (port 0 picks a free one), opens and migrates the
    /// database, connects NATS, provisions JetStream, then runs [`Service::on_connected`]:
    /// [`bind`](Self::bind), then [`Starting::connect`]. It waits for an unreachable database or
    /// NATS server; everything else that can fail at start-up fails here.
    pub async fn build(settings: S::Settings) -> anyhow::Result<Self> {
        Self::bind(settings).await?.connect().await
    }

    /// [`build`](Self::build) with a service value made by the caller (tests inject clocks this
    /// way).
    pub async fn build_with(settings: S::Settings, service: S) -> anyhow::Result<Self> {
        Self::bind_with(settings, service).await?.connect().await
    }

    /// Checks the settings and binds the listener (port 0 picks a free one); connects nothing.
    pub async fn bind(settings: S::Settings) -> anyhow::Result<Starting<S>> {
        // Before the service builds its HTTP clients: reqwest takes the process's provider.
        crate::tls::install_crypto_provider();
        let service = S::new(&settings).with_context(|| format!("{}: invalid settings", S::NAME))?;
        Self::bind_with(settings, service).await
    }

    /// [`bind`](Self::bind) with a service value made by the caller.
    pub async fn bind_with(settings: S::Settings, service: S) -> anyhow::Result<Starting<S>> {
        crate::tls::install_crypto_provider();
        let common = settings.common();
        let admin = AdminGuard::from_setting(common.admin_token.as_ref())
            .with_context(|| format!("{}: invalid admin_token", S::NAME))?;
        common.events.validate().with_context(|| format!("{}: invalid events", S::NAME))?;
        let listener = crate::http::bind(&common.host, common.port, S::NAME).await?;
        let port = listener.local_addr().context("reading the bound HTTP address")?.port();
        Ok(Starting { settings, service, listener, port, admin })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's database.
    pub fn db(&self) -> &Db {
        &self.infra.db
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &S::Settings {
        &self.settings
    }

    /// The durable consumers the service registers (both lanes of each, then its max-deliveries
    /// consumer), filled in when [`run_until_stopped`](Self::run_until_stopped) wires it.
    pub fn consumers(&self) -> WiredConsumers {
        self.consumers.clone()
    }

    /// Serves HTTP and runs the consumers, endpoints and tasks the service wires, until
    /// `shutdown` is cancelled; then drains (see the module docs).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { settings, service, infra, listener, consumers: wired, admin, .. } = self;
        let common = settings.common().clone();
        let mut wiring = Wiring {
            db: infra.db.clone(),
            js: infra.js.clone(),
            shutdown: shutdown.clone(),
            section: S::SECTION,
            runtime: common.runtime_config(),
            pause: None,
            consumers: Vec::new(),
            registered: Vec::new(),
            endpoints: Vec::new(),
            admin,
        };
        let router = service.wire(&settings, &mut wiring);
        wiring.watch_max_deliveries(common.runtime_config());
        let Wiring { consumers, registered, endpoints, .. } = wiring;
        // `run_until_stopped` takes the application, so this is the only `set`.
        let _ = wired.0.set(registered);
        let states = consumers.iter().map(|c| (c.name().to_owned(), c.watch_state())).collect();
        let health = infra.health().with(HealthCheck::consumers(states));
        crate::service::run(
            Running {
                infra,
                listener,
                router,
                health,
                consumers,
                shutdown_timeout: common.shutdown_timeout(),
                ready_drain_delay: Duration::from_millis(common.ready_drain_delay_ms),
                max_concurrent_requests: common.max_concurrent_requests,
                micro_endpoints: endpoints,
            },
            shutdown,
        )
        .await
    }
}

impl<S: Service> Starting<S> {
    /// The bound HTTP port: it answers `/health/live` 200 and `/health/ready` 503 (naming what
    /// the service waits for) from now until the service serves its own routes.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Opens and migrates the database, connects NATS, provisions JetStream, then runs
    /// [`Service::on_connected`], while the port answers as a starting service. An unreachable
    /// database (a transient error) or NATS server is waited for, with backoff and without a time
    /// limit, each failure logged at WARN; a permanent error (a bad URL, refused credentials, TLS
    /// that does not verify, a migration whose SQL fails) fails at once.
    pub async fn connect(self) -> anyhow::Result<Application<S>> {
        let Self { settings, service, listener, port, admin } = self;
        let progress = crate::startup::Progress::new(S::NAME);
        let common = settings.common();
        let connecting = async {
            let infra = Infra::connect(
                InfraConfig {
                    service: S::NAME,
                    section: S::SECTION,
                    nats_url: &common.nats_url,
                    nats_creds: common.nats_creds.as_deref(),
                    nats_tls: common.nats_tls(),
                    database_url: &common.database_url,
                    db_schema: &common.db_schema,
                    migrations: S::MIGRATIONS,
                    stream_replicas: common.stream_replicas,
                },
                &progress,
            )
            .await?;
            progress.set("running its start-up tasks");
            service
                .on_connected(&settings, &infra.db)
                .await
                .with_context(|| format!("{}: starting", S::NAME))?;
            anyhow::Ok(infra)
        };
        // On the heap: connecting, migrating and serving the probes make a large future, and
        // `orderflow up` awaits four of them at once on a test thread's 2 MiB stack.
        let infra = Box::pin(crate::startup::serve_while(&listener, &progress, connecting)).await?;
        tracing::info!(service = S::NAME, port, settings = ?settings, "built");
        Ok(Application {
            settings,
            service,
            infra,
            listener,
            port,
            consumers: WiredConsumers::default(),
            admin,
        })
    }

    /// [`connect`](Self::connect), unless `shutdown` comes first: then it stops waiting at once
    /// and returns `None`. What was under way is dropped — its connections closed, a migration
    /// that was running rolled back by the database — so nothing is left half-written.
    pub async fn connect_until(self, shutdown: &CancellationToken) -> anyhow::Result<Option<Application<S>>> {
        tokio::select! {
            connected = self.connect() => connected.map(Some),
            () = shutdown.cancelled() => {
                tracing::info!(service = S::NAME, "shutdown during start-up: stopped before serving");
                Ok(None)
            }
        }
    }
}

/// `S`'s settings: its defaults < the TOML file < the environment (`ORDERFLOW__<SECTION>__…`,
/// shared keys as `ORDERFLOW__NATS_URL`) < `flags` (absent fields skipped).
///
/// A key the settings do not have (a typo, or a renamed key) is an error, not silently ignored.
pub fn load_settings<S: Service>(
    file: Option<&std::path::Path>,
    flags: &impl Serialize,
) -> anyhow::Result<S::Settings> {
    let defaults = S::Settings::default();
    let unknown = crate::config::unknown_keys(S::SECTION, &defaults, file)
        .map_err(|e| anyhow::anyhow!("reading the {} configuration: {e}", S::NAME))?;
    if !unknown.is_empty() {
        let named: Vec<String> = unknown
            .iter()
            .map(|k| match RENAMED.iter().find(|(old, _)| old == k) {
                Some((_, new)) => format!("{k} (now {new})"),
                None => k.clone(),
            })
            .collect();
        anyhow::bail!(
            "the {} configuration has settings it does not know in [{}] (or ORDERFLOW__{}__…): {}",
            S::NAME,
            S::SECTION,
            S::SECTION.to_uppercase(),
            named.join(", ")
        );
    }
    crate::config::load(S::SECTION, &defaults, file, flags)
        .map_err(|e| anyhow::anyhow!("loading the {} configuration: {e}", S::NAME))
}

/// Keys that were renamed, for the error that names them.
const RENAMED: &[(&str, &str)] = &[("consumer_concurrency", "consumer.concurrency")];

/// What `S`'s binary was asked to do.
pub(crate) enum Invocation<F: clap::Args> {
    /// Run the service.
    Serve(Flags<F>),
    /// `healthcheck`: probe the readiness of the service these flags configure.
    Healthcheck(Flags<F>, crate::healthcheck::HealthcheckArgs),
}

/// The flags of `S`'s binary, parsed from the command line (exits with usage on bad ones).
pub(crate) fn parse_flags<S: Service>(about: &'static str) -> Invocation<S::Flags> {
    // `augment_args` sets the struct's doc comment as the about text: ours goes on after it.
    let command = Flags::<S::Flags>::augment_args(clap::Command::new(S::NAME))
        .subcommand(crate::healthcheck::HealthcheckArgs::command());
    let matches = command.about(about).version(env!("CARGO_PKG_VERSION")).get_matches();
    let flags = Flags::<S::Flags>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match matches.subcommand_matches("healthcheck") {
        Some(sub) => Invocation::Healthcheck(
            flags,
            crate::healthcheck::HealthcheckArgs::from_arg_matches(sub).unwrap_or_else(|e| e.exit()),
        ),
        None => Invocation::Serve(flags),
    }
}

/// Builds `S` from its layered settings and `flags`, runs it until `shutdown`, then drains. A
/// shutdown while it is still starting (waiting for the database or NATS) ends it at once with
/// `Ok`.
pub async fn serve<S: Service>(flags: &Flags<S::Flags>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = load_settings::<S>(flags.common.config.as_deref(), flags)?;
    run::<S>(settings, shutdown).await
}

/// Builds `S` with `settings` and runs it until `shutdown`, then drains; a shutdown during
/// start-up ends it at once with `Ok` (see [`Starting::connect_until`]). What `serve` and
/// `orderflow serve` run.
pub async fn run<S: Service>(settings: S::Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    match Application::<S>::bind(settings).await?.connect_until(&shutdown).await? {
        Some(app) => app.run_until_stopped(shutdown).await,
        None => Ok(()),
    }
}

/// A service binary's whole `main`: logs, flags, settings, build, run until SIGTERM/SIGINT,
/// drain, flush traces. `<binary> healthcheck` probes the readiness of the service the same
/// settings describe instead (see [`healthcheck`](crate::healthcheck)), exiting 0 or 1.
pub async fn main<S: Service>(about: &'static str) -> anyhow::Result<()> {
    let flags = match parse_flags::<S>(about) {
        Invocation::Serve(flags) => flags,
        Invocation::Healthcheck(flags, probe) => {
            let settings = load_settings::<S>(flags.common.config.as_deref(), &flags)?;
            let common = settings.common();
            // Blocking I/O, bounded by the probe's timeout; nothing else runs in this process.
            let ok =
                probe.run(&common.host, common.port).with_context(|| format!("{} is not ready", S::NAME))?;
            println!("{ok}");
            return Ok(());
        }
    };
    // Before the OTLP exporter's and the service's HTTP clients are built.
    crate::tls::install_crypto_provider();
    orderflow_telemetry::init("info");
    let result = serve::<S>(&flags, crate::shutdown::on_signals()).await;
    orderflow_telemetry::shutdown();
    result
}
