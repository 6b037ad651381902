//! Identifier and value newtypes used inside events.
//!
//! Every type here is "parse, don't validate": the only ways to obtain one are
//! its constructor (`new`/`generate`), `parse`, or deserialization, and all of
//! them run the same check, so an invalid value cannot exist. Each type also
//! implements [`JsonSchema`] by hand so that the committed JSON Schemas carry
//! exactly the constraints that `parse` enforces.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string or number was refused by one of the newtypes in this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value was an empty string.
    #[error("value is empty")]
    Empty,
    /// The value is longer than `max` characters (Unicode scalar values).
    #[error("value is longer than {max} characters")]
    TooLong {
        /// The maximum accepted length in characters.
        max: usize,
    },
    /// The value contains a character outside the allowed set (for example a
    /// control character, or a space in a correlation id).
    #[error("value contains a character that is not allowed")]
    InvalidChar,
    /// The number lies outside `min..=max`.
    #[error("value is outside the range {min}..={max}")]
    OutOfRange {
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
    },
    /// The value is not three ASCII uppercase letters.
    #[error("currency must be exactly three ASCII uppercase letters (ISO 4217)")]
    InvalidCurrency,
    /// The value is not a hyphenated UUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
    #[error("value is not a hyphenated UUID")]
    InvalidUuid,
    /// An amount of money below zero.
    #[error("an amount of money cannot be negative")]
    NegativeAmount,
}

/// JSON Schema pattern for "no control characters" (Unicode general category
/// Cc, i.e. exactly what [`char::is_control`] rejects). Written with `\uXXXX`
/// escapes, which both ECMA-262 and Rust regex understand.
const NO_CONTROL_CHARS_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

/// JSON Schema pattern for correlation ids.
const CORRELATION_ID_PATTERN: &str = "^[A-Za-z0-9._:-]+$";

/// Maximum length of a correlation id in characters.
const CORRELATION_ID_MAX: usize = 128;

fn check_text(value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty);
    }
    if value.chars().count() > max {
        return Err(IdError::TooLong { max });
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::InvalidChar);
    }
    Ok(())
}

fn parse_hyphenated_uuid(value: &str) -> Result<Uuid, IdError> {
    // `Uuid::try_parse` also accepts the simple, braced and URN forms; the
    // schema's `format: uuid` only accepts the hyphenated one, so the Rust
    // side refuses the others too and both sides agree.
    if value.len() != 36 {
        return Err(IdError::InvalidUuid);
    }
    Uuid::try_parse(value).map_err(|_| IdError::InvalidUuid)
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            #[doc = concat!("A fresh, time-ordered (UUIDv7) ", $what, ".")]
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            #[doc = concat!("Parses a ", $what, " from its hyphenated UUID form.")]
            ///
            /// # Errors
            /// [`IdError::InvalidUuid`] when `value` is not a hyphenated UUID.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                parse_hyphenated_uuid(value).map(Self)
            }

            #[doc = concat!("Wraps an existing UUID as a ", $what, ".")]
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.to_string()
            }
        }

        impl From<$name> for Uuid {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn schema_id() -> Cow<'static, str> {
                concat!(module_path!(), "::", stringify!($name)).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": concat!("The ", $what, ", as a hyphenated UUID."),
                    "type": "string",
                    "format": "uuid",
                    "minLength": 36,
                    "maxLength": 36,
                })
            }
        }
    };
}

uuid_id!(
    /// Identifies one event; also used as the JetStream `Nats-Msg-Id` for
    /// de-duplication. New ids are UUIDv7 so they sort by creation time.
    EventId,
    "event id"
);
uuid_id!(
    /// Identifies an order across every service of the saga.
    OrderId,
    "order id"
);
uuid_id!(
    /// Identifies a stock reservation made by the inventory service.
    ReservationId,
    "reservation id"
);
uuid_id!(
    /// Identifies a payment made by the payment service.
    PaymentId,
    "payment id"
);

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $max:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Maximum length of a ", $what, " in characters.")]
            pub const MAX_LEN: usize = $max;

            #[doc = concat!("Parses a ", $what, ": 1 to ", stringify!($max), " characters, no control characters.")]
            ///
            /// # Errors
            /// [`IdError::Empty`], [`IdError::TooLong`] or [`IdError::InvalidChar`].
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_text(&value, Self::MAX_LEN)?;
                Ok(Self(value))
            }

            /// The value as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn schema_id() -> Cow<'static, str> {
                concat!(module_path!(), "::", stringify!($name)).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": concat!(
                        "The ", $what, ": 1 to ", stringify!($max),
                        " characters, no control characters."
                    ),
                    "type": "string",
                    "minLength": 1,
                    "maxLength": $max,
                    "pattern": NO_CONTROL_CHARS_PATTERN,
                })
            }
        }
    };
}

text_id!(
    /// Identifies a customer (opaque, assigned outside orderflow).
    CustomerId,
    64,
    "customer id"
);
text_id!(
    /// Identifies a product (a SKU).
    ProductId,
    64,
    "product id"
);
text_id!(
    /// The payment gateway's id for a successful charge.
    ChargeId,
    128,
    "charge id"
);

/// Ties together every log line, span and event caused by one request.
///
/// 1 to 128 characters of `[A-Za-z0-9._:-]`, so it is safe in NATS headers,
/// HTTP headers and log fields without escaping.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl CorrelationId {
    /// Maximum length of a correlation id in characters.
    pub(crate) const MAX_LEN: usize = CORRELATION_ID_MAX;

    /// A fresh correlation id (a hyphenated UUIDv7), for requests that arrive
    /// without one.
    #[must_use]
    pub fn generate() -> Self {
        Self(Uuid::now_v7().hyphenated().to_string())
    }

    /// Parses a correlation id: 1 to 128 characters of `[A-Za-z0-9._:-]`.
    ///
    /// # Errors
    /// [`IdError::Empty`], [`IdError::TooLong`] or [`IdError::InvalidChar`].
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(IdError::Empty);
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
            return Err(IdError::InvalidChar);
        }
        // All characters are ASCII here, so bytes == characters.
        if value.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { max: Self::MAX_LEN });
        }
        Ok(Self(value))
    }

    /// The value as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CorrelationId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for CorrelationId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<CorrelationId> for String {
    fn from(value: CorrelationId) -> Self {
        value.0
    }
}

impl JsonSchema for CorrelationId {
    fn schema_name() -> Cow<'static, str> {
        "CorrelationId".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::CorrelationId").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Correlation id: 1 to 128 characters of [A-Za-z0-9._:-].",
            "type": "string",
            "minLength": 1,
            "maxLength": CORRELATION_ID_MAX,
            "pattern": CORRELATION_ID_PATTERN,
        })
    }
}

/// How many units of a product an order line asks for: `1..=1_000_000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// Smallest accepted quantity.
    pub(crate) const MIN: u32 = 1;
    /// Largest accepted quantity.
    pub const MAX: u32 = 1_000_000;

    /// Parses a quantity.
    ///
    /// # Errors
    /// [`IdError::OutOfRange`] when `value` is not in `1..=1_000_000`.
    pub fn parse(value: u32) -> Result<Self, IdError> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(IdError::OutOfRange { min: Self::MIN, max: Self::MAX })
        }
    }

    /// The quantity as a number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl TryFrom<u32> for Quantity {
    type Error = IdError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> Self {
        value.0
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::Quantity").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A quantity of units: an integer from 1 to 1000000.",
            "type": "integer",
            "minimum": Quantity::MIN,
            "maximum": Quantity::MAX,
        })
    }
}

/// An amount of money: integer cents (never a float) of one currency, never negative.
///
/// ```
/// use orderflow_events::{Currency, Money};
/// let total = Money::new(2_500, Currency::usd()).unwrap();
/// assert_eq!((total.cents(), total.currency().as_str()), (2_500, "USD"));
/// assert!(Money::new(-1, Currency::usd()).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    cents: i64,
    currency: Currency,
}

impl Money {
    /// `cents` of `currency`.
    ///
    /// # Errors
    /// [`IdError::NegativeAmount`] when `cents` is below zero.
    pub fn new(cents: i64, currency: Currency) -> Result<Self, IdError> {
        if cents < 0 {
            return Err(IdError::NegativeAmount);
        }
        Ok(Self { cents, currency })
    }

    /// The amount in cents.
    #[must_use]
    pub fn cents(&self) -> i64 {
        self.cents
    }

    /// The currency.
    #[must_use]
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.cents, self.currency)
    }
}

/// An ISO-4217-shaped currency code: exactly three ASCII uppercase letters.
///
/// Only the shape is checked; whether a code is actually supported is a
/// business rule of the services.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// US dollars, the default currency of the catalog.
    #[must_use]
    pub fn usd() -> Self {
        Self("USD".to_owned())
    }

    /// Parses a currency code.
    ///
    /// # Errors
    /// [`IdError::InvalidCurrency`] unless `value` is three ASCII uppercase letters.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(value))
        } else {
            Err(IdError::InvalidCurrency)
        }
    }

    /// The code as a string slice, e.g. `"USD"`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Currency {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.0
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::Currency").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "ISO 4217 currency code: exactly three ASCII uppercase letters.",
            "type": "string",
            "minLength": 3,
            "maxLength": 3,
            "pattern": "^[A-Z]{3}$",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn product_id_accepts_1_and_64_characters_and_refuses_0_and_65() {
        assert_eq!(ProductId::parse(""), Err(IdError::Empty));
        assert!(ProductId::parse("a").is_ok());
        assert!(ProductId::parse("a".repeat(64)).is_ok());
        assert_eq!(ProductId::parse("a".repeat(65)), Err(IdError::TooLong { max: 64 }));
    }

    #[test]
    fn text_ids_count_characters_not_bytes() {
        // 64 two-byte characters are 128 bytes but still 64 characters.
        assert!(CustomerId::parse("é".repeat(64)).is_ok());
        assert_eq!(CustomerId::parse("é".repeat(65)), Err(IdError::TooLong { max: 64 }));
    }

    #[test]
    fn text_ids_refuse_control_characters() {
        for bad in ["a\nb", "\t", "x\u{7f}", "x\u{85}", "\0"] {
            assert_eq!(CustomerId::parse(bad), Err(IdError::InvalidChar), "{bad:?}");
        }
        assert!(CustomerId::parse("cust 42 / ünïcode").is_ok());
    }

    #[test]
    fn charge_id_accepts_128_characters_and_refuses_129() {
        assert!(ChargeId::parse("c".repeat(128)).is_ok());
        assert_eq!(ChargeId::parse("c".repeat(129)), Err(IdError::TooLong { max: 128 }));
    }

    #[test]
    fn correlation_id_accepts_its_charset_and_refuses_anything_else() {
        assert!(CorrelationId::parse("Req-1.a_b:c").is_ok());
        assert!(CorrelationId::parse("x".repeat(128)).is_ok());
        assert_eq!(CorrelationId::parse("x".repeat(129)), Err(IdError::TooLong { max: 128 }));
        assert_eq!(CorrelationId::parse(""), Err(IdError::Empty));
        for bad in ["a b", "a/b", "a\nb", "é", "a+b", "a\u{0}"] {
            assert_eq!(CorrelationId::parse(bad), Err(IdError::InvalidChar), "{bad:?}");
        }
    }

    #[test]
    fn generated_correlation_ids_are_valid() {
        let id = CorrelationId::generate();
        assert_eq!(CorrelationId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn quantity_accepts_1_to_1_000_000() {
        let out_of_range = Err(IdError::OutOfRange { min: 1, max: 1_000_000 });
        assert_eq!(Quantity::parse(0), out_of_range);
        assert_eq!(Quantity::parse(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(1_000_000).map(Quantity::get), Ok(1_000_000));
        assert_eq!(Quantity::parse(1_000_001), out_of_range);
    }

    #[test]
    fn currency_must_be_three_uppercase_ascii_letters() {
        assert_eq!(Currency::parse("USD"), Ok(Currency::usd()));
        for bad in ["usd", "US", "USDD", "U$D", "ÜSD", ""] {
            assert_eq!(Currency::parse(bad), Err(IdError::InvalidCurrency), "{bad:?}");
        }
    }

    #[test]
    fn uuid_ids_are_v7_and_round_trip_through_their_string_form() {
        let id = OrderId::new();
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(id.to_string().parse::<OrderId>(), Ok(id));
        assert_eq!(EventId::new().as_uuid().get_version_num(), 7);
    }

    #[test]
    fn uuid_ids_accept_only_the_hyphenated_form() {
        let id = OrderId::new();
        let simple = id.as_uuid().simple().to_string();
        let braced = id.as_uuid().braced().to_string();
        assert_eq!(OrderId::parse(&simple), Err(IdError::InvalidUuid));
        assert_eq!(OrderId::parse(&braced), Err(IdError::InvalidUuid));
        assert_eq!(OrderId::parse("not-a-uuid"), Err(IdError::InvalidUuid));
    }

    #[test]
    fn deserialization_runs_the_same_checks_as_parse() {
        assert!(serde_json::from_str::<ProductId>(&format!("\"{}\"", "p".repeat(65))).is_err());
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<CorrelationId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<Currency>("\"usd\"").is_err());
        assert!(serde_json::from_str::<OrderId>("\"nope\"").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("7").unwrap(), Quantity::parse(7).unwrap());
    }

    #[test]
    fn serialization_is_the_plain_value() {
        let id = OrderId::new();
        assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(id.to_string()));
        assert_eq!(serde_json::to_value(Quantity::parse(3).unwrap()).unwrap(), serde_json::json!(3));
    }

    #[test]
    fn generated_schemas_carry_the_constraints() {
        let product = schemars::schema_for!(ProductId).to_value();
        assert_eq!(product["maxLength"], 64);
        assert_eq!(product["minLength"], 1);
        assert_eq!(product["pattern"], NO_CONTROL_CHARS_PATTERN);

        let correlation = schemars::schema_for!(CorrelationId).to_value();
        assert_eq!(correlation["maxLength"], 128);
        assert_eq!(correlation["pattern"], CORRELATION_ID_PATTERN);

        let quantity = schemars::schema_for!(Quantity).to_value();
        assert_eq!(quantity["minimum"], 1);
        assert_eq!(quantity["maximum"], 1_000_000);

        let currency = schemars::schema_for!(Currency).to_value();
        assert_eq!(currency["pattern"], "^[A-Z]{3}$");

        let order = schemars::schema_for!(OrderId).to_value();
        assert_eq!(order["format"], "uuid");
    }
}
