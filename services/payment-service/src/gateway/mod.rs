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
    /// A client for `base` (`http://127.0.0.1:8090`) with a per-call `timeout`.
    pub(crate) fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_max_idle_per_host(64)
            .build()?;
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
            .map_err(|e| GatewayError::Unavailable(e.without_url().to_string()))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn gateway_credentials_in_the_url_reach_neither_errors_nor_debug_output() {
        let client =
            GatewayClient::new("http://gateway:GwS3cret@127.0.0.1:9/", Duration::from_secs(1)).unwrap();

        let error = client.charge("order-1", 100, "USD", "corr-1", "").await.unwrap_err();

        let text = format!("{error} {error:?} {client:?}");
        assert!(matches!(error, GatewayError::Unavailable(_)), "{text}");
        assert!(!text.contains("GwS3cret"), "{text}");
    }
}
