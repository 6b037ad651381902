//! The payment's own types: where a payment ended. No I/O.

/// How a payment was decided (the `status` column; the event says the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Charged: `payments.completed.v1`.
    Completed,
    /// Declined, or not charged within `max_wait`: `payments.failed.v1`.
    Failed,
}

impl PaymentStatus {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The status stored as `s`, if it is one.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Completed, Self::Failed].into_iter().find(|v| v.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_nothing_else_parses() {
        for s in [PaymentStatus::Completed, PaymentStatus::Failed] {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(PaymentStatus::parse("pending"), None);
    }
}
