//! The `inventory-service` binary: flags → settings → the kernel, until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_platform::kernel::main::<inventory_service::InventoryService>(
        "orderflow inventory service: products, prices and stock",
    )
    .await
}
