//! Start-up against a real PostgreSQL and nats-server that are not reachable yet: a service waits
//! for them instead of exiting, its port answers live 200 and ready 503 problem+json naming what
//! it waits for, and it becomes ready once they are there, on the same port, without a restart.
//! A shutdown during start-up returns at once with `Ok`, rolling back a migration under way; a
//! permanent error (a wrong password) still fails at once.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use orderflow_platform::kernel::{self, Application, CommonSettings, NoFlags, Service, Wiring};
use orderflow_platform::{DbError, Migration};
use orderflow_test_support::service::WAIT;
use orderflow_test_support::tcp_proxy::TcpProxy;
use orderflow_test_support::{DbBackend, TestDb, TestNats, eventually, free_port, postgres_url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;

/// How long a stop during start-up may take: "at once", with room for a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(3);

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ProbeSettings {
    #[serde(flatten)]
    common: CommonSettings,
}

orderflow_platform::common_settings!(ProbeSettings);

/// The smallest service: one table, one route.
#[derive(Debug)]
struct Probe;

impl Service for Probe {
    const NAME: &'static str = "probe-service";
    const SECTION: &'static str = "probe";
    const MIGRATIONS: &'static [Migration] =
        &[Migration { version: 100, description: "probe", sql: "CREATE TABLE probe (id TEXT PRIMARY KEY)" }];
    type Flags = NoFlags;
    type Settings = ProbeSettings;

    fn new(_: &ProbeSettings) -> anyhow::Result<Self> {
        Ok(Self)
    }

    fn wire(self, _: &ProbeSettings, _: &mut Wiring) -> Router {
        Router::new().route("/hello", get(|| async { "hello" }))
    }
}

/// Marks the slow migration's statement in `pg_stat_activity`.
const SLOW_MARKER: &str = "slow-probe-migration";

/// A service whose migration takes seconds (PostgreSQL only): time to stop it in the middle.
#[derive(Debug)]
struct SlowProbe;

impl Service for SlowProbe {
    const NAME: &'static str = "slow-probe-service";
    const SECTION: &'static str = "probe";
    const MIGRATIONS: &'static [Migration] = &[Migration {
        version: 100,
        description: "slow probe",
        sql: "CREATE TABLE slow_probe (id TEXT PRIMARY KEY); SELECT pg_sleep(3) /* slow-probe-migration */;",
    }];
    type Flags = NoFlags;
    type Settings = ProbeSettings;

    fn new(_: &ProbeSettings) -> anyhow::Result<Self> {
        Ok(Self)
    }

    fn wire(self, _: &ProbeSettings, _: &mut Wiring) -> Router {
        Router::new()
    }
}

fn settings(nats_url: String, database_url: String, schema: String) -> ProbeSettings {
    orderflow_telemetry::init_for_tests();
    let mut common = CommonSettings::default().placed(nats_url, database_url, schema);
    common.shutdown_timeout_secs = 10;
    ProbeSettings { common }
}

/// The test PostgreSQL's address.
async fn postgres_address() -> SocketAddr {
    let opts: PgConnectOptions = postgres_url().parse().unwrap();
    tokio::net::lookup_host((opts.get_host(), opts.get_port())).await.unwrap().next().unwrap()
}

/// The test PostgreSQL's URL with `127.0.0.1:port` in place of its address.
fn postgres_url_on(port: u16) -> String {
    let url = postgres_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, host_and_path) = rest.rsplit_once('@').map_or(("", rest), |(c, h)| (c, h));
    let path = host_and_path.find(['/', '?']).map_or("", |i| &host_and_path[i..]);
    let at = if credentials.is_empty() { String::new() } else { format!("{credentials}@") };
    format!("{scheme}://{at}127.0.0.1:{port}{path}")
}

/// A PostgreSQL schema of this test's own.
fn unique_schema() -> String {
    let db = TestDb::new(DbBackend::Postgres).unwrap();
    db.for_service("probe").1
}

/// `GET http://127.0.0.1:<port><path>`: status, content type and JSON body (`Null` if none).
async fn get_json(port: u16, path: &str) -> Option<(u16, String, Value)> {
    let client = orderflow_platform::tls::http_client();
    let res = client.get(format!("http://127.0.0.1:{port}{path}")).send().await.ok()?;
    let status = res.status().as_u16();
    let content_type =
        res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = res.json().await.unwrap_or(Value::Null);
    Some((status, content_type, body))
}

/// Waits until readiness answers 503 with a detail containing `waiting`; returns the body.
async fn wait_until_not_ready_waiting_for(port: u16, waiting: &str) -> Value {
    let body = eventually(WAIT, &format!("readiness to say {waiting:?}"), || async {
        let (status, content_type, body) = get_json(port, "/health/ready").await?;
        let detail = body["detail"].as_str()?;
        (status == 503 && content_type == "application/problem+json" && detail.contains(waiting))
            .then_some(body)
    })
    .await;
    body.unwrap_or_else(|e| panic!("{e}"))
}

async fn wait_until_ready(port: u16) {
    let ready = eventually(WAIT, "readiness", || async {
        let (status, ..) = get_json(port, "/health/ready").await?;
        (status == 200).then_some(())
    })
    .await;
    ready.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_started_before_postgresql_is_reachable_says_so_and_becomes_ready_without_a_restart() {
    let nats = TestNats::start().unwrap();
    let proxy = TcpProxy::closed(postgres_address().await).unwrap();
    let proxy_port = proxy.port();
    let url = postgres_url_on(proxy_port);
    let starting = Application::<Probe>::bind(settings(nats.url(), url, unique_schema())).await.unwrap();
    let port = starting.port();
    let connecting = tokio::spawn(starting.connect());

    let waiting = wait_until_not_ready_waiting_for(port, "waiting for PostgreSQL").await;
    let live = get_json(port, "/health/live").await.unwrap();
    let other = get_json(port, "/hello").await.unwrap();
    proxy.open().await.unwrap();
    let app = tokio::time::timeout(WAIT, connecting).await.unwrap().unwrap().unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    wait_until_ready(port).await;

    assert_eq!(live.0, 200);
    assert_eq!(waiting["type"], "https://orderflow.dev/problems/unavailable");
    assert_eq!(waiting["status"], 503);
    let detail = waiting["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("probe-service is starting: waiting for PostgreSQL at 127.0.0.1:"),
        "{detail}"
    );
    assert!(detail.contains(&format!(":{proxy_port}/")) && detail.contains("(attempt "), "{detail}");
    assert!(!detail.contains("orderflow:orderflow"), "no credentials in a public answer: {detail}");
    assert_eq!((other.0, other.1.as_str()), (503, "application/problem+json"));
    let hello = orderflow_platform::tls::http_client()
        .get(format!("http://127.0.0.1:{port}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.text().await.unwrap(), "hello");
    shutdown.cancel();
    tokio::time::timeout(WAIT, running).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_started_before_nats_says_so_and_becomes_ready_once_nats_runs() {
    let db = TestDb::new(DbBackend::Sqlite).unwrap();
    let (url, schema) = db.for_service("probe");
    let nats_port = free_port().unwrap();
    let starting = Application::<Probe>::bind(settings(format!("nats://127.0.0.1:{nats_port}"), url, schema))
        .await
        .unwrap();
    let port = starting.port();
    let connecting = tokio::spawn(starting.connect());

    let waiting =
        wait_until_not_ready_waiting_for(port, &format!("waiting for NATS at nats://127.0.0.1:{nats_port}"))
            .await;
    let live = get_json(port, "/health/live").await.unwrap();
    let _nats = tokio::task::spawn_blocking(move || TestNats::start_on(nats_port)).await.unwrap().unwrap();
    let app = tokio::time::timeout(WAIT, connecting).await.unwrap().unwrap().unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    wait_until_ready(port).await;

    assert_eq!(live.0, 200);
    assert_eq!(waiting["status"], 503);
    assert!(waiting["detail"].as_str().unwrap().contains("(attempt "), "{waiting}");
    shutdown.cancel();
    tokio::time::timeout(WAIT, running).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_while_waiting_for_nats_returns_promptly_with_ok_and_closes_the_port() {
    let db = TestDb::new(DbBackend::Sqlite).unwrap();
    let (url, schema) = db.for_service("probe");
    let mut settings = settings(format!("nats://127.0.0.1:{}", free_port().unwrap()), url, schema);
    let port = free_port().unwrap();
    settings.common.port = port;
    let shutdown = CancellationToken::new();
    // The path a service binary's `main` takes.
    let serving = tokio::spawn(kernel::run::<Probe>(settings, shutdown.clone()));
    wait_until_not_ready_waiting_for(port, "waiting for NATS").await;

    shutdown.cancel();
    let stopped = tokio::time::timeout(PROMPTLY, serving).await;

    let result = stopped.expect("a shutdown during start-up returns at once").unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the port is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_a_migration_rolls_it_back_and_the_next_start_applies_it_once() {
    let schema = unique_schema();
    let admin = PgPoolOptions::new().max_connections(1).connect(&postgres_url()).await.unwrap();
    let nats_url = format!("nats://127.0.0.1:{}", free_port().unwrap());
    let starting = Application::<SlowProbe>::bind(settings(nats_url.clone(), postgres_url(), schema.clone()))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let connecting =
        tokio::spawn(async move { starting.connect_until(&stop).await.map(|app| app.is_some()) });
    let running_migration = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%{SLOW_MARKER}%'"
    );
    let migration_running = || async {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(running_migration.clone()))
            .fetch_one(&admin)
            .await
            .unwrap();
        n > 0
    };
    eventually(WAIT, "the slow migration to run", || async { migration_running().await.then_some(()) })
        .await
        .unwrap();

    shutdown.cancel();
    let stopped = tokio::time::timeout(PROMPTLY, connecting).await.expect("returns at once").unwrap();
    eventually(WAIT, "the interrupted migration's session to end", || async {
        (!migration_running().await).then_some(())
    })
    .await
    .unwrap();
    let table = format!("SELECT to_regclass('\"{schema}\".slow_probe')::text");
    let table_after_stop: Option<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(table.clone())).fetch_one(&admin).await.unwrap();
    let recorded = format!("SELECT count(*) FROM \"{schema}\"._sqlx_migrations WHERE version = 100");
    let recorded_after_stop: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(recorded.clone())).fetch_one(&admin).await.unwrap();
    // The next start migrates again, from a clean state (NATS is still missing: stop it there).
    let again =
        Application::<SlowProbe>::bind(settings(nats_url, postgres_url(), schema.clone())).await.unwrap();
    let again_port = again.port();
    let next = CancellationToken::new();
    let stop = next.clone();
    let restarted = tokio::spawn(async move { again.connect_until(&stop).await.map(|app| app.is_some()) });
    wait_until_not_ready_waiting_for(again_port, "waiting for NATS").await;
    next.cancel();
    let restarted = tokio::time::timeout(PROMPTLY, restarted).await.unwrap().unwrap();

    assert!(!stopped.unwrap(), "stopped before serving");
    assert_eq!(table_after_stop, None, "the interrupted migration left its table");
    assert_eq!(recorded_after_stop, 0, "the interrupted migration was recorded");
    assert!(!restarted.unwrap());
    let table_now: Option<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(table)).fetch_one(&admin).await.unwrap();
    let recorded_now: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(recorded)).fetch_one(&admin).await.unwrap();
    assert!(table_now.is_some());
    assert_eq!(recorded_now, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_postgresql_password_fails_at_once_instead_of_waiting() {
    let url = postgres_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let wrong = format!("{scheme}://orderflow:not-the-password@{host}");
    let nats_url = format!("nats://127.0.0.1:{}", free_port().unwrap());

    let built =
        tokio::time::timeout(WAIT, Application::<Probe>::build(settings(nats_url, wrong, unique_schema())))
            .await;

    let error = built.expect("a permanent error does not wait").unwrap_err();
    let db_error = error.chain().find_map(|e| e.downcast_ref::<DbError>()).expect("a database error");
    assert!(matches!(db_error, DbError::Connect { .. }), "{db_error:?}");
    assert!(!db_error.is_transient());
    assert!(!format!("{error:#}").contains("not-the-password"), "{error:#}");
}

#[tokio::test]
async fn a_database_host_that_does_not_resolve_yet_is_a_transient_error() {
    let refused =
        orderflow_platform::Db::open("postgres://u:p@orderflow-no-such-host.invalid/db", "probe").await;

    let error = refused.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}
