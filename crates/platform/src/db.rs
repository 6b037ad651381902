//! Storage: one sqlx code path (the `Any` driver) for SQLite and PostgreSQL.
//!
//! SQL here and in the services is written once for both: `$1` placeholders (SQLite accepts
//! them), `BIGINT` and `TEXT` columns, timestamps as fixed-width RFC 3339 text, conditional
//! `UPDATE … WHERE` instead of `SELECT … FOR UPDATE`, `ON CONFLICT DO NOTHING` for idempotent
//! inserts.
//!
//! SQLite: a file per service, WAL journal, `synchronous = FULL` (a committed order survives a
//! power cut), a busy timeout, and a pool of ONE connection: SQLite has a single writer anyway,
//! and one connection turns lock contention (SQLITE_BUSY, upgrade deadlocks) into an orderly
//! queue. PostgreSQL: a schema per service selected with `search_path`, created if missing.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Executor, SqlSafeStr};

use crate::writer::{WriteError, Writer};

/// Which database is behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
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
    /// A migration failed.
    #[error("migrating {schema}: {source}")]
    Migrate {
        /// The schema or file.
        schema: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
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

/// One embedded migration of a service.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Version; services use 100 and up (the platform's own tables are version 1).
    pub version: i64,
    /// Short description.
    pub description: &'static str,
    /// Portable SQL (runs on both databases).
    pub sql: &'static str,
}

/// The platform's own tables: outbox and inbox.
const PLATFORM_MIGRATION: Migration = Migration {
    version: 1,
    description: "outbox and inbox",
    sql: include_str!("../migrations/0001_outbox_inbox.sql"),
};

/// A pool plus what kind of database it is.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    kind: DbKind,
    writer: Writer,
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
        let connect_err = |source| DbError::Connect { url: redact(url), source };
        let pool = match kind {
            DbKind::Sqlite => {
                if let Some(parent) = sqlite_path(url).and_then(|p| p.parent().map(Path::to_path_buf))
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(&parent).map_err(|source| DbError::Io {
                        context: format!("creating {}", parent.display()),
                        source,
                    })?;
                }
                let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
                let opts: AnyConnectOptions = url.parse().map_err(connect_err)?;
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?
            }
            DbKind::Postgres => {
                let opts: AnyConnectOptions = url.parse().map_err(connect_err)?;
                // The schema must exist before any pooled connection selects it.
                {
                    let setup = AnyPoolOptions::new().max_connections(1).connect_with(opts.clone()).await;
                    let setup = setup.map_err(connect_err)?;
                    let ddl = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
                    setup.execute(sqlx::AssertSqlSafe(ddl)).await.map_err(connect_err)?;
                    setup.close().await;
                }
                // The schema name was checked above to be a plain identifier.
                let set_path: std::sync::Arc<str> = format!("SET search_path TO \"{schema}\"").into();
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(move |conn, _| {
                        let set_path = set_path.to_string();
                        Box::pin(async move {
                            conn.execute(sqlx::AssertSqlSafe(set_path)).await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await
                    .map_err(connect_err)?
            }
        };
        Ok(Self { pool, kind, writer: Writer::default() })
    }

    async fn migrate(&self, schema: &str, migrations: &[Migration]) -> Result<(), DbError> {
        let all = std::iter::once(&PLATFORM_MIGRATION).chain(migrations).map(|m| {
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

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs `unit` in the database's next group commit (see [`crate::writer`]): one transaction
    /// and one commit for every unit queued meanwhile, each unit in its own savepoint. Returns
    /// once the unit's work is durable (or rolled back, with its error).
    ///
    /// ```no_run
    /// # async fn f(db: orderflow_platform::Db) {
    /// let n: Result<u64, _> = db
    ///     .write(|conn| {
    ///         Box::pin(async move {
    ///             let done = sqlx::query("DELETE FROM inbox").execute(conn).await?;
    ///             Ok::<_, sqlx::Error>(done.rows_affected())
    ///         })
    ///     })
    ///     .await;
    /// # }
    /// ```
    pub async fn write<T, E, F>(&self, unit: F) -> Result<T, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        self.writer.write(&self.pool, unit).await
    }

    /// Units of work waiting for the writer: how far behind the database is.
    pub fn write_queue(&self) -> usize {
        self.writer.queued()
    }

    /// SQLite or PostgreSQL.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// `SELECT 1`, for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file path of a `sqlite:` URL.
fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// The URL without its password, for errors and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Is this error worth retrying (lock contention, serialization failure, lost connection)?
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // SQLite BUSY/LOCKED; PostgreSQL serialization failure, deadlock, too many
            // connections, admin shutdown / cannot connect now.
            matches!(code, "5" | "6" | "261" | "517" | "40001" | "40P01" | "53300" | "57P01" | "57P03")
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
    }

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(sqlite_path("sqlite://./a/b.db?mode=rwc"), Some(Path::new("./a/b.db")));
        assert_eq!(sqlite_path("sqlite:/tmp/x.db"), Some(Path::new("/tmp/x.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
