//! Start-up: a service waits for PostgreSQL and NATS instead of exiting, and its port says what
//! it waits for.
//!
//! A container started before its database or broker is reachable must not exit: the
//! orchestrator would restart it in a loop, and nothing would say why except the last log lines.
//! So the kernel binds the service's port first and, while it opens and migrates the database,
//! connects NATS, provisions JetStream and runs the service's start-up work — from its first
//! failed attempt, or once a second has gone by — serves a small router on that port
//! ([`serve_while`]): `/health/live` 200 (the process is fine: do not restart
//! it), `/health/ready` and every other path 503 problem+json whose `detail` says what it is
//! waiting for and the last error (`waiting for PostgreSQL at db:5432/orderflow (attempt 7):
//! …`). The database is retried with backoff while its errors are transient
//! ([`DbError::is_transient`]); NATS is waited for without a time limit. Permanent errors (a bad
//! URL, refused credentials, TLS that does not verify, a migration whose SQL fails) still fail at
//! once.
//!
//! The waiting happens inside the future the kernel awaits: dropping it (a shutdown signal during
//! start-up) closes every connection it opened, and PostgreSQL or SQLite roll back a migration
//! that was running, so a stop at any moment leaves nothing half-written.
//!
//! It never serves the service's own routes: they exist only once everything is connected.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use orderflow_resilience::Backoff;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::http::{Problem, ProblemType};
use crate::{Db, DbError, Migration};

/// How long a start may take before the port answers for it when nothing has failed yet.
const ANSWER_AFTER: Duration = Duration::from_secs(1);

/// What a starting service is doing, as its readiness answer tells it.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    service: &'static str,
    doing: Arc<Mutex<String>>,
    /// Whether an attempt has failed and is being retried.
    waiting: Arc<watch::Sender<bool>>,
}

impl Progress {
    /// A service that has just started.
    pub(crate) fn new(service: &'static str) -> Self {
        let doing = Arc::new(Mutex::new("starting".to_owned()));
        Self { service, doing, waiting: Arc::new(watch::channel(false).0) }
    }

    /// From now on readiness says the service is `doing` this (`migrating …`).
    pub(crate) fn set(&self, doing: impl Into<String>) {
        *self.doing.lock().unwrap_or_else(PoisonError::into_inner) = doing.into();
    }

    /// An attempt failed and will be retried: [`set`](Self::set), and the port answers from now
    /// on (see [`serve_while`]).
    pub(crate) fn waiting(&self, doing: impl Into<String>) {
        self.set(doing);
        self.waiting.send_replace(true);
    }

    /// Resolves once an attempt has failed.
    async fn has_waited(&self) {
        let mut waiting = self.waiting.subscribe();
        // The sender lives in `self`, so this ends only with a failed attempt.
        let _ = waiting.wait_for(|w| *w).await;
    }

    /// `order-service is starting: waiting for …`.
    fn detail(&self) -> String {
        let doing = self.doing.lock().unwrap_or_else(PoisonError::into_inner);
        format!("{} is starting: {doing}", self.service)
    }

    /// `/health/live` 200; `/health/ready` and everything else 503 problem+json.
    fn router(&self) -> Router {
        Router::new()
            .route("/health/live", get(crate::http::health::live))
            .route("/health/ready", get(not_ready))
            .fallback(not_ready)
            .with_state(self.clone())
            .layer(axum::middleware::from_fn_with_state(self.service, crate::http::correlation_layer))
    }
}

async fn not_ready(State(progress): State<Progress>) -> Response {
    Problem::new(ProblemType::Unavailable, progress.detail()).retry_after(1)
}

/// Runs `work` while `listener` answers as a starting service ([`Progress`]); returns what it
/// returned. The listener stays open for the service's own server: connections that arrive
/// between the two wait in its backlog.
///
/// The port answers only once the service is waiting: an attempt failed, or [`ANSWER_AFTER`]
/// went by. A start that takes the usual fraction of a second leaves the port to the service's
/// own server, as before: a request that arrives meanwhile (from a load balancer that sends to a
/// restarted instance before it checks it) waits in the backlog and is served, not answered 503.
pub(crate) async fn serve_while<T>(
    listener: &TcpListener,
    progress: &Progress,
    work: impl Future<Output = T>,
) -> T {
    let stop = CancellationToken::new();
    let server = async {
        tokio::select! {
            () = progress.has_waited() => {}
            () = tokio::time::sleep(ANSWER_AFTER) => {}
            () = stop.cancelled() => return None,
        }
        let router = progress.router();
        Some(crate::http::accept_until(listener, router, &stop, crate::http::HEADER_READ_TIMEOUT).await)
    };
    let work = async {
        let out = work.await;
        stop.cancel();
        out
    };
    let (open, out) = tokio::join!(server, work);
    // Probes in flight get their answer; a client that never finishes its request does not hold
    // the service back (its connection ends on its own, at the header timeout).
    if let Some(open) = open
        && tokio::time::timeout(Duration::from_secs(1), open.shutdown()).await.is_err()
    {
        tracing::debug!(service = progress.service, "start-up probe connections still open; not waiting");
    }
    out
}

/// Opens and migrates the database at `url`, trying again with backoff (100 ms doubling to 5 s,
/// jittered, without end) while the errors are transient; a permanent error is returned at once.
/// Each failure is logged at WARN with the delay before the next attempt, and shown by readiness.
pub(crate) async fn open_database(
    url: &str,
    schema: &str,
    migrations: &[Migration],
    progress: &Progress,
) -> Result<Db, DbError> {
    let target = crate::db::describe(url);
    let mut backoff = Backoff::default();
    let mut attempt = 0_usize;
    progress.set(format!("connecting to {target}"));
    loop {
        attempt += 1;
        let error = match open_and_migrate(url, schema, migrations, &target, progress).await {
            Ok(db) => return Ok(db),
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        let Some(delay) = backoff.next_delay() else { return Err(error) };
        tracing::warn!(
            service = progress.service,
            database = %target,
            attempt,
            error = %error,
            retry_in = ?delay,
            "database not reachable yet"
        );
        progress.waiting(format!("waiting for {target} (attempt {attempt}): {}", cause(&error)));
        tokio::time::sleep(delay).await;
    }
}

async fn open_and_migrate(
    url: &str,
    schema: &str,
    migrations: &[Migration],
    target: &str,
    progress: &Progress,
) -> Result<Db, DbError> {
    let db = Db::open(url, schema).await?;
    progress.set(format!("migrating {target}"));
    if let Err(e) = db.migrate(schema, migrations).await {
        // Let go of the connections, and of PostgreSQL's migration lock with them, before the
        // next attempt; bounded, since a connection may hang on a server that went away.
        let _ = tokio::time::timeout(Duration::from_secs(5), db.close()).await;
        return Err(e);
    }
    Ok(db)
}

/// The driver's error without the URL that `describe` already names.
fn cause(e: &DbError) -> String {
    match e {
        DbError::Connect { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}
