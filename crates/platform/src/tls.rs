//! The process's one rustls crypto provider: ring.
//!
//! Every TLS user here is built on ring: async-nats (`ring` feature), sqlx
//! (`tls-rustls-ring-native-roots`) and reqwest. sqlx names its provider explicitly, but
//! async-nats builds its configuration with `ClientConfig::builder()`, which takes the process's
//! default provider and panics on first use if it cannot pick one — which is what happens as soon
//! as a second provider (aws-lc-rs, reqwest's default) is compiled into the binary. Installing
//! ring as the default once, before any connection, takes that choice out of the dependency
//! graph's hands.
//!
//! The default provider is process-wide state owned by rustls, not by this crate: installing it
//! is idempotent here, and a provider someone installed earlier (an embedding binary, a test) is
//! kept.

/// Makes ring the process's default rustls [`CryptoProvider`](rustls::crypto::CryptoProvider)
/// unless one is already installed. Never panics; cheap after the first call. [`crate::Db`] and
/// the service kernel call it before connecting; a binary that opens TLS connections of its own
/// first should call it at start-up.
///
/// ```no_run
/// orderflow_platform::tls::install_crypto_provider();
/// ```
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // `Err` means another thread installed one meanwhile: that one stays.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// A reqwest client builder, after [`install_crypto_provider`]: reqwest is built with rustls and
/// no provider of its own (`rustls-no-provider`, so that aws-lc-rs stays out), and building a
/// client before a default provider is installed panics. Every HTTP client in orderflow starts
/// here. It verifies servers against the platform's roots (`rustls-platform-verifier`: the
/// system's store on Linux), plus any added with `tls_certs_merge`.
///
/// ```no_run
/// let client = orderflow_platform::tls::http_client_builder().build()?;
/// # Ok::<(), reqwest::Error>(())
/// ```
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A reqwest client with the defaults, after [`install_crypto_provider`] (see
/// [`http_client_builder`]).
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

/// The CA certificate(s) in PEM file `path`, for [`http_client_builder`]'s `tls_certs_merge`
/// (`gateway_ca`). An unreadable file or one with no certificate is an error naming it.
pub fn read_ca_file(path: &std::path::Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    use anyhow::Context as _;
    let pem = std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("parsing the CA file {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "the CA file {} holds no PEM certificate", path.display());
    Ok(certs)
}

/// The rustls error behind an I/O error, if the I/O error is a failed TLS handshake or record
/// (rustls reports those through `std::io::Error` with the [`rustls::Error`] inside).
pub(crate) fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_the_provider_twice_keeps_the_first_and_does_not_panic() {
        install_crypto_provider();
        install_crypto_provider();
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[test]
    fn a_rustls_error_inside_an_io_error_is_found() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(rustls_error(&io), Some(rustls::Error::InvalidCertificate(_))));
        assert!(rustls_error(&std::io::Error::other("plain")).is_none());
    }
}
