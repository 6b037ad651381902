//! `/inventory`: read the catalog and its stock; create or restock a product (admin).
//!
//! Path ids are parsed at the edge: a product id that is not 1–64 characters without control
//! characters is a malformed path parameter (400 `invalid-parameter`, as SPEC treats malformed
//! path ids); body fields that break a rule are 422 `validation-failed`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use orderflow_events::{Currency, ProductId};
use orderflow_platform::http::{ApiJson, Problem, ProblemType};
use serde::{Deserialize, Serialize};

use crate::domain::{Product, StockLevel, UnitPrice};
use crate::startup::AppState;
use crate::storage::{StorageError, products};

/// `GET /inventory`.
#[derive(Debug, Serialize)]
pub(crate) struct ProductList {
    /// Every product, sorted by product id.
    pub(crate) products: Vec<Product>,
}

/// `PUT /inventory/{product_id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutProduct {
    /// The new stock level (reserved and committed units are kept).
    pub(crate) available: StockLevel,
    /// The new unit price in cents.
    pub(crate) unit_price_cents: UnitPrice,
    /// Currency of the price; absent keeps an existing product's currency, USD for a new one.
    #[serde(default)]
    pub(crate) currency: Option<Currency>,
}

fn product_id(path: Result<Path<String>, PathRejection>) -> Result<ProductId, Problem> {
    let Path(raw) = path.map_err(|e| Problem::new(ProblemType::InvalidParameter, e.body_text()))?;
    ProductId::parse(raw).map_err(|e| Problem::new(ProblemType::InvalidParameter, format!("product_id: {e}")))
}

fn storage_problem(e: StorageError) -> Problem {
    match e {
        StorageError::Database(e) => {
            tracing::warn!(error = %e, "database unavailable for a request");
            Problem::new(ProblemType::Unavailable, "the inventory database is unavailable; retry later")
        }
        corrupt @ StorageError::Corrupt(_) => Problem::internal(&corrupt),
    }
}

/// `GET /inventory` → `{"products": [...]}` sorted by product id.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<ProductList>, Problem> {
    let products = state
        .db
        .read(|tx| Box::pin(async move { products::list(tx).await }))
        .await
        .map_err(storage_problem)?;
    Ok(Json(ProductList { products }))
}

/// `GET /inventory/{product_id}` → the product, or 404.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Product>, Problem> {
    let id = product_id(path)?;
    let wanted = id.clone();
    let found = state.db.read(move |tx| Box::pin(async move { products::find(tx, &wanted).await })).await;
    match found.map_err(storage_problem)? {
        Some(product) => Ok(Json(product)),
        None => Err(Problem::new(ProblemType::NotFound, format!("no product {id}"))),
    }
}

/// `PUT /inventory/{product_id}` → creates or updates the product; 200 with it.
pub(crate) async fn put_one(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<PutProduct>,
) -> Result<Json<Product>, Problem> {
    let id = product_id(path)?;
    let target = id.clone();
    let product = state
        .db
        .write(move |tx| {
            Box::pin(async move {
                products::upsert(tx, &target, body.available, body.unit_price_cents, body.currency.as_ref())
                    .await
            })
        })
        .await
        .map_err(|e| storage_problem(e.into_unit_error()))?;
    tracing::info!(product_id = %id, available = product.available, price = product.unit_price_cents, "product stocked");
    Ok(Json(product))
}
