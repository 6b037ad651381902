//! Queries on `products`.

use orderflow_events::{Currency, ProductId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::StorageError;
use crate::domain::{Product, StockLevel, UnitPrice};

const COLUMNS: &str = "product_id, available, reserved, committed, unit_price_cents, currency";

fn product(row: &AnyRow) -> Result<Product, StorageError> {
    let id: String = row.try_get("product_id")?;
    let currency: String = row.try_get("currency")?;
    Ok(Product {
        product_id: ProductId::parse(id).map_err(StorageError::corrupt)?,
        available: row.try_get("available")?,
        reserved: row.try_get("reserved")?,
        committed: row.try_get("committed")?,
        unit_price_cents: row.try_get("unit_price_cents")?,
        currency: Currency::parse(currency).map_err(StorageError::corrupt)?,
    })
}

/// One product.
pub async fn find(conn: &mut AnyConnection, id: &ProductId) -> Result<Option<Product>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM products WHERE product_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(conn).await?;
    row.as_ref().map(product).transpose()
}

/// Every product, sorted by product id (byte order, the same on both databases whatever
/// PostgreSQL's collation).
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Product>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM products");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(conn).await?;
    let mut products = rows.iter().map(product).collect::<Result<Vec<_>, _>>()?;
    products.sort_by(|a, b| a.product_id.as_str().cmp(b.product_id.as_str()));
    Ok(products)
}

/// Whether the product exists.
pub async fn exists(conn: &mut AnyConnection, id: &ProductId) -> Result<bool, StorageError> {
    let row = sqlx::query("SELECT 1 AS one FROM products WHERE product_id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// Creates the product, or sets its stock level and price (reserved and committed units are
/// kept). `currency: None` keeps an existing product's currency and gives a new one USD.
pub async fn upsert(
    conn: &mut AnyConnection,
    id: &ProductId,
    available: StockLevel,
    price: UnitPrice,
    currency: Option<&Currency>,
) -> Result<Product, StorageError> {
    let keep_currency = i64::from(currency.is_none());
    let currency = currency.cloned().unwrap_or_else(Currency::usd);
    let sql = format!(
        "INSERT INTO products (product_id, available, reserved, committed, unit_price_cents, currency, \
         updated_at) VALUES ($1, $2, 0, 0, $3, $4, $5) \
         ON CONFLICT (product_id) DO UPDATE SET available = excluded.available, \
         unit_price_cents = excluded.unit_price_cents, \
         currency = CASE WHEN $6 = 1 THEN products.currency ELSE excluded.currency END, \
         updated_at = excluded.updated_at \
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .bind(available.get())
        .bind(price.cents())
        .bind(currency.as_str())
        .bind(orderflow_platform::now_rfc3339())
        .bind(keep_currency)
        .fetch_one(conn)
        .await?;
    product(&row)
}

/// Creates the product unless it exists (an existing one is left untouched); `true` if created.
pub async fn insert_if_absent(
    conn: &mut AnyConnection,
    id: &ProductId,
    available: StockLevel,
    price: UnitPrice,
    currency: &Currency,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "INSERT INTO products (product_id, available, reserved, committed, unit_price_cents, currency, \
         updated_at) VALUES ($1, $2, 0, 0, $3, $4, $5) ON CONFLICT (product_id) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(available.get())
    .bind(price.cents())
    .bind(currency.as_str())
    .bind(orderflow_platform::now_rfc3339())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The price of a product at the moment its units were reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedPrice {
    /// Unit price in cents.
    pub unit_price_cents: i64,
    /// Its currency.
    pub currency: Currency,
}

/// Moves `quantity` units from `available` to `reserved` if that many are available, returning
/// the price read under the same row lock; `None` if there are not enough units (or no product).
pub async fn reserve(
    conn: &mut AnyConnection,
    id: &ProductId,
    quantity: i64,
) -> Result<Option<ReservedPrice>, StorageError> {
    let row = sqlx::query(
        "UPDATE products SET available = available - $1, reserved = reserved + $1, updated_at = $2 \
         WHERE product_id = $3 AND available >= $1 RETURNING unit_price_cents, currency",
    )
    .bind(quantity)
    .bind(orderflow_platform::now_rfc3339())
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let currency: String = row.try_get("currency")?;
    Ok(Some(ReservedPrice {
        unit_price_cents: row.try_get("unit_price_cents")?,
        currency: Currency::parse(currency).map_err(StorageError::corrupt)?,
    }))
}

/// Moves `quantity` reserved units to `committed`; `false` if fewer are reserved.
pub async fn commit(conn: &mut AnyConnection, id: &ProductId, quantity: i64) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "UPDATE products SET reserved = reserved - $1, committed = committed + $1, updated_at = $2 \
         WHERE product_id = $3 AND reserved >= $1",
    )
    .bind(quantity)
    .bind(orderflow_platform::now_rfc3339())
    .bind(id.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves `quantity` reserved units back to `available`; `false` if fewer are reserved.
pub async fn release(conn: &mut AnyConnection, id: &ProductId, quantity: i64) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "UPDATE products SET available = available + $1, reserved = reserved - $1, updated_at = $2 \
         WHERE product_id = $3 AND reserved >= $1",
    )
    .bind(quantity)
    .bind(orderflow_platform::now_rfc3339())
    .bind(id.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
