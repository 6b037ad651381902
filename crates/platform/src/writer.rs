//! Group commit: many units of work, one transaction, one commit (one fsync).
//!
//! Every unit of work that writes (a `POST /orders`, an event handler's inbox row, state change
//! and outbox rows, the outbox relay's mark-as-sent) is sent to ONE writer task per database. The
//! writer takes whatever has queued up while it was busy — no artificial delay: at low load a
//! batch is one unit, under load it is many — and runs the batch in one transaction, each unit
//! inside its own `SAVEPOINT` so that a unit that fails is rolled back alone and cannot poison
//! the others. Then it commits once and only then answers every unit: no caller learns of a
//! success (no `202`, no ack) before its work is durable. If the commit fails, every unit of the
//! batch gets [`WriteError::Aborted`] and nothing of the batch is visible.
//!
//! What a unit must never do: acquire another connection from the pool (on SQLite the writer
//! holds the only one — that would deadlock), wait on the network, or run long: the whole batch
//! waits for it. Reads that need no transaction stay on the pool.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Most units in one transaction.
pub const MAX_BATCH: usize = 256;
/// Units that may wait for the writer; senders wait beyond that (back-pressure).
pub const QUEUE: usize = 4096;

/// Why a unit of work did not commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The unit itself failed; its work was rolled back (its savepoint), the rest of the batch
    /// was not affected.
    #[error(transparent)]
    Unit(E),
    /// The batch's transaction could not be started or committed, the unit panicked, or the
    /// writer is gone: nothing of the unit was committed (the writer logged the cause).
    #[error("the write was not committed (the batch's transaction failed)")]
    Aborted,
}

impl From<WriteError<orderflow_messaging::HandlerError>> for orderflow_messaging::HandlerError {
    /// A handler's own error stays what it was; a batch that did not commit is transient (the
    /// event is redelivered and its inbox row, not committed, lets it through again).
    fn from(e: WriteError<orderflow_messaging::HandlerError>) -> Self {
        match e {
            WriteError::Unit(e) => e,
            aborted @ WriteError::Aborted => {
                orderflow_messaging::HandlerError::transient(aborted.to_string())
            }
        }
    }
}

/// What a finished unit hands back to the writer: whether to keep its work, and how to answer
/// its caller once the batch's fate is known.
struct Done {
    keep: bool,
    answer: Box<dyn FnOnce(bool) + Send>,
}

type RunFn = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Done> + Send>;

struct Unit {
    run: RunFn,
    /// The caller's span, so that the unit's log lines keep their correlation and order ids.
    span: tracing::Span,
}

/// The handle to a database's writer task (started on first use); cheap to clone.
#[derive(Clone, Default)]
pub struct Writer {
    queue: Arc<OnceLock<mpsc::Sender<Unit>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("queued", &self.queued()).finish()
    }
}

impl Writer {
    /// Runs `unit` in the next group-committed transaction on `pool`; returns its result once
    /// that transaction committed (or the unit's error once its savepoint was rolled back).
    pub async fn write<T, E, F>(&self, pool: &AnyPool, unit: F) -> Result<T, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, WriteError<E>>>();
        let run: RunFn = Box::new(move |conn| {
            Box::pin(async move {
                let result = unit(conn).await;
                let keep = result.is_ok();
                let answer = Box::new(move |committed: bool| {
                    let answer = match result {
                        Ok(v) if committed => Ok(v),
                        Ok(_) => Err(WriteError::Aborted),
                        Err(e) => Err(WriteError::Unit(e)),
                    };
                    // The caller may have given up (timeout); its work stays committed.
                    let _ = reply.send(answer);
                });
                Done { keep, answer }
            })
        });
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run_writer(pool.clone(), rx));
            tx
        });
        let unit = Unit { run, span: tracing::Span::current() };
        if queue.send(unit).await.is_err() {
            return Err(WriteError::Aborted);
        }
        // A dropped reply means the unit panicked or its batch never ran.
        answer.await.unwrap_or(Err(WriteError::Aborted))
    }

    /// Units waiting for the writer (not counting the batch it is running).
    pub fn queued(&self) -> usize {
        self.queue.get().map_or(0, |q| q.max_capacity() - q.capacity())
    }
}

async fn run_writer(pool: AnyPool, mut queue: mpsc::Receiver<Unit>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(unit) => batch.push(unit),
                Err(_) => break,
            }
        }
        run_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

async fn run_batch(pool: &AnyPool, units: Vec<Unit>) {
    let size = units.len();
    tracing::trace!(units = size, "group commit");
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            // Dropping the units answers every caller with `Aborted`.
            tracing::warn!(error = %e, units = size, "starting a group commit failed");
            return;
        }
    };
    // PostgreSQL: every instance of a service has a writer on the same schema, and two batches
    // lock rows (a hot product, the outbox rows both relays just published) in whatever order
    // their units came — opposite orders deadlock, PostgreSQL aborts a batch, its units are
    // retried, and under load the instances livelock (seen in `orderflow verify` with two
    // inventory instances). One transaction-scoped advisory lock per schema makes the batches of
    // all instances take turns, as SQLite's single writer does; uncontended with one instance.
    if tx.backend_name().eq_ignore_ascii_case("postgresql")
        && let Err(e) = exec(
            &mut tx,
            "SELECT pg_advisory_xact_lock(hashtext('orderflow-writer'), hashtext(current_schema()))",
        )
        .await
    {
        tracing::warn!(error = %e, units = size, "taking the writer lock failed");
        let _ = tx.rollback().await;
        return;
    }
    // A lone unit needs no savepoint: if it fails, the whole transaction is rolled back.
    let savepoints = size > 1;
    let mut answers = Vec::with_capacity(size);
    let mut kept = 0usize;
    let mut broken: Option<sqlx::Error> = None;
    for unit in units {
        if broken.is_some() {
            break;
        }
        if savepoints && let Err(e) = exec(&mut tx, "SAVEPOINT orderflow_unit").await {
            broken = Some(e);
            break;
        }
        let Unit { run, span } = unit;
        let done = AssertUnwindSafe(run(&mut tx).instrument(span)).catch_unwind().await;
        let keep = match &done {
            Ok(d) => d.keep,
            Err(_) => {
                tracing::error!("a unit of work panicked; rolling it back");
                false
            }
        };
        if keep {
            kept += 1;
            if savepoints && let Err(e) = exec(&mut tx, "RELEASE SAVEPOINT orderflow_unit").await {
                broken = Some(e);
            }
        } else if savepoints {
            let undone = match exec(&mut tx, "ROLLBACK TO SAVEPOINT orderflow_unit").await {
                Ok(()) => exec(&mut tx, "RELEASE SAVEPOINT orderflow_unit").await,
                Err(e) => Err(e),
            };
            if let Err(e) = undone {
                broken = Some(e);
            }
        }
        if let Ok(d) = done {
            answers.push(d.answer);
        }
    }
    let committed = match broken {
        Some(e) => {
            tracing::warn!(error = %e, units = size, "a group commit failed; rolling the batch back");
            let _ = tx.rollback().await;
            false
        }
        None if kept == 0 => {
            let _ = tx.rollback().await;
            true
        }
        None => match tx.commit().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, units = size, "committing a group commit failed");
                false
            }
        },
    };
    // Units that failed are answered with their own error whatever became of the batch.
    for answer in answers {
        answer(committed);
    }
}

async fn exec(conn: &mut AnyConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(|_| ())
}
