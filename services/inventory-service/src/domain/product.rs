//! Products and the two values an operator sets on them: the stock level and the unit price.

use std::fmt;

use orderflow_events::{Currency, ProductId};
use serde::{Deserialize, Serialize};

/// Why a stock level or a price was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Negative.
    #[error("must not be negative, got {0}")]
    Negative(i64),
    /// Above the ceiling that keeps every sum within 64 bits.
    #[error("must be at most {max}, got {value}")]
    TooLarge {
        /// The value.
        value: i64,
        /// The ceiling.
        max: i64,
    },
}

fn check(value: i64, max: i64) -> Result<i64, ValueError> {
    if value < 0 {
        Err(ValueError::Negative(value))
    } else if value > max {
        Err(ValueError::TooLarge { value, max })
    } else {
        Ok(value)
    }
}

/// Units of a product on hand for new reservations: `0..=1_000_000_000_000`.
///
/// The ceiling keeps `available + reserved + committed` far from `i64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct StockLevel(i64);

impl StockLevel {
    /// The largest stock level accepted.
    pub(crate) const MAX: i64 = 1_000_000_000_000;

    /// Parses a stock level.
    ///
    /// # Errors
    /// [`ValueError`] when `value` is negative or above `Self::MAX`.
    pub fn parse(value: i64) -> Result<Self, ValueError> {
        check(value, Self::MAX).map(Self)
    }

    /// The number of units.
    #[must_use]
    pub(crate) const fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for StockLevel {
    type Error = ValueError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<StockLevel> for i64 {
    fn from(value: StockLevel) -> Self {
        value.0
    }
}

impl fmt::Display for StockLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The price of one unit in cents: `0..=10_000_000_000` (100 million in the currency's unit).
///
/// The ceiling keeps a reservation's total (at most 100 lines of at most 1,000,000 units) below
/// `i64::MAX`, so pricing can never overflow for valid data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct UnitPrice(i64);

impl UnitPrice {
    /// The largest unit price accepted, in cents.
    pub(crate) const MAX_CENTS: i64 = 10_000_000_000;

    /// Parses a unit price in cents.
    ///
    /// # Errors
    /// [`ValueError`] when `cents` is negative or above `Self::MAX_CENTS`.
    pub fn parse(cents: i64) -> Result<Self, ValueError> {
        check(cents, Self::MAX_CENTS).map(Self)
    }

    /// The price in cents.
    #[must_use]
    pub(crate) const fn cents(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for UnitPrice {
    type Error = ValueError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<UnitPrice> for i64 {
    fn from(value: UnitPrice) -> Self {
        value.0
    }
}

/// A product as the HTTP API shows it (SPEC: `GET /inventory/{product_id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The SKU.
    pub(crate) product_id: ProductId,
    /// Units free to reserve.
    pub available: i64,
    /// Units held by reservations whose payment is pending.
    pub(crate) reserved: i64,
    /// Units sold (payment completed); they never come back.
    pub(crate) committed: i64,
    /// Price of one unit, in cents of `currency`.
    pub unit_price_cents: i64,
    /// Currency of the price.
    pub(crate) currency: Currency,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn stock_levels_accept_zero_to_the_ceiling() {
        assert_eq!(StockLevel::parse(-1), Err(ValueError::Negative(-1)));
        assert_eq!(StockLevel::parse(0).map(StockLevel::get), Ok(0));
        assert!(StockLevel::parse(StockLevel::MAX).is_ok());
        assert!(matches!(StockLevel::parse(StockLevel::MAX + 1), Err(ValueError::TooLarge { .. })));
    }

    #[test]
    fn prices_accept_zero_to_the_ceiling() {
        assert_eq!(UnitPrice::parse(-5), Err(ValueError::Negative(-5)));
        assert_eq!(UnitPrice::parse(0).map(UnitPrice::cents), Ok(0));
        assert!(matches!(UnitPrice::parse(UnitPrice::MAX_CENTS + 1), Err(ValueError::TooLarge { .. })));
    }

    #[test]
    fn deserialization_runs_the_same_checks_as_parse() {
        assert!(serde_json::from_str::<StockLevel>("-1").is_err());
        assert!(serde_json::from_str::<UnitPrice>("1.5").is_err());
        assert_eq!(serde_json::from_str::<StockLevel>("7").unwrap(), StockLevel::parse(7).unwrap());
    }
}
