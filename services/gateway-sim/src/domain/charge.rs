//! A charge and the values it is made of, each parsed at the edge so an invalid one cannot exist.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Why a value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ValueError {
    /// An order reference that is empty, over 64 characters, or has control characters.
    #[error("order_id must be 1 to 64 characters without control characters")]
    OrderRef,
    /// An amount over `i64::MAX` cents.
    #[error("amount_cents must be an integer from 0 to {}", i64::MAX)]
    Amount,
    /// A currency that is not three ASCII uppercase letters.
    #[error("currency must be exactly three ASCII uppercase letters (ISO 4217), got {0:?}")]
    Currency(String),
    /// An idempotency key that is empty, too long or not visible ASCII.
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
    IdempotencyKey,
}

/// The merchant's order this charge is for: 1 to 64 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct OrderRef(String);

impl OrderRef {
    /// Longest accepted reference.
    pub(crate) const MAX_LEN: usize = 64;

    /// Parses an order reference.
    pub(crate) fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        let len = value.chars().count();
        if len == 0 || len > Self::MAX_LEN || value.chars().any(char::is_control) {
            return Err(ValueError::OrderRef);
        }
        Ok(Self(value))
    }

    /// The reference as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrderRef {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<OrderRef> for String {
    fn from(value: OrderRef) -> Self {
        value.0
    }
}

/// An amount in integer cents, `0..=i64::MAX` so that every client can store it in a signed
/// 64-bit column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub(crate) struct AmountCents(u64);

impl AmountCents {
    /// Parses an amount.
    pub(crate) fn parse(cents: u64) -> Result<Self, ValueError> {
        if i64::try_from(cents).is_err() {
            return Err(ValueError::Amount);
        }
        Ok(Self(cents))
    }

    /// The amount in cents.
    pub(crate) fn cents(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for AmountCents {
    type Error = ValueError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<AmountCents> for u64 {
    fn from(value: AmountCents) -> Self {
        value.0
    }
}

/// An ISO-4217-shaped currency code: exactly three ASCII uppercase letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub(crate) struct Currency(String);

impl Currency {
    /// Parses a currency code.
    pub(crate) fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValueError::Currency(value));
        }
        Ok(Self(value))
    }

    /// The code as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.0
    }
}

/// The client's `Idempotency-Key`: 1 to 255 visible ASCII characters (`!` to `~`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub(crate) struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest accepted key.
    pub(crate) const MAX_LEN: usize = 255;

    /// Parses a key.
    pub(crate) fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        if value.is_empty() || value.len() > Self::MAX_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValueError::IdempotencyKey);
        }
        Ok(Self(value))
    }

    /// The key as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<IdempotencyKey> for String {
    fn from(value: IdempotencyKey) -> Self {
        value.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The body of `POST /charges`. Unknown fields are refused so that a client's typo is a `422`,
/// not a silently different charge.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// The order being paid.
    pub(crate) order_id: OrderRef,
    /// How much, in cents.
    pub(crate) amount_cents: AmountCents,
    /// In which currency.
    pub(crate) currency: Currency,
}

/// The gateway's verdict on a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChargeStatus {
    /// The money was taken.
    Succeeded,
    /// The card was declined; no money was taken.
    Declined,
}

impl ChargeStatus {
    /// `succeeded` or `declined`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Declined => "declined",
        }
    }
}

/// A recorded charge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Charge {
    /// The gateway's id: `ch_` and a UUIDv7 without hyphens.
    pub(crate) charge_id: String,
    /// The order it pays.
    pub(crate) order_id: OrderRef,
    /// The amount in cents.
    pub(crate) amount_cents: AmountCents,
    /// The currency.
    pub(crate) currency: Currency,
    /// Succeeded or declined.
    pub(crate) status: ChargeStatus,
    /// The key it was created with.
    pub(crate) idempotency_key: IdempotencyKey,
    /// The W3C `traceparent` of the request that created it, when it sent a valid one (in the
    /// version-00 form): joins the charge to the caller's trace.
    pub(crate) traceparent: Option<String>,
    /// When it was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
}

impl Charge {
    /// Whether `request` asks for exactly this charge (the idempotency check).
    pub(crate) fn matches(&self, request: &ChargeRequest) -> bool {
        self.order_id == request.order_id
            && self.amount_cents == request.amount_cents
            && self.currency == request.currency
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn an_order_ref_is_one_to_sixty_four_characters_without_control_characters() {
        assert!(OrderRef::parse("a").is_ok());
        assert!(OrderRef::parse("é".repeat(64)).is_ok());
        assert_eq!(OrderRef::parse(""), Err(ValueError::OrderRef));
        assert_eq!(OrderRef::parse("a".repeat(65)), Err(ValueError::OrderRef));
        assert_eq!(OrderRef::parse("a\nb"), Err(ValueError::OrderRef));
    }

    #[test]
    fn a_currency_is_three_uppercase_letters() {
        assert!(Currency::parse("USD").is_ok());
        for bad in ["usd", "US", "USDX", "U5D", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_amount_fits_in_a_signed_64_bit_integer() {
        assert_eq!(AmountCents::parse(0).unwrap().cents(), 0);
        assert!(AmountCents::parse(i64::MAX as u64).is_ok());
        assert_eq!(AmountCents::parse(i64::MAX as u64 + 1), Err(ValueError::Amount));
    }

    #[test]
    fn an_idempotency_key_is_visible_ascii_up_to_255_characters() {
        assert!(IdempotencyKey::parse("0192f6e4-7a3c-7d2e-9c1b-1f2e3d4c5b6a").is_ok());
        assert!(IdempotencyKey::parse("k".repeat(255)).is_ok());
        for bad in [String::new(), "k".repeat(256), "has space".into(), "tab\t".into(), "é".into()] {
            assert_eq!(IdempotencyKey::parse(bad.clone()), Err(ValueError::IdempotencyKey), "{bad:?}");
        }
    }

    #[test]
    fn a_charge_request_refuses_unknown_fields() {
        let body = r#"{"order_id":"o","amount_cents":1,"currency":"USD","tip":5}"#;

        assert!(serde_json::from_str::<ChargeRequest>(body).is_err());
    }
}
