//! Sabotage: breaking an invariant on purpose after quiescence, to show that the check fails.

use anyhow::Context as _;

use super::Deployment;
use super::procs::Role;

/// A deliberate corruption applied after quiescence and before the check, to prove the suite
/// fails when an invariant is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sabotage {
    /// What a reservation-commit handler that applied an order twice leaves behind: one more
    /// unit committed on a product than its reservations account for (invariant 2).
    DoubleApply,
    /// A confirmed order put back to `pending` (invariant 1).
    StuckOrder,
}

impl Deployment {
    pub(super) async fn sabotage(&self, what: Sabotage) -> anyhow::Result<String> {
        match what {
            Sabotage::DoubleApply => {
                let db = self.open_db(Role::Inventory).await?;
                let product = inventory_service::audit::sabotage::double_apply(&db).await;
                db.close().await;
                let product = product?.context("nothing to tamper with: no product has sold stock")?;
                Ok(format!("double-apply: one more unit of {product} committed than its reservations hold"))
            }
            Sabotage::StuckOrder => {
                let db = self.open_db(Role::Order).await?;
                let order = order_service::audit::sabotage::stuck_order(&db).await;
                db.close().await;
                let order = order?.context("nothing to tamper with: no order is confirmed")?;
                Ok(format!("stuck-order: order {order} put back to pending"))
            }
        }
    }

    /// `role`'s database, opened as a tool opens it (no migrations).
    async fn open_db(&self, role: Role) -> anyhow::Result<orderflow_platform::Db> {
        let t = self.db(role)?;
        Ok(orderflow_platform::Db::open(&t.url, &t.schema).await?)
    }
}
