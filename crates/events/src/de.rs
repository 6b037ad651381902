//! Deserialization helpers that make serde enforce the same rules as the JSON
//! Schemas, so that a value which skipped schema validation (deserialized
//! directly with `serde_json`) still cannot be invalid.

use serde::de::{Deserialize, Deserializer, Error};

/// Money in cents must not be negative.
pub(crate) fn non_negative_cents<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let cents = i64::deserialize(d)?;
    if cents < 0 {
        return Err(D::Error::custom(format_args!("cents must not be negative, got {cents}")));
    }
    Ok(cents)
}

/// A nullable field must be present (as `null` or a value). Plain serde would
/// silently turn a missing `Option` field into `None`; routing it through
/// `deserialize_with` makes serde report `missing field` instead.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// A list of order lines: 1 to [`crate::v1::MAX_LINES`] entries.
pub(crate) fn lines<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let lines = Vec::<T>::deserialize(d)?;
    crate::v1::check_line_count(lines.len()).map_err(D::Error::custom)?;
    Ok(lines)
}
