//! An optional per-client request rate on a route (`POST /orders`): each client address gets a
//! token bucket (GCRA, the `governor` crate) of `per_second` requests with bursts of `burst`;
//! a request over it is answered `429` problem+json with `Retry-After`, before it does any work.
//!
//! The client is the TCP peer's IP address, which the server puts on every request. Behind a
//! reverse proxy every request comes from the proxy, so `trust_forwarded_for` takes the client
//! from `X-Forwarded-For` instead: its last address, the one the proxy in front of the service
//! added (earlier ones are whatever the client sent). Turn it on only behind such a proxy: a
//! client that reaches the service directly could name any address it likes there.
//!
//! The buckets of clients not seen for a while are dropped (at most once a second, once there are
//! more than 10,000), so memory follows the clients of the last moments, not all
//! clients ever.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

use super::problem::{Problem, ProblemType};

/// Buckets kept before idle ones are dropped.
pub(crate) const PRUNE_ABOVE: usize = 10_000;

/// `[<section>.rate_limit]`: the per-client limit of a route. `per_second = 0` (the default)
/// turns it off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per second a client may make, sustained (0: no limit).
    pub per_second: u32,
    /// Requests a client may make at once after a quiet spell (0: the same as `per_second`).
    pub burst: u32,
    /// Take the client's address from `X-Forwarded-For` (behind a reverse proxy only).
    pub trust_forwarded_for: bool,
}

/// The limiter of one route, shared by its requests; cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    /// The `service` label of the metric.
    service: &'static str,
    trust_forwarded_for: bool,
    started: Instant,
    /// Milliseconds after `started` of the last pruning.
    pruned_at_ms: Arc<AtomicU64>,
}

impl ClientRateLimit {
    /// The limiter `settings` describe for `service`, or `None` when they turn it off.
    pub fn new(service: &'static str, settings: RateLimitSettings) -> Option<Self> {
        let per_second = NonZeroU32::new(settings.per_second)?;
        let burst = NonZeroU32::new(settings.burst).unwrap_or(per_second);
        Some(Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            )),
            clock: DefaultClock::default(),
            service,
            trust_forwarded_for: settings.trust_forwarded_for,
            started: Instant::now(),
            pruned_at_ms: Arc::default(),
        })
    }

    /// Who sent `req`: the forwarded address when trusted and present, else the TCP peer.
    fn client(&self, req: &Request) -> Option<IpAddr> {
        let forwarded = self
            .trust_forwarded_for
            .then(|| req.headers().get_all("x-forwarded-for"))
            .and_then(|values| {
                values.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).last()
            })
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        forwarded.or_else(|| req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
    }

    /// Drops idle buckets, at most once a second, once there are many.
    fn prune(&self) {
        if self.limiter.len() <= PRUNE_ABOVE {
            return;
        }
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.pruned_at_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1_000
            && self.pruned_at_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

/// Middleware: `429` + `Retry-After` for a client over its rate; a request whose client cannot be
/// told (no peer address) passes.
pub async fn limit_per_client(State(limit): State<ClientRateLimit>, req: Request, next: Next) -> Response {
    let Some(client) = limit.client(&req) else { return next.run(req).await };
    limit.prune();
    match limit.limiter.check_key(&client) {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(limit.clock.now());
            metrics::counter!(orderflow_telemetry::metrics::names::HTTP_RATE_LIMITED, "service" => limit.service)
                .increment(1);
            let secs = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)).max(1);
            Problem::new(
                ProblemType::TooManyRequests,
                format!("over this client's request rate; retry in {} ms", wait.as_millis().max(1)),
            )
            .retry_after(u32::try_from(secs).unwrap_or(u32::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request(forwarded: &[&str]) -> Request {
        let mut builder = http::Request::builder().uri("/orders");
        for f in forwarded {
            builder = builder.header("x-forwarded-for", *f);
        }
        let mut req = builder.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 50_000))));
        req
    }

    fn limit(trust_forwarded_for: bool) -> ClientRateLimit {
        ClientRateLimit::new("test", RateLimitSettings { per_second: 1, burst: 1, trust_forwarded_for })
            .unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_names_it_last_in_x_forwarded_for() {
        let peer: IpAddr = [10, 0, 0, 1].into();
        assert_eq!(limit(false).client(&request(&["203.0.113.7"])), Some(peer));
        assert_eq!(limit(true).client(&request(&[])), Some(peer));
        assert_eq!(
            limit(true).client(&request(&["198.51.100.1, 203.0.113.7", "192.0.2.9"])),
            Some([192, 0, 2, 9].into())
        );
        assert_eq!(limit(true).client(&request(&["not-an-address"])), Some(peer));
    }

    #[test]
    fn no_rate_means_no_limiter() {
        assert!(ClientRateLimit::new("test", RateLimitSettings::default()).is_none());
    }
}
