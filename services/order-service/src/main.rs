#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_platform::kernel::main::<order_service::OrderService>("orderflow order service").await
}
