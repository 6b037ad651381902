//! Discovery: every service registers as a NATS micro service, so the standard tooling
//! (`nats micro ls`, `nats micro info <service>`, `nats micro stats <service>`) sees its
//! instances, versions and request statistics.
//!
//! Each service answers `orderflow.<service>.status` (its readiness report as JSON), plus any
//! request-reply endpoints it adds (the inventory service's stock lookup).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::http::Health;

type Reply = Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>>;

/// One request-reply endpoint.
#[derive(Clone)]
pub struct MicroEndpoint {
    name: &'static str,
    handler: Arc<dyn Fn(Bytes) -> Reply + Send + Sync>,
}

impl std::fmt::Debug for MicroEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicroEndpoint").field("name", &self.name).finish()
    }
}

impl MicroEndpoint {
    /// An endpoint `name` answered by `handler` (request payload in, response payload out;
    /// `Err(message)` answers with a micro-protocol error header).
    pub fn new<F, Fut>(name: &'static str, handler: F) -> Self
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, String>> + Send + 'static,
    {
        Self { name, handler: Arc::new(move |b| Box::pin(handler(b))) }
    }
}

/// The subject of an endpoint: `orderflow.<service without -service>.<endpoint>`.
pub(crate) fn subject(service: &str, endpoint: &str) -> String {
    format!("orderflow.{}.{endpoint}", service.trim_end_matches("-service"))
}

/// Registers `service` with a `status` endpoint and `endpoints`; answers until `shutdown`.
pub(crate) async fn register(
    client: &async_nats::Client,
    service: &'static str,
    health: Health,
    endpoints: Vec<MicroEndpoint>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let micro = client
        .service_builder()
        .description(format!("orderflow {service}"))
        .start(service, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("{service}: registering the NATS micro service: {e}"))?;
    let status = MicroEndpoint::new("status", move |_| {
        let health = health.clone();
        async move {
            let (ready, checks) = health.report().await;
            serde_json::to_vec(&serde_json::json!({"ready": ready, "checks": checks}))
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        }
    });
    for ep in std::iter::once(status).chain(endpoints) {
        let mut requests = micro
            .endpoint_builder()
            .name(ep.name)
            .add(subject(service, ep.name))
            .await
            .map_err(|e| anyhow::anyhow!("{service}: adding endpoint {}: {e}", ep.name))?;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = requests.next() => match r { Some(r) => r, None => return },
                };
                let reply = (ep.handler)(request.message.payload.clone())
                    .await
                    .map_err(|message| async_nats::service::error::Error { status: message, code: 400 });
                if let Err(e) = request.respond(reply).await {
                    tracing::debug!(error = %e, "answering a micro request failed");
                }
            }
        });
    }
    // Stopping the service unsubscribes its monitoring subjects as well.
    tokio::spawn(async move {
        shutdown.cancelled().await;
        let _ = micro.stop().await;
    });
    Ok(())
}
