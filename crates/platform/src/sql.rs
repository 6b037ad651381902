//! The one connection type every query in the services is written against: [`Tx`].
//!
//! SQL is written once for both databases (see [`crate::db`] for the portable-SQL rules) and
//! runs on whichever is behind the [`Tx`]:
//!
//! - **SQLite**: a `rusqlite` connection owned by a dedicated OS thread (the database's writer,
//!   or its reader), with cached prepared statements. Its methods are `async` only so that one
//!   unit of work serves both databases: on SQLite they never suspend, and the thread runs a
//!   whole batch of units to completion in one poll, with no thread hop per statement.
//! - **PostgreSQL**: a pooled connection of sqlx's native PostgreSQL driver, with prepared
//!   statements; its methods await the server as usual.
//!
//! What a unit of work must never do follows from the first point: await anything that is not
//! a [`Tx`] method (a timer, a channel, the network). On SQLite such a unit cannot finish on the
//! writer thread; it is rolled back with its batch and its caller gets
//! [`WriteError::Aborted`](crate::WriteError::Aborted) (see `crate::writer`).
//!
//! Values cross the boundary as [`Param`] (in) and [`Row`] (out): integers (`BIGINT`), text and
//! typed NULLs, which is all the portable schema uses.

use std::fmt;

use orderflow_messaging::OutgoingMessage;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Column, Postgres, Row as _, TypeInfo};

/// A query parameter: what the portable schema stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param<'a> {
    /// A `BIGINT`.
    Int(i64),
    /// A `TEXT`.
    Text(&'a str),
    /// A NULL in a `BIGINT` column.
    NullInt,
    /// A NULL in a `TEXT` column.
    NullText,
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Self::NullInt, Self::Int)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Self::NullText, Self::Text)
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match *self {
            Self::Int(v) => ToSqlOutput::Owned(Value::Integer(v)),
            Self::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Self::NullInt | Self::NullText => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// `&[Param]` from a list of values: `args![order_id, 3_i64, None::<&str>]`.
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::sql::Param::from($value)),*]
    };
}

/// A column value read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

/// One result row, its values in the order of the `SELECT` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(Vec<Value>);

impl Row {
    fn value(&self, i: usize) -> Result<&Value, SqlError> {
        self.0.get(i).ok_or_else(|| SqlError::Decode(format!("no column {i}")))
    }

    /// Column `i` as a non-NULL integer.
    pub fn int(&self, i: usize) -> Result<i64, SqlError> {
        self.opt_int(i)?.ok_or_else(|| SqlError::Decode(format!("column {i} is NULL, not an integer")))
    }

    /// Column `i` as an integer or NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, SqlError> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(_) => Err(SqlError::Decode(format!("column {i} is text, not an integer"))),
        }
    }

    /// Column `i` as non-NULL text.
    pub fn text(&self, i: usize) -> Result<String, SqlError> {
        self.opt_text(i)?.ok_or_else(|| SqlError::Decode(format!("column {i} is NULL, not text")))
    }

    /// Column `i` as text or NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, SqlError> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            Value::Int(_) => Err(SqlError::Decode(format!("column {i} is an integer, not text"))),
        }
    }
}

/// A failed statement.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// SQLite's error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's (or the pool's) error.
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    /// A value is not of the type asked for.
    #[error("unexpected column value: {0}")]
    Decode(String),
    /// The database's thread or pool is gone, or the batch the read ran in failed.
    #[error("the database is unavailable (its connection thread stopped or its batch failed)")]
    Aborted,
}

impl SqlError {
    /// Worth retrying: lock contention, a serialization failure or deadlock, a lost connection.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            Self::Aborted => true,
            Self::Sqlite(_) | Self::Decode(_) => false,
            Self::Postgres(e) => crate::db::is_transient(e),
        }
    }
}

/// A connection inside a unit of work (or a read): SQLite's or PostgreSQL's.
///
/// It also stages the outbox messages its units enqueue ([`crate::outbox::enqueue`]): the
/// writer hands those of the units it kept to the outbox relay once their batch has committed,
/// so the relay publishes them without reading them back.
pub struct Tx {
    inner: Inner,
    staged: Vec<OutgoingMessage>,
    /// How many messages were staged when each open savepoint of [`Tx::savepoint`] began.
    savepoints: Vec<usize>,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

impl fmt::Debug for Tx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        };
        f.debug_struct("Tx").field("db", &kind).finish()
    }
}

impl Tx {
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Self {
        Self { inner: Inner::Sqlite(conn), staged: Vec::new(), savepoints: Vec::new() }
    }

    pub(crate) fn postgres(conn: sqlx::pool::PoolConnection<Postgres>) -> Self {
        Self { inner: Inner::Postgres(conn), staged: Vec::new(), savepoints: Vec::new() }
    }

    /// Stages an outbox message written in this transaction.
    pub(crate) fn stage(&mut self, msg: &OutgoingMessage) {
        self.staged.push(msg.clone());
    }

    /// How many messages are staged.
    pub(crate) fn staged(&self) -> usize {
        self.staged.len()
    }

    /// Forgets the messages staged after the first `keep` (their work was rolled back).
    pub(crate) fn unstage_from(&mut self, keep: usize) {
        self.staged.truncate(keep);
        self.savepoints.clear();
    }

    /// The staged messages, leaving none.
    pub(crate) fn take_staged(&mut self) -> Vec<OutgoingMessage> {
        self.savepoints.clear();
        std::mem::take(&mut self.staged)
    }

    /// Runs a statement; returns the rows it changed.
    pub async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, SqlError> {
        match &mut self.inner {
            Inner::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Inner::Postgres(conn) => {
                let done = pg_query(sql, params).execute(&mut **conn).await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Runs a query; returns every row.
    pub async fn query_all(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        match &mut self.inner {
            Inner::Sqlite(conn) => sqlite_rows(conn, sql, params, usize::MAX),
            Inner::Postgres(conn) => {
                let rows = pg_query(sql, params).fetch_all(&mut **conn).await?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Runs a query; returns its first row, if any.
    pub async fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, SqlError> {
        match &mut self.inner {
            Inner::Sqlite(conn) => Ok(sqlite_rows(conn, sql, params, 1)?.pop()),
            Inner::Postgres(conn) => {
                let row = pg_query(sql, params).fetch_optional(&mut **conn).await?;
                row.as_ref().map(pg_row).transpose()
            }
        }
    }

    /// Runs a query that returns exactly one row.
    pub async fn query_one(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Row, SqlError> {
        self.query_opt(sql, params).await?.ok_or_else(|| SqlError::Decode("the query returned no row".into()))
    }

    /// Runs `statement` (no parameters, no result): `BEGIN`, `SAVEPOINT x`, `COMMIT`…
    pub(crate) async fn batch(&mut self, statement: &'static str) -> Result<(), SqlError> {
        match &mut self.inner {
            Inner::Sqlite(conn) => Ok(conn.prepare_cached(statement)?.execute([]).map(|_| ())?),
            Inner::Postgres(conn) => {
                sqlx::raw_sql(statement).execute(&mut **conn).await?;
                Ok(())
            }
        }
    }

    /// Opens a nested savepoint `name` (a plain identifier, written by the caller).
    pub async fn savepoint(&mut self, name: &'static str) -> Result<(), SqlError> {
        self.statement("SAVEPOINT", name).await?;
        self.savepoints.push(self.staged.len());
        Ok(())
    }

    /// Keeps the work since savepoint `name`.
    pub async fn release(&mut self, name: &'static str) -> Result<(), SqlError> {
        self.statement("RELEASE SAVEPOINT", name).await?;
        self.savepoints.pop();
        Ok(())
    }

    /// Undoes the work since savepoint `name` (outbox messages included) and closes it.
    pub async fn rollback_to(&mut self, name: &'static str) -> Result<(), SqlError> {
        self.statement("ROLLBACK TO SAVEPOINT", name).await?;
        self.statement("RELEASE SAVEPOINT", name).await?;
        if let Some(staged) = self.savepoints.pop() {
            self.staged.truncate(staged);
        }
        Ok(())
    }

    async fn statement(&mut self, verb: &str, name: &str) -> Result<(), SqlError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(SqlError::Decode(format!("{name:?} is not a savepoint name")));
        }
        self.execute(&format!("{verb} {name}"), &[]).await.map(|_| ())
    }

    /// Whether a transaction is open (SQLite; PostgreSQL's state is the server's).
    /// Closes a PostgreSQL connection instead of returning it to the pool (one left inside a
    /// transaction it could not end must not serve anyone else). SQLite's connections are owned
    /// by their threads; nothing to do.
    pub(crate) fn discard(self) {
        if let Inner::Postgres(conn) = self.inner {
            drop(conn.detach());
        }
    }

    pub(crate) fn in_transaction(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(conn) => !conn.is_autocommit(),
            Inner::Postgres(_) => true,
        }
    }
}

fn pg_query<'q>(sql: &str, params: &[Param<'q>]) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for p in params {
        q = match *p {
            Param::Int(v) => q.bind(v),
            Param::Text(v) => q.bind(v),
            Param::NullInt => q.bind(None::<i64>),
            Param::NullText => q.bind(None::<&str>),
        };
    }
    q
}

/// At most `limit` rows of a query on SQLite (its prepared statement cached).
fn sqlite_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
    limit: usize,
) -> Result<Vec<Row>, SqlError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while out.len() < limit
        && let Some(row) = rows.next()?
    {
        out.push(sqlite_row(row, columns)?);
    }
    Ok(out)
}

fn sqlite_row(row: &rusqlite::Row<'_>, columns: usize) -> Result<Row, SqlError> {
    use rusqlite::types::ValueRef;
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Int(v),
            ValueRef::Text(t) => Value::Text(
                std::str::from_utf8(t).map_err(|e| SqlError::Decode(format!("column {i}: {e}")))?.to_owned(),
            ),
            ValueRef::Real(_) | ValueRef::Blob(_) => {
                return Err(SqlError::Decode(format!("column {i} is neither an integer nor text")));
            }
        });
    }
    Ok(Row(values))
}

fn pg_row(row: &PgRow) -> Result<Row, SqlError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match column.type_info().name() {
            "INT8" => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            "INT4" => row.try_get::<Option<i32>, _>(i)?.map(|v| Value::Int(v.into())),
            "INT2" => row.try_get::<Option<i16>, _>(i)?.map(|v| Value::Int(v.into())),
            "BOOL" => row.try_get::<Option<bool>, _>(i)?.map(|v| Value::Int(v.into())),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
            other => return Err(SqlError::Decode(format!("column {i} has the unsupported type {other}"))),
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}
