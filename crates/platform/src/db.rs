//! Storage: SQLite or PostgreSQL behind one API, [`Db::write`] and [`Db::read`] over a
//! [`Tx`].
//!
//! SQL here and in the services is written once for both: `$1` placeholders (SQLite accepts
//! them), `BIGINT` and `TEXT` columns, timestamps as fixed-width RFC 3339 text, conditional
//! `UPDATE … WHERE` instead of `SELECT … FOR UPDATE`, `ON CONFLICT DO NOTHING` for idempotent
//! inserts.
//!
//! SQLite: a file per service, WAL journal, `synchronous = FULL` (a committed order survives a
//! power cut), a busy timeout. Two `rusqlite` connections, each owned by a thread of its own:
//! the writer (SQLite has a single writer anyway; one connection turns lock contention into an
//! orderly queue) and a reader, which WAL lets read a committed snapshot while the writer
//! writes. Each thread runs a whole batch of queued units per wake-up.
//!
//! PostgreSQL: a schema per service selected with `search_path`, created if missing; sqlx's
//! native driver (prepared statements), a writer task for group commit and the pool for reads.
//! TLS follows the URL's `sslmode` (`prefer` when absent; `require`, `verify-ca`, `verify-full`
//! with `sslrootcert=`), over rustls with ring; a failed handshake is [`DbError::Tls`].
//!
//! Migrations and the operator tools (the invariant checker, `verify`) use a small sqlx `Any`
//! pool ([`Db::pool`]); the services' own paths never do.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AnyPool, Connection as _, Executor, SqlSafeStr};
use tokio::sync::mpsc;

use crate::sql::{SqlError, Tx};
use crate::writer::{self, CommittedOutbox, Mode, Unit, WriteError};

/// Which database is behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DbKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL schema.
    Postgres,
}

/// Errors opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres://`.
    #[error("unsupported database URL {0:?}: use sqlite://path or postgres://…")]
    UnsupportedUrl(String),
    /// The schema name is not a plain identifier.
    #[error("invalid schema name {0:?}")]
    InvalidSchema(String),
    /// Connecting failed.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// The URL, without password.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The TLS handshake with PostgreSQL failed: the server refused TLS that `sslmode` requires,
    /// or its certificate did not verify against the trusted roots (`sslrootcert` and the
    /// system's) or, with `sslmode=verify-full`, did not name the host.
    #[error("TLS to {url} failed (check sslmode, sslrootcert and the server's certificate): {source}")]
    Tls {
        /// The URL, without password.
        url: String,
        /// The driver's error (the rustls error is its source).
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrating {schema}: {source}")]
    Migrate {
        /// The schema or file.
        schema: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// Opening a SQLite connection failed.
    #[error("opening {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl DbError {
    /// Whether trying again later may succeed: the server is not reachable yet (connection
    /// refused or reset, a timeout, a name that does not resolve yet), is starting up or shutting
    /// down (SQLSTATE 57P01–57P03), has no connection slot free, or the connection was lost — also
    /// in the middle of a migration, which is safe to run again: each migration runs in one
    /// transaction with its bookkeeping row, so a lost connection rolls both back. A bad URL or
    /// schema, refused credentials, a missing database, failed TLS or a migration whose SQL fails
    /// are permanent: retrying would fail the same way.
    pub fn is_transient(&self) -> bool {
        use sqlx::migrate::MigrateError;
        match self {
            Self::Connect { source, .. } => is_transient(source),
            Self::Migrate {
                source: MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _), ..
            } => is_transient(e),
            Self::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            Self::UnsupportedUrl(_)
            | Self::InvalidSchema(_)
            | Self::Tls { .. }
            | Self::Migrate { .. }
            | Self::Io { .. } => false,
        }
    }

    /// A connection error, as [`DbError::Tls`] when TLS is what failed: sqlx reports a refused
    /// certificate as an I/O error ("error communicating with database: invalid peer
    /// certificate…"), which reads like a network fault.
    pub(crate) fn connect(url: &str, source: sqlx::Error) -> Self {
        let tls = match &source {
            sqlx::Error::Tls(_) => true,
            sqlx::Error::Io(e) => crate::tls::rustls_error(e).is_some(),
            _ => false,
        };
        let url = redact(url);
        if tls { Self::Tls { url, source } } else { Self::Connect { url, source } }
    }
}

/// How long the first connection to PostgreSQL may take (TCP, TLS, authentication) before the
/// attempt counts as failed (a transient error: a service tries again).
const SETUP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One embedded migration of a service.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Version; services use 100 and up (the platform's own tables are versions 1 and 2).
    pub version: i64,
    /// Short description.
    pub description: &'static str,
    /// Portable SQL (runs on both databases).
    pub sql: &'static str,
}

/// The platform's own tables: outbox and inbox (versions below 100).
const PLATFORM_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "outbox and inbox",
        sql: include_str!("../migrations/0001_outbox_inbox.sql"),
    },
    Migration {
        version: 2,
        description: "inbox processed_at index",
        sql: include_str!("../migrations/0002_inbox_processed_at.sql"),
    },
];

/// A service's database: its writer, its readers, and a small pool for migrations and tools.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    engine: Arc<Engine>,
    committed: CommittedOutbox,
}

#[derive(Debug)]
enum Engine {
    /// The writer's and the reader's threads, reached through their queues.
    Sqlite { writer: mpsc::Sender<Unit>, reader: mpsc::Sender<Unit> },
    /// The group-commit task's queue, and the pool it and the reads use.
    Postgres { writer: mpsc::Sender<Unit>, pool: PgPool },
}

impl Db {
    /// Connects to `url` (SQLite file or PostgreSQL), using `schema` on PostgreSQL, and runs the
    /// platform's and the service's migrations.
    pub async fn connect(url: &str, schema: &str, migrations: &[Migration]) -> Result<Self, DbError> {
        let db = Self::open(url, schema).await?;
        db.migrate(schema, migrations).await?;
        Ok(db)
    }

    /// Connects without migrating: for tools that read a service's database (the invariant
    /// checker), never for the service itself.
    pub async fn open(url: &str, schema: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        crate::tls::install_crypto_provider();
        if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(DbError::InvalidSchema(schema.to_owned()));
        }
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbKind::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(redact(url)));
        };
        let connect_err = |source| DbError::connect(url, source);
        let committed = CommittedOutbox::default();
        let (pool, engine) = match kind {
            DbKind::Sqlite => {
                // The writer and the reader each open the file: an in-memory database would be a
                // different, empty one for each of them.
                let Some(path) = sqlite_path(url) else {
                    return Err(DbError::UnsupportedUrl(format!(
                        "{} (an in-memory SQLite database)",
                        redact(url)
                    )));
                };
                if let Some(parent) = path.parent().map(Path::to_path_buf)
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(&parent).map_err(|source| DbError::Io {
                        context: format!("creating {}", parent.display()),
                        source,
                    })?;
                }
                let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
                let opts: AnyConnectOptions = url.parse().map_err(connect_err)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            for pragma in SQLITE_PRAGMAS {
                                conn.execute(*pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?;
                let path = path.display().to_string();
                let writer = sqlite_thread(&path, "writer", Mode::Write { postgres: false }, &committed)?;
                let reader = sqlite_thread(&path, "reader", Mode::Read, &committed)?;
                (pool, Engine::Sqlite { writer, reader })
            }
            DbKind::Postgres => {
                let opts: PgConnectOptions = url.parse().map_err(connect_err)?;
                // The schema must exist before any pooled connection selects it. One plain
                // connection, not a pool: a pool retries a refused connection by itself until its
                // acquire timeout and then reports only that it timed out, where a service waiting
                // for PostgreSQL wants the real error at once (and retries on its own).
                {
                    let mut setup =
                        tokio::time::timeout(SETUP_CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
                            .await
                            .unwrap_or_else(|_| {
                                Err(sqlx::Error::Io(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    format!("no answer within {SETUP_CONNECT_TIMEOUT:?}"),
                                )))
                            })
                            .map_err(connect_err)?;
                    // Instances of a service start together (compose, a Deployment): two
                    // `CREATE SCHEMA IF NOT EXISTS` at once can both pass the check and one then
                    // fails on pg_namespace's unique index. They take turns on an advisory lock
                    // held until this transaction ends.
                    let mut tx = setup.begin().await.map_err(connect_err)?;
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                        .bind(format!("orderflow:create-schema:{schema}"))
                        .execute(&mut *tx)
                        .await
                        .map_err(connect_err)?;
                    // Created only when missing: a per-service role owns its schema but may not
                    // create one (`CREATE SCHEMA IF NOT EXISTS` checks that right first).
                    let exists: Option<i32> =
                        sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                            .bind(schema)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(connect_err)?;
                    if exists.is_none() {
                        let ddl = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
                        tx.execute(sqlx::AssertSqlSafe(ddl)).await.map_err(connect_err)?;
                    }
                    tx.commit().await.map_err(connect_err)?;
                    if let Err(e) = setup.close().await {
                        tracing::debug!(error = %e, "closing the schema set-up connection");
                    }
                }
                // The schema name was checked above to be a plain identifier.
                let set_path: Arc<str> = format!("SET search_path TO \"{schema}\"").into();
                let path = set_path.clone();
                let native = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(move |conn, _| {
                        let set_path = path.to_string();
                        Box::pin(async move {
                            conn.execute(sqlx::AssertSqlSafe(set_path)).await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?;
                let any: AnyConnectOptions = url.parse().map_err(connect_err)?;
                let pool = AnyPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(move |conn, _| {
                        let set_path = set_path.to_string();
                        Box::pin(async move {
                            conn.execute(sqlx::AssertSqlSafe(set_path)).await?;
                            Ok(())
                        })
                    })
                    .connect_with(any)
                    .await
                    .map_err(connect_err)?;
                let (writer, queue) = mpsc::channel(writer::QUEUE);
                tokio::spawn(postgres_writer(native.clone(), queue, committed.clone()));
                (pool, Engine::Postgres { writer, pool: native })
            }
        };
        Ok(Self { pool, engine: Arc::new(engine), committed })
    }

    /// Runs the platform's and the service's migrations that have not run yet, each in a
    /// transaction of its own together with its row in `_sqlx_migrations` (PostgreSQL also holds
    /// an advisory lock, so that instances starting together take turns).
    pub(crate) async fn migrate(&self, schema: &str, migrations: &[Migration]) -> Result<(), DbError> {
        let all = PLATFORM_MIGRATIONS.iter().chain(migrations).map(|m| {
            sqlx::migrate::Migration::new(
                m.version,
                Cow::Borrowed(m.description),
                MigrationType::Simple,
                m.sql.into_sql_str(),
                false,
            )
        });
        Migrator::with_migrations(all.collect())
            .run(&self.pool)
            .await
            .map_err(|source| DbError::Migrate { schema: schema.to_owned(), source })
    }

    /// The sqlx `Any` pool: for migrations and operator tools, never a service's hot path.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs `unit` in the database's next group commit (see `crate::writer`): one transaction
    /// and one commit for every unit queued meanwhile, each unit in its own savepoint. Returns
    /// once the unit's work is durable (or rolled back, with its error).
    ///
    /// ```no_run
    /// # async fn f(db: orderflow_platform::Db) {
    /// let n: Result<u64, _> = db
    ///     .write(|tx| Box::pin(async move { tx.execute("DELETE FROM inbox", &[]).await }))
    ///     .await;
    /// # }
    /// ```
    pub async fn write<T, E, F>(&self, unit: F) -> Result<T, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        writer::submit(self.writer(), writer::unit(unit)).await
    }

    /// Runs `read` on a committed snapshot, off the writer: SQLite's reader thread (batched with
    /// the reads queued meanwhile), or a pooled PostgreSQL connection. Like a unit of work, it
    /// must await nothing but its [`Tx`].
    pub async fn read<T, E, F>(&self, read: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
        F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        match &*self.engine {
            Engine::Sqlite { reader, .. } => match writer::submit(reader, writer::unit(read)).await {
                Ok(v) => Ok(v),
                Err(WriteError::Unit(e)) => Err(e),
                Err(WriteError::Aborted) => Err(SqlError::Aborted.into()),
            },
            Engine::Postgres { pool, .. } => {
                let conn = pool.acquire().await.map_err(SqlError::from)?;
                read(&mut Tx::postgres(conn)).await
            }
        }
    }

    /// [`Self::read`] with every statement on one snapshot: SQLite's reader already runs each
    /// batch in one transaction; on PostgreSQL the read gets a `REPEATABLE READ READ ONLY`
    /// transaction of its own (two extra round trips, so only for reads of several tables that
    /// must agree, like an audit of a ledger).
    pub async fn read_snapshot<T, E, F>(&self, read: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
        F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        match &*self.engine {
            Engine::Sqlite { .. } => self.read(read).await,
            Engine::Postgres { pool, .. } => {
                let pool = pool.clone();
                // In a task of its own, so that a caller that stops waiting cannot leave the
                // connection inside the transaction; a connection whose ROLLBACK failed is closed.
                let task = tokio::spawn(async move {
                    let conn = pool.acquire().await.map_err(SqlError::from)?;
                    let mut tx = Tx::postgres(conn);
                    if let Err(e) = tx.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await {
                        tx.discard();
                        return Err(e.into());
                    }
                    let result = read(&mut tx).await;
                    if let Err(e) = tx.batch("ROLLBACK").await {
                        tracing::warn!(error = %e, "ending a read-only snapshot failed; closing its connection");
                        tx.discard();
                    }
                    result
                });
                task.await.unwrap_or_else(|_| Err(SqlError::Aborted.into()))
            }
        }
    }

    /// The outbox messages of every batch this database's writer commits, as it commits them:
    /// the outbox relay's feed. Only the first caller gets the receiver; without one, committed
    /// messages wait in the outbox table for the relay's sweep.
    pub(crate) fn committed_outbox(
        &self,
    ) -> Option<mpsc::UnboundedReceiver<Vec<orderflow_messaging::OutgoingMessage>>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.committed.set(sender).ok().map(|()| receiver)
    }

    /// The writer's queue.
    fn writer(&self) -> &mpsc::Sender<Unit> {
        match &*self.engine {
            Engine::Sqlite { writer, .. } | Engine::Postgres { writer, .. } => writer,
        }
    }

    /// Units of work waiting for the writer: how far behind the database is.
    pub fn write_queue(&self) -> usize {
        let queue = self.writer();
        queue.max_capacity() - queue.capacity()
    }

    /// `SELECT 1` through the read path, for readiness.
    pub async fn ping(&self) -> Result<(), SqlError> {
        self.read(|tx| Box::pin(async move { tx.query_one("SELECT 1", &[]).await.map(|_| ()) })).await
    }

    /// Closes the pools (waits for connections to be returned). SQLite's threads end with the
    /// last clone of the `Db`.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Engine::Postgres { pool, .. } = &*self.engine {
            pool.close().await;
        }
    }
}

/// Every SQLite connection's settings.
///
/// `soft_heap_limit` bounds what SQLite allocates in the whole process (it is process-wide;
/// setting it again is harmless): page caches beyond it are recycled instead of grown. Without
/// it, every connection's cache (two per file, four files in `orderflow up`) grows to its own
/// 2 MB, slowly, as the files grow: `up`'s memory climbed for ten minutes after the first. The
/// OS page cache holds the files anyway; SQLite's own cache saves a `pread`, not a disk read.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
    "PRAGMA soft_heap_limit = 8388608",
];

/// Opens a connection to `path` and starts the thread that owns it; returns its queue.
fn sqlite_thread(
    path: &str,
    role: &str,
    mode: Mode,
    committed: &CommittedOutbox,
) -> Result<mpsc::Sender<Unit>, DbError> {
    let sqlite_err = |source| DbError::Sqlite { path: path.to_owned(), source };
    let conn = rusqlite::Connection::open(path).map_err(sqlite_err)?;
    for pragma in SQLITE_PRAGMAS {
        // `journal_mode` answers with a row; the others with none.
        conn.query_row(pragma, [], |_| Ok(()))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })
            .map_err(sqlite_err)?;
    }
    conn.set_prepared_statement_cache_capacity(256);
    let (queue, units) = mpsc::channel(writer::QUEUE);
    let tx = Tx::sqlite(conn);
    let committed = committed.clone();
    std::thread::Builder::new()
        .name(format!("sqlite-{role}"))
        .spawn(move || writer::sqlite_thread(tx, units, mode, committed))
        .map_err(|source| DbError::Io { context: format!("starting the SQLite {role} thread"), source })?;
    Ok(queue)
}

/// PostgreSQL's group-commit loop: a batch per pooled connection and transaction.
async fn postgres_writer(pool: PgPool, mut queue: mpsc::Receiver<Unit>, committed: CommittedOutbox) {
    while let Some(first) = queue.recv().await {
        let batch = writer::fill(&mut queue, first);
        match pool.acquire().await {
            Ok(conn) => {
                let mode = Mode::Write { postgres: true };
                writer::run_batch(&mut Tx::postgres(conn), batch, mode, &committed).await;
            }
            // Dropping the units answers every caller with `Aborted`.
            Err(e) => tracing::warn!(error = %e, units = batch.len(), "no connection for a group commit"),
        }
    }
}

/// The file path of a `sqlite:` URL.
fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// `url` with its password replaced by `***`: in the user-info (`postgres://u:***@h/db`) and in
/// query parameters that carry one (`?password=***`, `sslpassword`). For logs, errors and
/// `Debug` output; a URL without a password comes back unchanged.
pub fn redact(url: &str) -> String {
    // The query starts after the user-info: a password may hold a raw `?` or `@`.
    let after_creds = url.rfind('@').map_or(0, |at| at + 1);
    let (base, query) = match url[after_creds..].find('?') {
        Some(q) => (&url[..after_creds + q], Some(&url[after_creds + q + 1..])),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &base[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// What a service waits for when it cannot reach its database, for people: `PostgreSQL at
/// db:5432/orderflow` or `SQLite at .orderflow/order.db` — never a password.
pub(crate) fn describe(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        return format!("SQLite at {}", path.display());
    }
    match url.parse::<PgConnectOptions>() {
        Ok(opts) if url.starts_with("postgres") => {
            let database = opts.get_database().map(|db| format!("/{db}")).unwrap_or_default();
            format!("PostgreSQL at {}:{}{database}", opts.get_host(), opts.get_port())
        }
        _ => format!("the database at {}", redact(url)),
    }
}

/// Is this error worth retrying (lock contention, serialization failure, a server that is not
/// reachable, starting or shutting down, a lost connection)?
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // SQLite BUSY/LOCKED; PostgreSQL serialization failure, deadlock, too many
            // connections, admin shutdown / crash shutdown / cannot connect now (starting up or
            // shutting down), and the connection exceptions (class 08).
            matches!(
                code,
                "5" | "6" | "261" | "517" | "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
            ) || (code.len() == 5 && code.starts_with("08"))
                || db.message().contains("database is locked")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("sqlite://./x.db"), "sqlite://./x.db");
        assert_eq!(
            redact("postgres://u:p?a@ss@h/db?sslmode=require"),
            "postgres://u:***@h/db?sslmode=require"
        );
        assert_eq!(
            redact("postgres://h/db?user=u&password=secret&sslpassword=k"),
            "postgres://h/db?user=u&password=***&sslpassword=***"
        );
        assert_eq!(redact("nats://u:secret@h:4222"), "nats://u:***@h:4222");
    }

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(sqlite_path("sqlite://./a/b.db?mode=rwc"), Some(Path::new("./a/b.db")));
        assert_eq!(sqlite_path("sqlite:/tmp/x.db"), Some(Path::new("/tmp/x.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn what_a_service_waits_for_is_named_without_a_password() {
        assert_eq!(describe("postgres://u:secret@db:5433/orderflow"), "PostgreSQL at db:5433/orderflow");
        assert_eq!(describe("postgresql://db/orderflow?sslmode=require"), "PostgreSQL at db:5432/orderflow");
        assert_eq!(describe("sqlite://.orderflow/order.db?mode=rwc"), "SQLite at .orderflow/order.db");
        assert_eq!(describe("mysql://u:secret@h/db"), "the database at mysql://u:***@h/db");
    }

    #[test]
    fn unreachable_or_starting_servers_are_transient_and_bad_settings_are_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let url = "postgres://u:p@h/db";
        assert!(DbError::connect(url, sqlx::Error::Io(refused)).is_transient());
        assert!(DbError::connect(url, sqlx::Error::PoolTimedOut).is_transient());
        let lost = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let mid_migration = sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Io(lost), 100);
        assert!(DbError::Migrate { schema: "s".into(), source: mid_migration }.is_transient());

        assert!(!DbError::UnsupportedUrl("x".into()).is_transient());
        assert!(!DbError::InvalidSchema("a-b".into()).is_transient());
        let bad_url = sqlx::Error::Configuration("invalid port".into());
        assert!(!DbError::connect(url, bad_url).is_transient());
        let dirty = sqlx::migrate::MigrateError::Dirty(100);
        assert!(!DbError::Migrate { schema: "s".into(), source: dirty }.is_transient());
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused() {
        let refused = Db::open("sqlite::memory:", "test").await;
        assert!(matches!(refused, Err(DbError::UnsupportedUrl(_))), "{refused:?}");
    }
}
