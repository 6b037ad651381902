//! inventory-service end to end: the real service in process, a real nats-server, and both real
//! databases (SQLite and PostgreSQL). Every test is written once as `async fn(DbBackend)` and
//! instantiated for both backends by `both_backends!`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// For each named `async fn(DbBackend)`, a module of the same name with a `sqlite` and a
/// `postgres` test.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(orderflow_test_support::DbBackend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(orderflow_test_support::DbBackend::Postgres).await;
                }
            }
        )+
    };
}

mod helpers;
mod inventory_api;
mod lifecycle;
mod payments;
mod reservations;
