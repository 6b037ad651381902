//! Connecting to NATS: exponential backoff with jitter on the first connect and on every
//! reconnect, reconnecting forever, every connection event logged.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use backon::{ExponentialBuilder, Retryable};

/// How to reach NATS.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// Server URL(s), comma-separated (`nats://127.0.0.1:4222,nats://…`).
    pub url: String,
    /// Client name shown by the server (`orderflow/order-service`).
    pub name: String,
    /// First backoff delay.
    pub min_backoff: Duration,
    /// Backoff ceiling.
    pub max_backoff: Duration,
    /// Give up the first connect after this long; `None` retries forever.
    pub initial_timeout: Option<Duration>,
    /// Timeout of JetStream API requests and PubAcks.
    pub request_timeout: Duration,
}

impl ConnectConfig {
    /// Defaults: 100 ms doubling to 5 s, first connect retried for 60 s.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            initial_timeout: Some(Duration::from_secs(60)),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the first connection failed.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to NATS at {url} after {attempts} attempts: {source}")]
pub struct ConnectError {
    /// The URL tried.
    pub url: String,
    /// Attempts made.
    pub attempts: usize,
    /// The last error.
    #[source]
    pub source: async_nats::ConnectError,
}

/// The delay before reconnect attempt `attempt` (0-based): exponential, capped, with full jitter
/// in the upper half so a fleet does not reconnect in lock-step.
pub fn reconnect_delay(attempt: usize, min: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempt.min(20)).unwrap_or(20);
    let base = min.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let half = base / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Connects with backoff and jitter, then keeps reconnecting forever.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let cfg = orderflow_messaging::ConnectConfig::new("nats://127.0.0.1:4222", "orderflow/demo");
/// let client = orderflow_messaging::connect(&cfg).await?;
/// # Ok(()) }
/// ```
pub async fn connect(cfg: &ConnectConfig) -> Result<Client, ConnectError> {
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(cfg.min_backoff)
        .with_max_delay(cfg.max_backoff)
        .with_jitter()
        .without_max_times();
    if let Some(limit) = cfg.initial_timeout {
        backoff = backoff.with_total_delay(Some(limit));
    }
    // A comma-separated list names several servers of a cluster; any of them will do.
    let servers = server_list(&cfg.url);
    let connect_once = || async {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        options(cfg).connect(servers.as_slice()).await
    };
    connect_once
        .retry(backoff)
        .notify(|err, delay| {
            tracing::warn!(url = %cfg.url, error = %err, retry_in = ?delay, "NATS not reachable yet");
        })
        .await
        .map_err(|source| ConnectError {
            url: cfg.url.clone(),
            attempts: attempts.load(std::sync::atomic::Ordering::Relaxed),
            source,
        })
}

/// `nats://a:4222, nats://b:4222` → `["nats://a:4222", "nats://b:4222"]`.
pub fn server_list(urls: &str) -> Vec<String> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect()
}

fn options(cfg: &ConnectConfig) -> ConnectOptions {
    let (min, max) = (cfg.min_backoff, cfg.max_backoff);
    let url = cfg.url.clone();
    ConnectOptions::new()
        .name(&cfg.name)
        .max_reconnects(None)
        .request_timeout(Some(cfg.request_timeout))
        .connection_timeout(Duration::from_secs(5))
        // A hung server (a frozen process, a half-open TCP connection) is noticed when two pings
        // go unanswered: within ~30 s at this interval instead of ~2 min at the default 60 s;
        // the client then reconnects to another node of the cluster.
        .ping_interval(Duration::from_secs(10))
        .reconnect_delay_callback(move |attempt| reconnect_delay(attempt, min, max))
        .event_callback(move |event| {
            let url = url.clone();
            async move {
                match event {
                    Event::Connected => tracing::info!(%url, "NATS connected"),
                    Event::Disconnected => tracing::warn!(%url, "NATS disconnected; reconnecting"),
                    Event::LameDuckMode => tracing::warn!(%url, "NATS server entering lame duck mode"),
                    Event::SlowConsumer(sid) => tracing::warn!(%url, sid, "NATS slow consumer"),
                    other => tracing::info!(%url, event = %other, "NATS connection event"),
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_url_names_every_server() {
        assert_eq!(server_list("nats://a:4222, nats://b:4222,,"), ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(server_list("nats://a:4222"), ["nats://a:4222"]);
    }

    #[test]
    fn reconnect_delay_grows_and_is_capped() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 0..40 {
            let d = reconnect_delay(attempt, min, max);
            assert!(d <= max, "attempt {attempt}: {d:?}");
            assert!(d >= min / 2, "attempt {attempt}: {d:?}");
        }
        assert!(reconnect_delay(30, min, max) >= max / 2);
    }
}
