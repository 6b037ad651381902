//! The demo catalog that `orderflow up` seeds: `sku-001` … `sku-040`, deterministic stock and
//! prices so that demos and load runs are reproducible.

use orderflow_events::{Currency, IdError, ProductId};

use super::product::{StockLevel, UnitPrice};

/// Number of products in the demo catalog.
pub(crate) const DEMO_PRODUCTS: u32 = 40;

/// One product of the demo catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DemoProduct {
    /// `sku-001` …
    pub(crate) product_id: ProductId,
    /// Initial stock.
    pub(crate) available: StockLevel,
    /// Unit price.
    pub(crate) unit_price: UnitPrice,
    /// Always USD.
    pub(crate) currency: Currency,
}

/// The demo catalog: `sku-001` … `sku-040` in USD. Stock varies from 100 to 10,000 units (every
/// tenth product is scarce, 5 units, so that demos show `out_of_stock` too); prices from
/// $4.99 upwards.
///
/// # Errors
/// Never in practice: the ids and values are valid by construction; the `Result` only avoids a
/// panic path.
pub(crate) fn demo_catalog() -> Result<Vec<DemoProduct>, DemoCatalogError> {
    (1..=DEMO_PRODUCTS)
        .map(|n| {
            let n64 = i64::from(n);
            let available = if n % 10 == 0 { 5 } else { 100 * (1 + (n64 * 37) % 100) };
            let cents = 499 + (n64 * 1_250) % 20_000;
            Ok(DemoProduct {
                product_id: ProductId::parse(format!("sku-{n:03}"))?,
                available: StockLevel::parse(available).map_err(|_| DemoCatalogError)?,
                unit_price: UnitPrice::parse(cents).map_err(|_| DemoCatalogError)?,
                currency: Currency::usd(),
            })
        })
        .collect()
}

/// The demo catalog could not be built (a bug in its constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the demo catalog's constants are invalid")]
pub(crate) struct DemoCatalogError;

impl From<IdError> for DemoCatalogError {
    fn from(_: IdError) -> Self {
        Self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_has_forty_distinct_usd_products_starting_at_sku_001() {
        let catalog = demo_catalog().unwrap();
        assert_eq!(catalog.len(), 40);
        assert_eq!(catalog[0].product_id.as_str(), "sku-001");
        assert_eq!(catalog[39].product_id.as_str(), "sku-040");
        let mut ids: Vec<_> = catalog.iter().map(|p| p.product_id.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 40);
        assert!(catalog.iter().all(|p| p.currency == Currency::usd() && p.available.get() > 0));
        assert_eq!(catalog[9].available.get(), 5);
    }
}
