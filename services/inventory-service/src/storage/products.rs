//! Queries on `products`.

use orderflow_events::{Currency, ProductId};
use orderflow_platform::args;
use orderflow_platform::sql::{Row, Tx};

use super::StorageError;
use crate::domain::{Product, StockLevel, UnitPrice};

/// The columns [`product`] reads, in its order.
macro_rules! columns {
    () => {
        "product_id, available, reserved, committed, unit_price_cents, currency"
    };
}

fn product(row: &Row) -> Result<Product, StorageError> {
    Ok(Product {
        product_id: ProductId::parse(row.text(0)?).map_err(StorageError::corrupt)?,
        available: row.int(1)?,
        reserved: row.int(2)?,
        committed: row.int(3)?,
        unit_price_cents: row.int(4)?,
        currency: Currency::parse(row.text(5)?).map_err(StorageError::corrupt)?,
    })
}

/// One product.
pub(crate) async fn find(tx: &mut Tx, id: &ProductId) -> Result<Option<Product>, StorageError> {
    let row = tx
        .query_opt(concat!("SELECT ", columns!(), " FROM products WHERE product_id = $1"), args![id.as_str()])
        .await?;
    row.as_ref().map(product).transpose()
}

/// Every product, sorted by product id (byte order, the same on both databases whatever
/// PostgreSQL's collation).
pub(crate) async fn list(tx: &mut Tx) -> Result<Vec<Product>, StorageError> {
    let rows = tx.query_all(concat!("SELECT ", columns!(), " FROM products"), &[]).await?;
    let mut products = rows.iter().map(product).collect::<Result<Vec<_>, _>>()?;
    products.sort_by(|a, b| a.product_id.as_str().cmp(b.product_id.as_str()));
    Ok(products)
}

/// Whether the product exists.
pub(crate) async fn exists(tx: &mut Tx, id: &ProductId) -> Result<bool, StorageError> {
    let row = tx.query_opt("SELECT 1 FROM products WHERE product_id = $1", args![id.as_str()]).await?;
    Ok(row.is_some())
}

/// Creates the product, or sets its stock level and price (reserved and committed units are
/// kept). `currency: None` keeps an existing product's currency and gives a new one USD.
pub(crate) async fn upsert(
    tx: &mut Tx,
    id: &ProductId,
    available: StockLevel,
    price: UnitPrice,
    currency: Option<&Currency>,
) -> Result<Product, StorageError> {
    let keep_currency = i64::from(currency.is_none());
    let currency = currency.cloned().unwrap_or_else(Currency::usd);
    let now = orderflow_platform::now_rfc3339();
    let row = tx
        .query_one(
            concat!(
                "INSERT INTO products (product_id, available, reserved, committed, unit_price_cents, currency, \
                 updated_at) VALUES ($1, $2, 0, 0, $3, $4, $5) \
                 ON CONFLICT (product_id) DO UPDATE SET available = excluded.available, \
                 unit_price_cents = excluded.unit_price_cents, \
                 currency = CASE WHEN $6 = 1 THEN products.currency ELSE excluded.currency END, \
                 updated_at = excluded.updated_at \
                 RETURNING ",
                columns!()
            ),
            args![id.as_str(), available.get(), price.cents(), currency.as_str(), &now, keep_currency],
        )
        .await?;
    product(&row)
}

/// Creates the product unless it exists (an existing one is left untouched); `true` if created.
pub(crate) async fn insert_if_absent(
    tx: &mut Tx,
    id: &ProductId,
    available: StockLevel,
    price: UnitPrice,
    currency: &Currency,
) -> Result<bool, StorageError> {
    let now = orderflow_platform::now_rfc3339();
    let inserted = tx
        .execute(
            "INSERT INTO products (product_id, available, reserved, committed, unit_price_cents, currency, \
             updated_at) VALUES ($1, $2, 0, 0, $3, $4, $5) ON CONFLICT (product_id) DO NOTHING",
            args![id.as_str(), available.get(), price.cents(), currency.as_str(), &now],
        )
        .await?;
    Ok(inserted == 1)
}

/// The price of a product at the moment its units were reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReservedPrice {
    /// Unit price in cents.
    pub(crate) unit_price_cents: i64,
    /// Its currency.
    pub(crate) currency: Currency,
}

/// Moves `quantity` units from `available` to `reserved` if that many are available, returning
/// the price read under the same row lock; `None` if there are not enough units (or no product).
pub(crate) async fn reserve(
    tx: &mut Tx,
    id: &ProductId,
    quantity: i64,
) -> Result<Option<ReservedPrice>, StorageError> {
    let now = orderflow_platform::now_rfc3339();
    let row = tx
        .query_opt(
            "UPDATE products SET available = available - $1, reserved = reserved + $1, updated_at = $2 \
             WHERE product_id = $3 AND available >= $1 RETURNING unit_price_cents, currency",
            args![quantity, &now, id.as_str()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(ReservedPrice {
        unit_price_cents: row.int(0)?,
        currency: Currency::parse(row.text(1)?).map_err(StorageError::corrupt)?,
    }))
}

/// Moves `quantity` reserved units to `committed`; `false` if fewer are reserved.
pub(crate) async fn commit(tx: &mut Tx, id: &ProductId, quantity: i64) -> Result<bool, StorageError> {
    let now = orderflow_platform::now_rfc3339();
    let moved = tx
        .execute(
            "UPDATE products SET reserved = reserved - $1, committed = committed + $1, updated_at = $2 \
             WHERE product_id = $3 AND reserved >= $1",
            args![quantity, &now, id.as_str()],
        )
        .await?;
    Ok(moved == 1)
}

/// Moves `quantity` reserved units back to `available`; `false` if fewer are reserved.
pub(crate) async fn release(tx: &mut Tx, id: &ProductId, quantity: i64) -> Result<bool, StorageError> {
    let now = orderflow_platform::now_rfc3339();
    let moved = tx
        .execute(
            "UPDATE products SET available = available + $1, reserved = reserved - $1, updated_at = $2 \
             WHERE product_id = $3 AND reserved >= $1",
            args![quantity, &now, id.as_str()],
        )
        .await?;
    Ok(moved == 1)
}
