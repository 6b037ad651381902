//! Per-service PostgreSQL roles: each service logs in as a role of its own that owns its schema
//! and may do nothing else in the database — not read or write another service's schema, not
//! create schemas, not use `public`. A leaked order-service password then exposes the orders and
//! nothing more.
//!
//! [`grant_service_role`] sets one up, idempotently, as an administrating role (a superuser, or a
//! role with `CREATEROLE` that owns the database): `orderflow db grant` runs it once per service
//! before the services start. The service itself needs no change: [`crate::Db`] creates its
//! schema only when it is missing, so a role that owns an existing schema and has no `CREATE` on
//! the database connects and migrates as before.

use sqlx::Executor as _;
use sqlx::postgres::PgPoolOptions;

use crate::DbError;

/// `name` is a plain lower-case identifier (what a role or schema name must be here).
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Creates (or updates) the login role `role` with `password`, owning `schema` (created if
/// missing), with `CONNECT` on the database and nothing else; `PUBLIC` loses `CREATE` on the
/// database and on schema `public`. Run as an administrating role at `admin_url`.
pub async fn grant_service_role(
    admin_url: &str,
    role: &str,
    password: &str,
    schema: &str,
) -> Result<(), DbError> {
    for name in [role, schema] {
        if !plain(name) {
            return Err(DbError::InvalidSchema(name.to_owned()));
        }
    }
    crate::tls::install_crypto_provider();
    let err = |source| DbError::connect(admin_url, source);
    let pool = PgPoolOptions::new().max_connections(1).connect(admin_url).await.map_err(err)?;
    // A literal: single quotes doubled (standard_conforming_strings is on since PostgreSQL 9.1).
    let password = password.replace('\'', "''");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_optional(&pool)
        .await
        .map_err(err)?;
    // Altering only what a non-superuser may (the other attributes were set when created).
    let role_statement = if exists.is_some() {
        format!("ALTER ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    } else {
        format!("CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'")
    };
    let database: String =
        sqlx::query_scalar("SELECT current_database()").fetch_one(&pool).await.map_err(err)?;
    let database = database.replace('"', "\"\"");
    let statements = [
        role_statement,
        // To give it a schema the administrator must be able to act as it.
        format!("GRANT \"{role}\" TO CURRENT_USER"),
        format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\" AUTHORIZATION \"{role}\""),
        format!("ALTER SCHEMA \"{schema}\" OWNER TO \"{role}\""),
        format!("REVOKE CREATE, TEMPORARY ON DATABASE \"{database}\" FROM PUBLIC"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
        format!("GRANT CONNECT ON DATABASE \"{database}\" TO \"{role}\""),
    ];
    for statement in statements {
        pool.execute(sqlx::AssertSqlSafe(statement)).await.map_err(err)?;
    }
    pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_taken() {
        assert!(plain("orderflow_order") && plain("orders"));
        for bad in ["", "Orders", "a\"b", "a;b", "1abc", "x y", &"a".repeat(64)] {
            assert!(!plain(bad), "{bad:?}");
        }
    }
}
