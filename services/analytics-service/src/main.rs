//! The `analytics-service` binary: flags → settings → the kernel, until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_platform::kernel::main::<analytics_service::AnalyticsService>(
        "orderflow analytics service: a live read model of the order saga",
    )
    .await
}
