//! The HTTP client of the external payment gateway, with outcome classification.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a charge attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChargeOutcome {
    /// Money taken.
    Succeeded {
        /// The gateway's charge id.
        charge_id: String,
    },
    /// The gateway said no (a business answer: the gateway is healthy).
    Declined {
        /// The gateway's charge id.
        charge_id: String,
    },
}

/// Why a charge attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayError {
    /// Timeout, connection failure, 5xx or 429: try again later.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    /// The gateway refused the request itself (4xx): retrying will not help.
    #[error("gateway rejected the request: {0}")]
    Rejected(String),
}

#[derive(Serialize)]
struct ChargeRequest<'a> {
    order_id: &'a str,
    amount_cents: i64,
    currency: &'a str,
}

#[derive(Deserialize)]
struct ChargeResponse {
    charge_id: String,
    status: String,
}

/// A gateway client.
#[derive(Clone)]
pub(crate) struct GatewayClient {
    http: reqwest::Client,
    base: String,
}

// By hand: the base URL may carry gateway credentials.
impl std::fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayClient").field("base", &orderflow_platform::db::redact(&self.base)).finish()
    }
}

impl GatewayClient {
    /// A client for `base` (`http://127.0.0.1:8090`, or `https://…`) with a per-call `timeout`;
    /// an https gateway's certificate is checked against the system's roots plus the CA(s) in
    /// the PEM file `ca`, if given.
    pub(crate) fn new(base: &str, timeout: Duration, ca: Option<&std::path::Path>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let mut builder = orderflow_platform::tls::http_client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_max_idle_per_host(64);
        if let Some(ca) = ca {
            builder = builder
                .tls_certs_merge(orderflow_platform::tls::read_ca_file(ca).context("payment.gateway_ca")?);
        }
        let http = builder.build().context("building the gateway's HTTP client")?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned() })
    }

    /// One charge attempt; the order id is the idempotency key, so any number of attempts
    /// creates at most one charge. The correlation id and the W3C `traceparent` tie the gateway's
    /// side of the call to the order's saga and trace.
    pub(crate) async fn charge(
        &self,
        order_id: &str,
        amount_cents: i64,
        currency: &str,
        correlation_id: &str,
        traceparent: &str,
    ) -> Result<ChargeOutcome, GatewayError> {
        let res = self
            .http
            .post(format!("{}/charges", self.base))
            .header("Idempotency-Key", order_id)
            .header("X-Correlation-ID", correlation_id)
            .header(orderflow_telemetry::trace::TRACEPARENT, traceparent)
            .json(&ChargeRequest { order_id, amount_cents, currency })
            .send()
            .await
            // Without the URL: it may carry credentials, and the detail goes into logs and into
            // the `payments.failed` event.
            .map_err(|e| GatewayError::Unavailable(with_causes(&e.without_url())))?;
        let status = res.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(GatewayError::Unavailable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            return Err(GatewayError::Rejected(format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        let body: ChargeResponse = res
            .json()
            .await
            .map_err(|e| GatewayError::Unavailable(format!("unreadable response: {}", e.without_url())))?;
        match body.status.as_str() {
            "succeeded" => Ok(ChargeOutcome::Succeeded { charge_id: body.charge_id }),
            "declined" => Ok(ChargeOutcome::Declined { charge_id: body.charge_id }),
            other => Err(GatewayError::Rejected(format!("unknown charge status {other:?}"))),
        }
    }
}

/// `error: cause: cause…`, so that a refused certificate reads as such (reqwest's own text is
/// "error sending request"). The causes carry no URL.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn gateway_credentials_in_the_url_reach_neither_errors_nor_debug_output() {
        let client =
            GatewayClient::new("http://gateway:GwS3cret@127.0.0.1:9/", Duration::from_secs(1), None).unwrap();

        let error = client.charge("order-1", 100, "USD", "corr-1", "").await.unwrap_err();

        let text = format!("{error} {error:?} {client:?}");
        assert!(matches!(error, GatewayError::Unavailable(_)), "{text}");
        assert!(!text.contains("GwS3cret"), "{text}");
    }

    /// gateway-sim on a free port, behind a TLS proxy with a certificate for `localhost` from a
    /// fresh CA; returns the https URL, the CA file and what keeps them running.
    async fn https_gateway() -> (String, std::path::PathBuf, impl Sized) {
        let dir = tempfile::tempdir().unwrap();
        let certs = orderflow_test_support::test_certs(&dir.path().join("certs")).unwrap();
        let config = gateway_sim::Config {
            seed: Some(42),
            data_dir: dir.path().join("gateway"),
            ..gateway_sim::Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(gateway_sim::run(listener, config, shutdown.clone()));
        let proxy =
            orderflow_test_support::tls_proxy::TlsProxy::start(upstream, &certs.server, &certs.server_key)
                .await
                .unwrap();
        let url = format!("https://localhost:{}", proxy.port());
        (url, certs.ca.clone(), (proxy, shutdown.drop_guard(), dir))
    }

    #[tokio::test]
    async fn a_charge_reaches_an_https_gateway_whose_ca_is_trusted() {
        let (url, ca, _running) = https_gateway().await;
        let client = GatewayClient::new(&url, Duration::from_secs(5), Some(&ca)).unwrap();

        let outcome =
            orderflow_test_support::eventually(Duration::from_secs(10), "the gateway answers", || async {
                client.charge("order-tls-1", 1250, "USD", "corr-tls-1", "").await.ok()
            })
            .await
            .unwrap();

        assert!(
            matches!(outcome, ChargeOutcome::Succeeded { .. } | ChargeOutcome::Declined { .. }),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn an_https_gateway_signed_by_an_untrusted_ca_is_unavailable_not_charged() {
        let (url, ca, _running) = https_gateway().await;
        let trusting = GatewayClient::new(&url, Duration::from_secs(5), Some(&ca)).unwrap();
        orderflow_test_support::eventually(Duration::from_secs(10), "the gateway answers", || async {
            trusting.charge("order-tls-ready", 100, "USD", "corr-tls-ready", "").await.ok()
        })
        .await
        .unwrap();
        let client = GatewayClient::new(&url, Duration::from_secs(5), None).unwrap();

        let error = client.charge("order-tls-2", 1250, "USD", "corr-tls-2", "").await.unwrap_err();

        assert!(
            matches!(&error, GatewayError::Unavailable(detail) if detail.contains("UnknownIssuer")),
            "{error:?}"
        );
    }

    #[test]
    fn a_gateway_ca_file_that_is_missing_fails_at_start_up_naming_the_setting() {
        let error = GatewayClient::new(
            "https://localhost:1",
            Duration::from_secs(1),
            Some(std::path::Path::new("/nonexistent/ca.pem")),
        )
        .unwrap_err();

        let text = format!("{error:#}");
        assert!(text.contains("payment.gateway_ca") && text.contains("/nonexistent/ca.pem"), "{text}");
    }
}
