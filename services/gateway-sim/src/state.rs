//! The simulator's shared, in-memory state: current faults and the ledger. Locks are std
//! mutexes held only for copying or a ledger decision, never across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::configuration::Config;
use crate::domain::{Charge, ChargeOutcome, ChargeRequest, Faults, FaultsPatch, IdempotencyKey, Ledger};

/// Handle to the simulator's state; clones share it.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    faults: RwLock<Faults>,
    ledger: Mutex<Ledger>,
    shutdown: CancellationToken,
}

impl AppState {
    /// Fresh state with the configured initial faults and seed. When `shutdown` is cancelled,
    /// readiness turns 503 and injected latency is cut short so that draining stays bounded.
    pub fn new(config: &Config, shutdown: CancellationToken) -> Self {
        let rng = config.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            inner: Arc::new(Inner {
                faults: RwLock::new(config.faults),
                ledger: Mutex::new(Ledger::new(rng)),
                shutdown,
            }),
        }
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        *self.inner.faults.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a partial update and returns the faults now in force.
    pub fn update_faults(&self, patch: FaultsPatch) -> Faults {
        let mut faults = self.inner.faults.write().unwrap_or_else(PoisonError::into_inner);
        *faults = faults.merge(patch);
        *faults
    }

    /// Decides a charge request against the ledger and the faults in force.
    pub fn charge(&self, key: IdempotencyKey, request: ChargeRequest) -> ChargeOutcome {
        let faults = self.faults();
        self.ledger().charge(key, request, &faults, OffsetDateTime::now_utc())
    }

    /// Charges for one order, or all of them, oldest first.
    pub fn charges(&self, order_id: Option<&str>) -> Vec<Charge> {
        self.ledger().charges(order_id)
    }

    /// `(succeeded, declined)` charge counts.
    pub fn count_by_status(&self) -> (u64, u64) {
        self.ledger().count_by_status()
    }

    /// Sleeps for the injected latency, or until shutdown starts.
    pub async fn inject_latency(&self) {
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
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // No code path panics while holding the lock; if one ever did, the ledger is still a
        // consistent list of charges.
        self.inner.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
