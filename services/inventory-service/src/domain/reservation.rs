//! Reservations: how an order's items become priced reserved lines, and which transitions a
//! payment outcome allows.
//!
//! An order may name a product on several lines. Stock is moved once per product (lines merged,
//! sorted by product id so that concurrent transactions on PostgreSQL lock rows in the same order
//! and cannot deadlock). The reservation's lines are the merged lines with the unit price at
//! reservation time; a merged quantity above [`Quantity::MAX`] is split into several lines so
//! every line stays a valid [`Quantity`] (this never produces more lines than the order had).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use orderflow_events::{
    Currency, InventoryReleased, InventoryReserved, OrderId, OrderItem, ProductId, Quantity, ReservationId,
    ReservedLine,
};
use serde::{Deserialize, Serialize};

/// Where a reservation is in its life: `reserved` → `committed` (payment completed) or
/// `released` (payment failed). Both ends are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Stock is held for the order while its payment is pending.
    Reserved,
    /// The payment completed: the stock left for good.
    Committed,
    /// The payment failed: the stock went back to `available`.
    Released,
}

impl ReservationStatus {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Committed => "committed",
            Self::Released => "released",
        }
    }

    /// What `payments.completed` does to a reservation in this status.
    ///
    /// # Errors
    /// [`TransitionError`] for a released reservation: a payment completed after the stock was
    /// given back is business-impossible and needs a human.
    pub(crate) fn commit(self) -> Result<Step, TransitionError> {
        match self {
            Self::Reserved => Ok(Step::Apply),
            Self::Committed => Ok(Step::AlreadyDone),
            Self::Released => Err(TransitionError { from: self, to: Self::Committed }),
        }
    }

    /// What `payments.failed` does to a reservation in this status.
    ///
    /// # Errors
    /// [`TransitionError`] for a committed reservation: a payment cannot both complete and fail.
    pub(crate) fn release(self) -> Result<Step, TransitionError> {
        match self {
            Self::Reserved => Ok(Step::Apply),
            Self::Released => Ok(Step::AlreadyDone),
            Self::Committed => Err(TransitionError { from: self, to: Self::Released }),
        }
    }
}

impl fmt::Display for ReservationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status that is none of the known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown reservation status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for ReservationStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Reserved, Self::Committed, Self::Released]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The outcome of asking for a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Move the stock and change the status.
    Apply,
    /// The reservation is already there (a replayed event): nothing to do.
    AlreadyDone,
}

/// A transition the saga can never ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from} reservation cannot become {to}")]
pub(crate) struct TransitionError {
    /// The current status.
    pub(crate) from: ReservationStatus,
    /// The requested one.
    pub(crate) to: ReservationStatus,
}

/// Units of one product to move, after merging lines: always positive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedLine {
    /// The product.
    pub(crate) product_id: ProductId,
    /// Total units over all lines naming it.
    pub(crate) quantity: i64,
}

fn merge(lines: impl IntoIterator<Item = (ProductId, i64)>) -> Vec<PlannedLine> {
    let mut merged: BTreeMap<ProductId, i64> = BTreeMap::new();
    for (product_id, quantity) in lines {
        *merged.entry(product_id).or_default() += quantity;
    }
    merged.into_iter().map(|(product_id, quantity)| PlannedLine { product_id, quantity }).collect()
}

/// The stock moves an order asks for: one per product, sorted by product id.
#[must_use]
pub(crate) fn plan_lines(items: &[OrderItem]) -> Vec<PlannedLine> {
    merge(items.iter().map(|i| (i.product_id.clone(), i64::from(i.quantity.get()))))
}

/// The stock moves that commit or release a reservation: one per product, sorted by product id.
#[must_use]
pub(crate) fn stock_moves(lines: &[ReservedLine]) -> Vec<PlannedLine> {
    merge(lines.iter().map(|l| (l.product_id.clone(), i64::from(l.quantity.get()))))
}

/// A reserved product with the price and currency it had when it was reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PricedLine {
    /// The product.
    pub(crate) product_id: ProductId,
    /// Units reserved (merged over the order's lines).
    pub(crate) quantity: i64,
    /// Unit price in cents at reservation time.
    pub(crate) unit_price_cents: i64,
    /// The price's currency.
    pub(crate) currency: Currency,
}

/// Why reserved lines cannot be priced. Every variant is permanent: the same data gives the same
/// answer on every delivery.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PricingError {
    /// No lines (an order always has at least one).
    #[error("a reservation needs at least one line")]
    Empty,
    /// The products are priced in different currencies; one charge cannot pay for them.
    #[error("the order's products are priced in different currencies: {}", join(.0))]
    MixedCurrencies(Vec<Currency>),
    /// A quantity is not positive.
    #[error("invalid quantity {0}")]
    InvalidQuantity(i64),
    /// The total does not fit in 64 bits (impossible with the value ceilings).
    #[error("the reservation total overflows")]
    Overflow,
}

fn join(currencies: &[Currency]) -> String {
    currencies.iter().map(Currency::as_str).collect::<Vec<_>>().join(", ")
}

/// Lines, total and currency of a priced reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Priced {
    /// One line per product (split when above [`Quantity::MAX`]), sorted by product id.
    pub(crate) lines: Vec<ReservedLine>,
    /// Σ `unit_price_cents × quantity`.
    pub(crate) total_cents: i64,
    /// The one currency of every line.
    pub(crate) currency: Currency,
}

/// Prices reserved lines: one currency for all, `total_cents = Σ unit_price_cents × quantity`.
///
/// # Errors
/// [`PricingError`].
pub(crate) fn price_lines(mut lines: Vec<PricedLine>) -> Result<Priced, PricingError> {
    lines.sort_by(|a, b| a.product_id.cmp(&b.product_id));
    let currency = lines.first().map(|l| l.currency.clone()).ok_or(PricingError::Empty)?;
    let mut currencies: Vec<Currency> = lines.iter().map(|l| l.currency.clone()).collect();
    currencies.sort();
    currencies.dedup();
    if currencies.len() > 1 {
        return Err(PricingError::MixedCurrencies(currencies));
    }
    let max = i64::from(Quantity::MAX);
    let mut out = Vec::with_capacity(lines.len());
    let mut total: i64 = 0;
    for line in lines {
        if line.quantity < 1 {
            return Err(PricingError::InvalidQuantity(line.quantity));
        }
        let cost = line.unit_price_cents.checked_mul(line.quantity).ok_or(PricingError::Overflow)?;
        total = total.checked_add(cost).ok_or(PricingError::Overflow)?;
        let mut left = line.quantity;
        while left > 0 {
            let chunk = left.min(max);
            let quantity = u32::try_from(chunk)
                .ok()
                .and_then(|q| Quantity::parse(q).ok())
                .ok_or(PricingError::InvalidQuantity(chunk))?;
            out.push(ReservedLine {
                product_id: line.product_id.clone(),
                quantity,
                unit_price_cents: line.unit_price_cents,
            });
            left -= chunk;
        }
    }
    Ok(Priced { lines: out, total_cents: total, currency })
}

/// A reservation: the stock held for one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reservation {
    /// The order (one reservation per order).
    pub(crate) order_id: OrderId,
    /// Its own id, sent in `inventory.reserved.v1` and `inventory.released.v1`.
    pub(crate) reservation_id: ReservationId,
    /// Where it is.
    pub(crate) status: ReservationStatus,
    /// The reserved lines with their prices.
    pub(crate) lines: Vec<ReservedLine>,
    /// Amount to charge.
    pub(crate) total_cents: i64,
    /// Currency of the amounts.
    pub(crate) currency: Currency,
    /// Whether the order travels on the express lane.
    pub(crate) express: bool,
}

impl Reservation {
    /// A new reservation in status `reserved`.
    #[must_use]
    pub(crate) fn new(order_id: OrderId, priced: Priced, express: bool) -> Self {
        Self {
            order_id,
            reservation_id: ReservationId::new(),
            status: ReservationStatus::Reserved,
            lines: priced.lines,
            total_cents: priced.total_cents,
            currency: priced.currency,
            express,
        }
    }

    /// The `inventory.reserved.v1` payload announcing it.
    #[must_use]
    pub(crate) fn reserved_event(&self) -> InventoryReserved {
        InventoryReserved {
            order_id: self.order_id,
            reservation_id: self.reservation_id,
            lines: self.lines.clone(),
            total_cents: self.total_cents,
            currency: self.currency.clone(),
        }
    }

    /// The `inventory.released.v1` payload announcing its release.
    #[must_use]
    pub(crate) fn released_event(&self) -> InventoryReleased {
        InventoryReleased { order_id: self.order_id, reservation_id: self.reservation_id }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn pid(s: &str) -> ProductId {
        ProductId::parse(s).unwrap()
    }

    fn item(p: &str, q: u32) -> OrderItem {
        OrderItem { product_id: pid(p), quantity: Quantity::parse(q).unwrap() }
    }

    fn priced(p: &str, quantity: i64, cents: i64, currency: &str) -> PricedLine {
        PricedLine {
            product_id: pid(p),
            quantity,
            unit_price_cents: cents,
            currency: Currency::parse(currency).unwrap(),
        }
    }

    #[test]
    fn plan_merges_duplicate_products_and_sorts_by_product_id() {
        let plan = plan_lines(&[item("sku-b", 2), item("sku-a", 1), item("sku-b", 3)]);
        assert_eq!(
            plan,
            vec![
                PlannedLine { product_id: pid("sku-a"), quantity: 1 },
                PlannedLine { product_id: pid("sku-b"), quantity: 5 },
            ]
        );
    }

    #[test]
    fn merged_quantities_may_exceed_one_order_line() {
        let plan = plan_lines(&[item("sku-a", 1_000_000), item("sku-a", 1_000_000)]);
        assert_eq!(plan[0].quantity, 2_000_000);
    }

    #[test]
    fn total_is_the_sum_of_price_times_quantity() {
        let p = price_lines(vec![priced("b", 3, 250, "USD"), priced("a", 2, 1_000, "USD")]).unwrap();
        assert_eq!(p.total_cents, 2 * 1_000 + 3 * 250);
        assert_eq!(p.currency, Currency::usd());
        let ids: Vec<_> = p.lines.iter().map(|l| l.product_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(p.lines[0].unit_price_cents, 1_000);
    }

    #[test]
    fn lines_above_the_quantity_ceiling_are_split_into_valid_lines() {
        let p = price_lines(vec![priced("a", 2_500_000, 1, "USD")]).unwrap();
        let qs: Vec<_> = p.lines.iter().map(|l| l.quantity.get()).collect();
        assert_eq!(qs, [1_000_000, 1_000_000, 500_000]);
        assert_eq!(p.total_cents, 2_500_000);
    }

    #[test]
    fn mixed_currencies_cannot_be_priced() {
        let err = price_lines(vec![priced("a", 1, 1, "USD"), priced("b", 1, 1, "EUR")]).unwrap_err();
        assert_eq!(
            err,
            PricingError::MixedCurrencies(vec![Currency::parse("EUR").unwrap(), Currency::usd()])
        );
    }

    #[test]
    fn pricing_refuses_empty_and_overflowing_reservations() {
        assert_eq!(price_lines(vec![]), Err(PricingError::Empty));
        assert_eq!(price_lines(vec![priced("a", i64::MAX, 2, "USD")]), Err(PricingError::Overflow));
        assert_eq!(price_lines(vec![priced("a", 0, 2, "USD")]), Err(PricingError::InvalidQuantity(0)));
    }

    #[test]
    fn the_largest_valid_order_cannot_overflow() {
        let lines = (0..100)
            .map(|n| {
                priced(&format!("p{n}"), i64::from(Quantity::MAX), crate::domain::UnitPrice::MAX_CENTS, "USD")
            })
            .collect();
        assert!(price_lines(lines).is_ok());
    }

    #[test]
    fn payment_outcomes_move_a_reserved_reservation_once() {
        use ReservationStatus::*;
        assert_eq!(Reserved.commit(), Ok(Step::Apply));
        assert_eq!(Committed.commit(), Ok(Step::AlreadyDone));
        assert_eq!(Released.commit(), Err(TransitionError { from: Released, to: Committed }));
        assert_eq!(Reserved.release(), Ok(Step::Apply));
        assert_eq!(Released.release(), Ok(Step::AlreadyDone));
        assert_eq!(Committed.release(), Err(TransitionError { from: Committed, to: Released }));
    }

    #[test]
    fn statuses_round_trip_through_their_stored_names() {
        for s in [ReservationStatus::Reserved, ReservationStatus::Committed, ReservationStatus::Released] {
            assert_eq!(s.as_str().parse::<ReservationStatus>(), Ok(s));
        }
        assert!("rejected".parse::<ReservationStatus>().is_err());
    }

    #[test]
    fn stock_moves_merge_split_lines_back_per_product() {
        let p = price_lines(vec![priced("a", 2_500_000, 1, "USD"), priced("b", 1, 1, "USD")]).unwrap();
        let moves = stock_moves(&p.lines);
        assert_eq!(
            moves,
            vec![
                PlannedLine { product_id: pid("a"), quantity: 2_500_000 },
                PlannedLine { product_id: pid("b"), quantity: 1 },
            ]
        );
    }
}
