//! PostgreSQL over TLS against the real server (`ssl = on`, as Debian's package sets it up with
//! its snakeoil certificate): `sslmode=require` encrypts both pools' sessions, `verify-ca` accepts
//! the server's own certificate as the root, and a root that did not sign the server's
//! certificate is refused as a TLS error whose message keeps the password out.

use orderflow_platform::{Db, DbError, SqlError};
use orderflow_test_support::{DbBackend, TestDb};

/// A self-signed CA made for these tests only (`openssl req -x509 -newkey ec …`); it signed
/// nothing, so no server certificate verifies against it.
const UNRELATED_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBqzCCAVGgAwIBAgIUMhExi6Wc+MPcUTp1uCPIMxbx16gwCgYIKoZIzj0EAwIw
KjEoMCYGA1UEAwwfb3JkZXJmbG93IHRlc3Q6IGFuIHVucmVsYXRlZCBDQTAgFw0y
NjEyMDQyMzQyMzdaGA8yMTI2MTExMDIzNDIzN1owKjEoMCYGA1UEAwwfb3JkZXJm
bG93IHRlc3Q6IGFuIHVucmVsYXRlZCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABH5IMtasSMGkcuro1XrbMLsfLGqceb48ZfJaDFBC+YAOh5k2MsUa9l4jN55D
Xfw0pk6kd2mvaNwFtUuOswNIE7CjUzBRMB0GA1UdDgQWBBSONxbbZ+yh3jvgJWoO
LrjFuVmXEjAfBgNVHSMEGDAWgBSONxbbZ+yh3jvgJWoOLrjFuVmXEjAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIAj2jEbDS5m/JPeFy99nYk2T8uBX
pXUXjdS3B9PrB1esAiEAj6CXaCGsNhY8X2M2Uy+DBsgdQysrXK85pQSsWv3CdGA=
-----END CERTIFICATE-----
";

/// The certificate Debian's `ssl-cert` package generates and `pg_createcluster` configures.
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// The test database's URL (and a schema of its own) with `params` added to its query.
fn url_with(test_db: &TestDb, params: &str) -> (String, String) {
    let (url, schema) = test_db.for_service("tls");
    let sep = if url.contains('?') { '&' } else { '?' };
    (format!("{url}{sep}{params}"), schema)
}

/// `(ssl, version)` of the session the read path's connection runs on.
async fn session_tls(db: &Db) -> (bool, String) {
    db.read(|tx| {
        Box::pin(async move {
            let row = tx
                .query_one(
                    "SELECT CASE WHEN ssl THEN 1 ELSE 0 END, COALESCE(version, '') \
                     FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await?;
            Ok::<_, SqlError>((row.int(0)? == 1, row.text(1)?))
        })
    })
    .await
    .unwrap()
}

/// Fails with what to do when the server has TLS off: these tests are about TLS, and a server
/// without it would make `require` fail for a reason that is not the client's.
async fn assert_server_has_ssl_on(test_db: &TestDb) {
    let (url, schema) = url_with(test_db, "sslmode=disable");
    let db = Db::open(&url, &schema).await.unwrap();
    let on =
        db.read(|tx| Box::pin(async move { tx.query_one("SHOW ssl", &[]).await?.text(0) })).await.unwrap();
    db.close().await;
    assert_eq!(
        on, "on",
        "the test PostgreSQL has ssl = off: Debian's package turns it on with the snakeoil \
         certificate (package ssl-cert); elsewhere set ssl_cert_file/ssl_key_file and ssl = on"
    );
}

#[tokio::test]
async fn sslmode_require_encrypts_every_session() {
    let test_db = TestDb::new(DbBackend::Postgres).unwrap();
    assert_server_has_ssl_on(&test_db).await;
    let (url, schema) = url_with(&test_db, "sslmode=require");

    let db = Db::connect(&url, &schema, &[]).await.unwrap();

    let (ssl, version) = session_tls(&db).await;
    assert!(ssl, "the read pool's session is not encrypted");
    assert!(version.starts_with("TLSv1."), "{version}");
    // The `Any` pool (migrations, tools) parses the same URL through another driver path.
    let any_ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(any_ssl, "the Any pool's session is not encrypted");
    db.close().await;
}

#[tokio::test]
async fn sslmode_verify_ca_accepts_the_servers_certificate_as_root() {
    let test_db = TestDb::new(DbBackend::Postgres).unwrap();
    assert_server_has_ssl_on(&test_db).await;
    let (url, schema) = url_with(&test_db, &format!("sslmode=verify-ca&sslrootcert={SNAKEOIL}"));

    let db = Db::connect(&url, &schema, &[]).await.unwrap();

    assert!(session_tls(&db).await.0);
    db.close().await;
}

/// sqlx adds `sslrootcert` to the system's roots rather than trusting it alone (unlike libpq),
/// and on Debian `/etc/ssl/certs` holds the machine's own snakeoil certificate: against a local
/// server the chain then verifies, and what refuses it is `verify-full`'s name check (the test
/// URL says `127.0.0.1`, the certificate `localhost` or the host name). Elsewhere the chain is
/// what fails. Either way it is the certificate, reported as TLS.
#[tokio::test]
async fn a_server_certificate_the_root_did_not_sign_is_refused_as_a_tls_error() {
    let test_db = TestDb::new(DbBackend::Postgres).unwrap();
    assert_server_has_ssl_on(&test_db).await;
    let ca = test_db.dir().join("unrelated-ca.pem");
    std::fs::write(&ca, UNRELATED_CA).unwrap();
    let (url, schema) = url_with(&test_db, &format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let password =
        url.split_once("://").and_then(|(_, r)| r.split_once('@')).and_then(|(c, _)| c.split_once(':'));
    let password = password.map(|(_, p)| p.to_owned()).unwrap();

    let refused = Db::connect(&url, &schema, &[]).await;

    let Err(e) = refused else { panic!("connected with a root that signed nothing") };
    assert!(matches!(e, DbError::Tls { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("TLS") && message.contains("certificate"), "{message}");
    assert!(!message.contains(&format!(":{password}@")), "the password leaked: {message}");
    assert!(message.contains(":***@"), "{message}");
}
