//! The faults the simulator injects, and the partial updates an operator sends.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a fault setting was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum FaultError {
    /// A rate outside `0..=1`.
    #[error("a rate must be a number from 0.0 to 1.0, got {0}")]
    Rate(f64),
    /// A latency over [`Latency::MAX_MS`].
    #[error("latency_ms must be at most {max} (10 minutes), got {0}", max = Latency::MAX_MS)]
    Latency(u64),
}

/// A probability in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub(crate) struct Rate(f64);

impl Rate {
    /// Parses a rate.
    pub(crate) fn parse(value: f64) -> Result<Self, FaultError> {
        if (0.0..=1.0).contains(&value) { Ok(Self(value)) } else { Err(FaultError::Rate(value)) }
    }

    /// The probability.
    pub(crate) fn get(self) -> f64 {
        self.0
    }

    /// Whether a uniform roll in `0.0..1.0` lands inside this rate (never for 0, always for 1).
    pub(crate) fn hit(self, roll: f64) -> bool {
        roll < self.0
    }
}

impl TryFrom<f64> for Rate {
    type Error = FaultError;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Rate> for f64 {
    fn from(value: Rate) -> Self {
        value.0
    }
}

/// Added latency in milliseconds, at most ten minutes so that a typo cannot hang a client for
/// days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub(crate) struct Latency(u64);

impl Latency {
    /// Longest accepted latency.
    pub(crate) const MAX_MS: u64 = 600_000;

    /// Parses a latency in milliseconds.
    pub(crate) fn from_millis(ms: u64) -> Result<Self, FaultError> {
        if ms > Self::MAX_MS { Err(FaultError::Latency(ms)) } else { Ok(Self(ms)) }
    }

    /// As a duration.
    pub(crate) fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// In milliseconds.
    pub(crate) fn millis(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Latency {
    type Error = FaultError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::from_millis(value)
    }
}

impl From<Latency> for u64 {
    fn from(value: Latency) -> Self {
        value.0
    }
}

/// What the simulator does to charges. The default injects nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Delay before every charge answer, replays included.
    pub(crate) latency_ms: Latency,
    /// Share of new charges recorded as declined.
    pub(crate) decline_rate: Rate,
    /// Share of new charges answered `500` without recording anything.
    pub(crate) error_rate: Rate,
    /// Answer every new charge `503`.
    pub(crate) outage: bool,
}

/// A partial update of [`Faults`]: absent fields keep their value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultsPatch {
    /// New latency, if given.
    pub(crate) latency_ms: Option<Latency>,
    /// New decline rate, if given.
    pub(crate) decline_rate: Option<Rate>,
    /// New error rate, if given.
    pub(crate) error_rate: Option<Rate>,
    /// New outage switch, if given.
    pub(crate) outage: Option<bool>,
}

impl Faults {
    /// These faults with `patch` applied.
    pub(crate) fn merge(self, patch: FaultsPatch) -> Self {
        Self {
            latency_ms: patch.latency_ms.unwrap_or(self.latency_ms),
            decline_rate: patch.decline_rate.unwrap_or(self.decline_rate),
            error_rate: patch.error_rate.unwrap_or(self.error_rate),
            outage: patch.outage.unwrap_or(self.outage),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_rate_must_be_between_zero_and_one() {
        assert!(Rate::parse(0.0).is_ok());
        assert!(Rate::parse(1.0).is_ok());
        assert_eq!(Rate::parse(1.01), Err(FaultError::Rate(1.01)));
        assert_eq!(Rate::parse(-0.5), Err(FaultError::Rate(-0.5)));
        assert!(Rate::parse(f64::NAN).is_err());
    }

    #[test]
    fn a_rate_of_zero_never_hits_and_a_rate_of_one_always_hits() {
        for roll in [0.0, 0.5, 0.999_999] {
            assert!(!Rate(0.0).hit(roll));
            assert!(Rate(1.0).hit(roll));
        }
    }

    #[test]
    fn a_partial_patch_keeps_the_fields_it_does_not_name() {
        let faults = Faults { latency_ms: Latency::from_millis(5).unwrap(), ..Faults::default() };
        let patch: FaultsPatch = serde_json::from_str(r#"{"outage": true}"#).unwrap();

        let merged = faults.merge(patch);

        assert_eq!(merged, Faults { outage: true, ..faults });
    }

    #[test]
    fn faults_serialize_to_the_documented_shape() {
        let json = serde_json::to_value(Faults::default()).unwrap();

        assert_eq!(
            json,
            serde_json::json!({"latency_ms": 0, "decline_rate": 0.0, "error_rate": 0.0, "outage": false})
        );
    }

    #[test]
    fn a_patch_with_a_rate_out_of_range_does_not_parse() {
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"error_rate": 1.5}"#).is_err());
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"latency_ms": 600001}"#).is_err());
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"surprise": 1}"#).is_err());
    }
}
