//! The simulator's shared state: the faults in force (in memory: an operator's switch), the
//! fault dice, and the durable ledger ([`crate::storage`]). Locks are std mutexes held only to
//! copy or draw, never across an `.await`.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::Context as _;
use orderflow_platform::http::AdminGuard;
use tokio_util::sync::CancellationToken;

use crate::configuration::Config;
use crate::domain::{Charge, ChargeOutcome, ChargeRequest, Faults, FaultsPatch, IdempotencyKey, Rolls};
use crate::problem::ApiError;
use crate::storage::Ledger;

/// Handle to the simulator's state; clones share it.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    faults: RwLock<Faults>,
    rng: Mutex<fastrand::Rng>,
    ledger: Ledger,
    shutdown: CancellationToken,
    admin: AdminGuard,
}

impl AppState {
    /// What the admin routes check.
    pub(crate) fn admin(&self) -> &AdminGuard {
        &self.inner.admin
    }

    /// The configured initial faults and seed, and the ledger in `config.data_dir` (opened, or
    /// created). When `shutdown` is cancelled, readiness turns 503 and injected latency is cut
    /// short so that draining stays bounded.
    pub async fn open(config: &Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let rng = config.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        let admin = AdminGuard::from_setting(config.admin_token.as_ref()).context("invalid admin_token")?;
        if !admin.is_open_to_admins() {
            tracing::warn!(
                "no admin token is configured (ORDERFLOW_ADMIN_TOKEN or --admin-token): /admin/* answers 401"
            );
        }
        let ledger = Ledger::open(&config.data_dir, config.idempotency_key_ttl()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                faults: RwLock::new(config.faults),
                rng: Mutex::new(rng),
                ledger,
                shutdown,
                admin,
            }),
        })
    }

    /// The durable ledger.
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The faults in force.
    pub(crate) fn faults(&self) -> Faults {
        *self.inner.faults.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a partial update and returns the faults now in force.
    pub(crate) fn update_faults(&self, patch: FaultsPatch) -> Faults {
        let mut faults = self.inner.faults.write().unwrap_or_else(PoisonError::into_inner);
        *faults = faults.merge(patch);
        *faults
    }

    /// Decides a charge request (sent in the trace `traceparent`, when known) against the ledger
    /// and the faults in force.
    pub(crate) async fn charge(
        &self,
        key: IdempotencyKey,
        request: ChargeRequest,
        traceparent: Option<String>,
    ) -> Result<ChargeOutcome, ApiError> {
        let faults = self.faults();
        // No code path panics while holding the lock; a poisoned generator still draws.
        let rolls = Rolls::draw(&mut self.inner.rng.lock().unwrap_or_else(PoisonError::into_inner));
        self.inner.ledger.charge(key, request, traceparent, faults, rolls).await.map_err(ApiError::storage)
    }

    /// Charges for one order, or all of them, oldest first.
    pub async fn charges(&self, order_id: Option<&str>) -> Result<Vec<Charge>, ApiError> {
        self.inner.ledger.charges(order_id.map(str::to_owned)).await.map_err(ApiError::storage)
    }

    /// Sleeps for the injected latency, or until shutdown starts.
    pub(crate) async fn inject_latency(&self) {
        let latency = self.faults().latency_ms.duration();
        if latency.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = self.inner.shutdown.cancelled() => {}
        }
    }

    /// Whether shutdown has started.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }
}
