//! The inventory's queries: products and reservations, written once for SQLite and PostgreSQL
//! (see `orderflow_platform::db` for the portable-SQL rules).
//!
//! Functions take a [`Tx`](orderflow_platform::Tx) (a unit of work's, or a read's), never
//! open transactions themselves: the handlers decide what commits together. Stock only moves
//! through conditional `UPDATE … WHERE <enough units>` statements, so two transactions can never
//! both take the last unit, on either database, without `SELECT … FOR UPDATE`.

pub(crate) mod products;
pub(crate) mod reservations;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database failed (connection, lock, constraint…).
    #[error("database: {0}")]
    Database(#[from] orderflow_platform::SqlError),
    /// A stored value is not what this code writes (hand-edited or corrupted data).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StorageError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}
