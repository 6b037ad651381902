//! Per-service PostgreSQL roles against the real server: a service's role owns its schema,
//! migrates and works there through `Db` as usual, and is refused another service's schema,
//! creating schemas, and `public`. Granting again is idempotent and changes the password.

use orderflow_platform::Db;
use orderflow_platform::Migration;
use orderflow_platform::roles::grant_service_role;
use orderflow_test_support::postgres_url;
use sqlx::postgres::PgPoolOptions;

const MIGRATIONS: &[Migration] =
    &[Migration { version: 100, description: "a table", sql: "CREATE TABLE things (id BIGINT PRIMARY KEY)" }];

/// `postgres://role:password@host/db` from the test database's URL.
fn url_as(role: &str, password: &str) -> String {
    let admin = postgres_url();
    let (scheme, rest) = admin.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{role}:{password}@{host}")
}

#[tokio::test]
async fn a_service_role_works_in_its_own_schema_and_is_refused_everything_else() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let tag = format!("{}_{nanos}", std::process::id());
    let (role_a, schema_a) = (format!("of_role_a_{tag}"), format!("of_schema_a_{tag}"));
    let (role_b, schema_b) = (format!("of_role_b_{tag}"), format!("of_schema_b_{tag}"));
    let admin = postgres_url();
    grant_service_role(&admin, &role_a, "pw-a'quoted", &schema_a).await.unwrap();
    grant_service_role(&admin, &role_b, "pw-b", &schema_b).await.unwrap();

    // Each service migrates and writes in its own schema as usual.
    let a = Db::connect(&url_as(&role_a, "pw-a'quoted"), &schema_a, MIGRATIONS).await.unwrap();
    let b = Db::connect(&url_as(&role_b, "pw-b"), &schema_b, MIGRATIONS).await.unwrap();
    a.close().await;
    b.close().await;

    let as_a =
        PgPoolOptions::new().max_connections(1).connect(&url_as(&role_a, "pw-a'quoted")).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {schema_a}.things VALUES (1)")))
        .execute(&as_a)
        .await
        .unwrap();
    for refused in [
        format!("SELECT * FROM {schema_b}.things"),
        format!("INSERT INTO {schema_b}.things VALUES (1)"),
        format!("CREATE SCHEMA of_sneaky_{tag}"),
        format!("CREATE TABLE public.of_sneaky_{tag} (id INT)"),
        format!("ALTER ROLE {role_b} PASSWORD 'x'"),
    ] {
        let result = sqlx::query(sqlx::AssertSqlSafe(refused.clone())).execute(&as_a).await;
        let err = result.expect_err(&refused).to_string();
        assert!(err.contains("permission denied") || err.contains("must be"), "{refused}: {err}");
    }
    as_a.close().await;

    // Granting again keeps the schema and its data, and sets the new password.
    grant_service_role(&admin, &role_a, "pw-a2", &schema_a).await.unwrap();
    assert!(PgPoolOptions::new().max_connections(1).connect(&url_as(&role_a, "pw-a'quoted")).await.is_err());
    let again = Db::connect(&url_as(&role_a, "pw-a2"), &schema_a, MIGRATIONS).await.unwrap();
    again.close().await;

    let cleanup = PgPoolOptions::new().max_connections(1).connect(&admin).await.unwrap();
    for (role, schema) in [(&role_a, &schema_a), (&role_b, &schema_b)] {
        for sql in [
            format!("DROP SCHEMA {schema} CASCADE"),
            format!("DROP OWNED BY {role}"),
            format!("DROP ROLE {role}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&cleanup).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_role_or_schema_name_that_is_not_plain_is_refused_before_anything_runs() {
    for (role, schema) in [("bad\"role", "s"), ("r", "Bad-Schema"), ("r; DROP", "s")] {
        assert!(grant_service_role(&postgres_url(), role, "pw", schema).await.is_err(), "{role} {schema}");
    }
}

/// Instances of a service start together: eight connecting at once to a schema that does not
/// exist yet all open it (one creates it; the others wait on the advisory lock and find it),
/// and migrate it once. Five rounds, each on a fresh schema: without the lock, two
/// `CREATE SCHEMA IF NOT EXISTS` racing fail on pg_namespace's unique index.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_create_their_schema_once() {
    let url = postgres_url();
    let admin = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    for round in 0..5 {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let schema = format!("of_race_{}_{round}_{nanos}", std::process::id());
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (url, schema, start) = (url.clone(), schema.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    Db::connect(&url, &schema, MIGRATIONS).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap().close().await;
        }
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'things'",
        )
        .bind(&schema)
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!(tables, 1);
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(&admin)
            .await
            .unwrap();
    }
}
