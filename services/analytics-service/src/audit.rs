//! Read-only access to the whole read model, for checks: [`tables`] dumps every analytics table
//! in a fixed order, so two stores (the live one and a rebuilt one) compare with `==`.

use std::collections::BTreeMap;

use orderflow_platform::Db;
use orderflow_platform::sql::SqlError;

/// Each table with the columns it is dumped by (its key columns first).
pub(crate) const TABLES: [(&str, &str); 9] = [
    ("analytics_minutes", "minute, accepted, confirmed, cancelled"),
    ("analytics_revenue", "minute, currency, cents"),
    ("analytics_revenue_total", "currency, cents"),
    ("analytics_reasons", "reason, n"),
    ("analytics_flow", "step, n"),
    ("analytics_products", "product_id, quantity, orders"),
    ("analytics_latency", "minute, bucket, n"),
    ("analytics_latency_total", "bucket, n"),
    ("analytics_open_orders", "order_id, created_ms, terminal_ms"),
];

/// Every analytics table's rows, as text, sorted.
///
/// # Errors
/// The database failed.
pub async fn tables(db: &Db) -> Result<BTreeMap<&'static str, Vec<String>>, SqlError> {
    db.read_snapshot(|tx| {
        Box::pin(async move {
            let mut out = BTreeMap::new();
            for (table, columns) in TABLES {
                let n = columns.split(',').count();
                let rows = tx.query_all(&format!("SELECT {columns} FROM {table}"), &[]).await?;
                let mut lines = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut cells = Vec::with_capacity(n);
                    for i in 0..n {
                        cells.push(match row.opt_int(i) {
                            Ok(v) => v.map_or_else(|| "null".to_owned(), |v| v.to_string()),
                            Err(_) => row.text(i)?,
                        });
                    }
                    lines.push(cells.join("|"));
                }
                lines.sort();
                out.insert(table, lines);
            }
            Ok(out)
        })
    })
    .await
}
