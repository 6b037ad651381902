//! What a load run does, parsed at the edge: where it sends orders, on what schedule, for how
//! long, and what the orders look like. Invalid values (a share of 1.5, a rate of 0, an empty
//! product list) are rejected here, so the driver never sees them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// Why a load configuration is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadConfigError {
    /// `--rate` is not a positive, finite number.
    #[error("the rate must be a positive number of orders per second, not {0:?}")]
    Rate(String),
    /// `--clients` is zero.
    #[error("at least one client is needed")]
    Clients,
    /// A share is not within 0..=1.
    #[error("a share must be between 0 and 1, not {0:?}")]
    Share(String),
    /// `--products` is empty or malformed.
    #[error("invalid product list {0:?}: use sku-001..sku-040 or a comma-separated list")]
    Products(String),
    /// `--quantity` is not `N` or `A..B` within 1..=1,000,000.
    #[error("invalid quantity {0:?}: use N or A..B with 1 <= A <= B <= 1000000")]
    Quantity(String),
    /// A duration is not `30s`, `500ms`, `2m` or a number of seconds.
    #[error("invalid duration {0:?}: use 500ms, 30s, 2m or a number of seconds")]
    Duration(String),
    /// `--duration 0` or `--count 0`.
    #[error("the run must send at least one order")]
    Empty,
    /// `--max-inflight 0`.
    #[error("--max-inflight must be at least 1")]
    MaxInflight,
    /// `--max-error-rate` outside 0..=1.
    #[error("--max-error-rate must be between 0 and 1")]
    MaxErrorRate,
}

/// A fraction of orders, 0..=1.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Share(f64);

impl Share {
    /// Parses a fraction in 0..=1.
    pub fn parse(value: f64) -> Result<Self, LoadConfigError> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(LoadConfigError::Share(value.to_string()))
        }
    }

    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Draws whether this order is in the share.
    pub(crate) fn pick(self) -> bool {
        self.0 > 0.0 && fastrand::f64() < self.0
    }
}

impl FromStr for Share {
    type Err = LoadConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: f64 = s.trim().parse().map_err(|_| LoadConfigError::Share(s.to_owned()))?;
        Self::parse(v)
    }
}

/// Products the orders pick from, uniformly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProductMix(Vec<String>);

impl ProductMix {
    /// `sku-001..sku-040` (a numeric range with a common prefix and zero padding) or
    /// `sku-001,sku-007,…`.
    pub fn parse(spec: &str) -> Result<Self, LoadConfigError> {
        let err = || LoadConfigError::Products(spec.to_owned());
        let spec = spec.trim();
        let ids: Vec<String> = if let Some((from, to)) = spec.split_once("..") {
            let (prefix_a, a, width) = split_number(from).ok_or_else(err)?;
            let (prefix_b, b, _) = split_number(to).ok_or_else(err)?;
            if prefix_a != prefix_b || a > b || b - a >= 100_000 {
                return Err(err());
            }
            (a..=b).map(|n| format!("{prefix_a}{n:0width$}")).collect()
        } else {
            spec.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        if ids.is_empty() || ids.iter().any(|id| id.len() > 64) {
            return Err(err());
        }
        Ok(Self(ids))
    }

    /// The product ids.
    pub fn ids(&self) -> &[String] {
        &self.0
    }

    pub(crate) fn pick(&self) -> &str {
        &self.0[fastrand::usize(..self.0.len())]
    }
}

impl Default for ProductMix {
    /// The demo catalog that `orderflow up` seeds.
    fn default() -> Self {
        Self((1..=40).map(|n| format!("sku-{n:03}")).collect())
    }
}

impl FromStr for ProductMix {
    type Err = LoadConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `sku-007` → (`sku-`, 7, 3).
fn split_number(s: &str) -> Option<(&str, u64, usize)> {
    let s = s.trim();
    let digits = s.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (prefix, number) = s.split_at(s.len() - digits);
    Some((prefix, number.parse().ok()?, digits))
}

/// Quantity of the one line of each order: fixed or uniform in a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct QuantityRange {
    /// Smallest quantity.
    pub min: u32,
    /// Largest quantity.
    pub max: u32,
}

impl QuantityRange {
    /// `N` or `A..B`, within 1..=1,000,000 (the API's limits).
    pub fn parse(spec: &str) -> Result<Self, LoadConfigError> {
        let err = || LoadConfigError::Quantity(spec.to_owned());
        let num = |s: &str| s.trim().parse::<u32>().map_err(|_| err());
        let (min, max) = match spec.split_once("..") {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(spec)?, num(spec)?),
        };
        if min == 0 || min > max || max > 1_000_000 {
            return Err(err());
        }
        Ok(Self { min, max })
    }

    pub(crate) fn pick(self) -> u32 {
        fastrand::u32(self.min..=self.max)
    }
}

impl Default for QuantityRange {
    fn default() -> Self {
        Self { min: 1, max: 1 }
    }
}

impl FromStr for QuantityRange {
    type Err = LoadConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, LoadConfigError> {
    let err = || LoadConfigError::Duration(s.to_owned());
    let t = s.trim();
    let (number, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number.parse().map_err(|_| err())?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// Where the orders go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// Base URL of the order API (`http://127.0.0.1:8080`).
    pub order_url: String,
    /// Base URL of the inventory API (for `--restock`).
    pub inventory_url: String,
    /// The NATS server the system publishes its terminal events on.
    pub nats_url: String,
    /// Credentials or nkey seed file to subscribe with (the admin identity's, when the server
    /// requires one: `orderflow up` prints where it is).
    pub nats_creds: Option<std::path::PathBuf>,
    /// TLS to NATS (`NATS_CA`), when the server uses it.
    #[serde(skip)]
    pub nats_tls: orderflow_messaging::NatsTls,
}

/// Which system the run loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A system that is already running.
    Running(Endpoints),
    /// A throw-away system started for the run: its own nats-server, a temporary data
    /// directory, SQLite files, or fresh PostgreSQL schemas (dropped afterwards) when
    /// `database_url` is `postgres://…`.
    Spawn {
        /// `postgres://…`, or `None` for SQLite.
        database_url: Option<String>,
    },
}

/// When orders are sent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Open loop: orders are scheduled at a fixed rate whatever the system does, and latency is
    /// measured from each order's scheduled time, so a stall shows up as latency instead of
    /// silently lowering the rate (no coordinated omission).
    Open {
        /// Orders per second.
        rate: f64,
    },
    /// Closed loop: `clients` loops, each sending its next order when the previous one is
    /// answered.
    Closed {
        /// Concurrent clients.
        clients: usize,
    },
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { rate } => write!(f, "open loop at {rate} orders/s"),
            Self::Closed { clients } => write!(f, "closed loop with {clients} clients"),
        }
    }
}

/// How long a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// For this long.
    Elapsed(Duration),
    /// This many orders (not counting duplicate-key re-sends).
    Count(u64),
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elapsed(d) => write!(f, "for {:.1} s", d.as_secs_f64()),
            Self::Count(n) => write!(f, "{n} orders"),
        }
    }
}

/// What the orders look like.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderMix {
    /// Products, picked uniformly (one line per order).
    pub products: ProductMix,
    /// Quantity of the line.
    pub quantity: QuantityRange,
    /// Share of express orders.
    pub express_share: Share,
    /// Share of orders sent twice with the same `Idempotency-Key`; the second answer must name
    /// the same order.
    pub duplicate_key_share: Share,
}

impl Default for OrderMix {
    fn default() -> Self {
        Self {
            products: ProductMix::default(),
            quantity: QuantityRange::default(),
            express_share: Share(0.1),
            duplicate_key_share: Share(0.05),
        }
    }
}

/// A whole load run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Which system.
    pub target: Target,
    /// Open or closed loop.
    pub schedule: Schedule,
    /// How long.
    pub until: Until,
    /// What the orders look like.
    pub mix: OrderMix,
    /// Requests in flight at most; an open loop that reaches it waits (and the wait counts as
    /// latency, measured from the scheduled time).
    pub max_inflight: usize,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// After sending, how long to wait for every accepted order to reach a terminal state.
    pub drain_timeout: Duration,
    /// Run the invariant checker afterwards (spawned systems only: it reads their databases).
    pub check_invariants: bool,
    /// Errors (non-202 answers, transport failures) above this share of requests fail the run.
    pub max_error_rate: f64,
    /// Before the run, set every listed product that exists to this many available units (via
    /// `PUT /inventory/{id}`), so that stock does not run out and the saga's full path
    /// (reserve, charge, confirm) is measured.
    pub restock: Option<i64>,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Return the ids of the accepted orders in [`LoadReport::accepted_ids`](super::LoadReport)
    /// (for a caller that checks the invariants itself, like `orderflow verify`).
    pub keep_accepted_ids: bool,
    /// The analytics service of a running system (`--analytics-url`): its summary's counts over
    /// the run are checked against the generator's. With `--spawn`, the spawned one's.
    pub analytics_url: Option<String>,
    /// The running system's admin token, for `restock`.
    pub admin_token: Option<orderflow_platform::http::Secret>,
    /// The run's counters, shared with the caller, who may read them while the load runs
    /// (`orderflow verify` counts the client errors during each fault).
    pub stats: std::sync::Arc<super::Stats>,
}

impl LoadConfig {
    /// Defaults for everything but the target, schedule and length: the demo catalog, one unit
    /// per order, 10 % express, 5 % duplicate keys, 1024 in flight, 30 s request and drain
    /// timeouts, invariants checked when the run spawns the system, 1 % tolerated errors.
    pub fn new(target: Target, schedule: Schedule, until: Until) -> Self {
        let spawned = matches!(target, Target::Spawn { .. });
        Self {
            target,
            schedule,
            until,
            mix: OrderMix::default(),
            max_inflight: 1024,
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            check_invariants: spawned,
            max_error_rate: 0.01,
            restock: None,
            progress: false,
            keep_accepted_ids: false,
            analytics_url: None,
            admin_token: None,
            stats: Default::default(),
        }
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), LoadConfigError> {
        match self.schedule {
            Schedule::Open { rate } if !(rate.is_finite() && rate > 0.0) => {
                return Err(LoadConfigError::Rate(rate.to_string()));
            }
            Schedule::Closed { clients: 0 } => return Err(LoadConfigError::Clients),
            _ => {}
        }
        match self.until {
            Until::Elapsed(d) if d.is_zero() => return Err(LoadConfigError::Empty),
            Until::Count(0) => return Err(LoadConfigError::Empty),
            _ => {}
        }
        if self.max_inflight == 0 {
            return Err(LoadConfigError::MaxInflight);
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            return Err(LoadConfigError::MaxErrorRate);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_product_range_keeps_prefix_and_padding() {
        let mix = ProductMix::parse("sku-001..sku-040").unwrap();
        assert_eq!(mix.ids().len(), 40);
        assert_eq!(mix.ids()[0], "sku-001");
        assert_eq!(mix.ids()[39], "sku-040");
        assert_eq!(mix, ProductMix::default());
    }

    #[test]
    fn a_product_list_is_split_on_commas() {
        let mix = ProductMix::parse("sku-001, sku-007,,x").unwrap();
        assert_eq!(mix.ids(), ["sku-001", "sku-007", "x"]);
    }

    #[test]
    fn malformed_product_specs_are_rejected() {
        for bad in ["", "sku-010..sku-001", "a-1..b-2", "sku..sku-2", " , "] {
            assert!(ProductMix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_are_fixed_or_ranges_within_the_api_limits() {
        assert_eq!(QuantityRange::parse("3").unwrap(), QuantityRange { min: 3, max: 3 });
        assert_eq!(QuantityRange::parse("1..5").unwrap(), QuantityRange { min: 1, max: 5 });
        for bad in ["0", "5..1", "1..2000000", "x"] {
            assert!(QuantityRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn shares_outside_zero_to_one_are_rejected() {
        assert_eq!("0.25".parse::<Share>().unwrap().get(), 0.25);
        assert!("1.5".parse::<Share>().is_err());
        assert!("-0.1".parse::<Share>().is_err());
    }

    #[test]
    fn validation_rejects_a_zero_rate_and_an_empty_run() {
        let spawn = Target::Spawn { database_url: None };
        let ok = LoadConfig::new(spawn.clone(), Schedule::Open { rate: 10.0 }, Until::Count(1));
        assert_eq!(ok.validate(), Ok(()));
        let zero_rate = LoadConfig::new(spawn.clone(), Schedule::Open { rate: 0.0 }, Until::Count(1));
        assert!(matches!(zero_rate.validate(), Err(LoadConfigError::Rate(_))));
        let empty = LoadConfig::new(spawn, Schedule::Closed { clients: 2 }, Until::Count(0));
        assert_eq!(empty.validate(), Err(LoadConfigError::Empty));
    }
}
