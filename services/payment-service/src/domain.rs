//! The payment's own types: where a payment ended. No I/O.

/// How a payment was decided (the `status` column; the event says the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PaymentStatus {
    /// Charged: `payments.completed.v1`.
    Completed,
    /// Declined, or not charged within `max_wait`: `payments.failed.v1`.
    Failed,
}

impl PaymentStatus {
    /// The stored name.
    #[must_use]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}
