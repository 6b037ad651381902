#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_platform::kernel::main::<payment_service::PaymentService>("orderflow payment service").await
}
