//! Group commit: many units of work, one transaction, one commit (one fsync), one thread hop.
//!
//! Every unit of work that writes (a `POST /orders`, an event handler's inbox row, state change
//! and outbox rows, the outbox relay's mark-as-sent) is sent to ONE writer per database. The
//! writer takes whatever has queued up while it was busy — no artificial delay: at low load a
//! batch is one unit, under load it is many — and runs the batch in one transaction, each unit
//! inside its own `SAVEPOINT` so that a unit that fails is rolled back alone and cannot poison
//! the others. Then it commits once and only then answers every unit: no caller learns of a
//! success (no `202`, no ack) before its work is durable. If the commit fails, every unit of the
//! batch gets [`WriteError::Aborted`] and nothing of the batch is visible.
//!
//! On SQLite the writer is a dedicated OS thread that owns the connection ([`crate::sql`]): a
//! unit's statements run there synchronously, so a unit costs one hop to the thread and one back,
//! however many statements it runs (sqlx's SQLite driver cost two context switches per
//! statement). On PostgreSQL the writer is a task on the runtime that awaits the server.
//!
//! What a unit must never do: await anything but its [`Tx`] (a timer, a channel, the network:
//! on SQLite it is rolled back with its batch, and every unit of that batch gets
//! [`WriteError::Aborted`]), take another connection, or run long: the whole batch waits for
//! it. Reads go to [`crate::Db::read`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use orderflow_messaging::OutgoingMessage;

use crate::sql::Tx;

/// Where a writer hands the outbox messages of each committed batch: the outbox relay's channel,
/// once a relay has asked for it ([`crate::Db::committed_outbox`]); until then they wait in the
/// outbox table for the relay's sweep.
pub(crate) type CommittedOutbox = Arc<OnceLock<mpsc::UnboundedSender<Vec<OutgoingMessage>>>>;

/// Most units in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Units that may wait for the writer; senders wait beyond that (back-pressure).
pub(crate) const QUEUE: usize = 4096;

/// Why a unit of work did not commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The unit itself failed; its work was rolled back (its savepoint), the rest of the batch
    /// was not affected.
    #[error(transparent)]
    Unit(E),
    /// The batch's transaction could not be started or committed, the unit panicked or waited
    /// on something other than the database, or the writer is gone: nothing of the unit was
    /// committed (the writer logged the cause).
    #[error("the write was not committed (the batch's transaction failed)")]
    Aborted,
}

impl<E: From<crate::sql::SqlError>> WriteError<E> {
    /// The unit's own error, or [`SqlError::Aborted`](crate::sql::SqlError::Aborted) as one.
    pub fn into_unit_error(self) -> E {
        match self {
            Self::Unit(e) => e,
            Self::Aborted => crate::sql::SqlError::Aborted.into(),
        }
    }
}

impl From<crate::sql::SqlError> for orderflow_messaging::HandlerError {
    /// Every database error in a handler is transient: giving up on an event at once would lose
    /// it for good, and the redelivery budget still ends in the DLQ if the error never heals.
    /// One that is not a known transient kind is retried too, but said (WARN).
    fn from(e: crate::sql::SqlError) -> Self {
        if !e.is_transient() {
            tracing::warn!(error = %e, "unexpected database error in a handler; will retry");
        }
        orderflow_messaging::HandlerError::transient(e)
    }
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

type RunFn = Box<dyn for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Done> + Send>;

/// One queued unit of work (or read).
pub(crate) struct Unit {
    run: RunFn,
    /// The caller's span, so that the unit's log lines keep their correlation and order ids.
    span: tracing::Span,
}

/// Wraps `unit` for a writer or reader queue; the receiver gets its result once the batch that
/// ran it committed (or failed).
pub(crate) fn unit<T, E, F>(unit: F) -> (Unit, oneshot::Receiver<Result<T, WriteError<E>>>)
where
    T: Send + 'static,
    E: Send + 'static,
    F: for<'c> FnOnce(&'c mut Tx) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
{
    let (reply, answer) = oneshot::channel::<Result<T, WriteError<E>>>();
    let run: RunFn = Box::new(move |tx| {
        Box::pin(async move {
            let result = unit(tx).await;
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
    (Unit { run, span: tracing::Span::current() }, answer)
}

/// Sends `unit` to `queue` and waits for its answer.
pub(crate) async fn submit<T, E>(
    queue: &mpsc::Sender<Unit>,
    (unit, answer): (Unit, oneshot::Receiver<Result<T, WriteError<E>>>),
) -> Result<T, WriteError<E>> {
    if queue.send(unit).await.is_err() {
        return Err(WriteError::Aborted);
    }
    // A dropped reply means the unit panicked or its batch never ran.
    answer.await.unwrap_or(Err(WriteError::Aborted))
}

/// A batch: `first`, then whatever else is already queued, up to [`MAX_BATCH`].
pub(crate) fn fill(queue: &mut mpsc::Receiver<Unit>, first: Unit) -> Vec<Unit> {
    let mut batch = Vec::with_capacity(16);
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(unit) => batch.push(unit),
            Err(_) => break,
        }
    }
    batch
}

/// Which statements open and close a batch.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// A write transaction. SQLite: `BEGIN IMMEDIATE`, so that the write lock is taken up
    /// front instead of failing an upgrade half-way. PostgreSQL: plus the writer lock.
    Write { postgres: bool },
    /// A read-only snapshot for a batch of reads (no savepoints: a read cannot undo anything).
    Read,
}

/// Runs one batch in one transaction and answers every unit after its fate is known.
pub(crate) async fn run_batch(tx: &mut Tx, units: Vec<Unit>, mode: Mode, committed: &CommittedOutbox) {
    let size = units.len();
    tracing::trace!(units = size, ?mode, "batch");
    let begin = match mode {
        Mode::Write { postgres: false } => "BEGIN IMMEDIATE",
        Mode::Write { postgres: true } | Mode::Read => "BEGIN",
    };
    if let Err(e) = tx.batch(begin).await {
        // Dropping the units answers every caller with `Aborted`.
        tracing::warn!(error = %e, units = size, "starting a batch failed");
        return;
    }
    // PostgreSQL: every instance of a service has a writer on the same schema, and two batches
    // lock rows (a hot product, the outbox rows both relays just published) in whatever order
    // their units came — opposite orders deadlock, PostgreSQL aborts a batch, its units are
    // retried, and under load the instances livelock (seen in `orderflow verify` with two
    // inventory instances). One transaction-scoped advisory lock per schema makes the batches of
    // all instances take turns, as SQLite's single writer does; uncontended with one instance.
    if let Mode::Write { postgres: true } = mode
        && let Err(e) = tx
            .batch("SELECT pg_advisory_xact_lock(hashtext('orderflow-writer'), hashtext(current_schema()))")
            .await
    {
        tracing::warn!(error = %e, units = size, "taking the writer lock failed");
        let _ = tx.batch("ROLLBACK").await;
        return;
    }
    // A lone unit, or a read, needs no savepoint: if it fails, the whole transaction is undone.
    let savepoints = size > 1 && matches!(mode, Mode::Write { .. });
    tx.unstage_from(0);
    let mut answers = Vec::with_capacity(size);
    let mut kept = 0usize;
    let mut broken = None;
    for Unit { run, span } in units {
        if savepoints && let Err(e) = tx.batch("SAVEPOINT orderflow_unit").await {
            broken = Some(e);
            break;
        }
        let staged = tx.staged();
        let done = AssertUnwindSafe(run(tx).instrument(span)).catch_unwind().await;
        let keep = match &done {
            Ok(d) => d.keep,
            Err(_) => {
                tracing::error!("a unit of work panicked; rolling it back");
                false
            }
        };
        if keep {
            kept += 1;
            if savepoints && let Err(e) = tx.batch("RELEASE SAVEPOINT orderflow_unit").await {
                broken = Some(e);
            }
        } else {
            // Its events go with its work.
            tx.unstage_from(staged);
            if savepoints {
                let undone = match tx.batch("ROLLBACK TO SAVEPOINT orderflow_unit").await {
                    Ok(()) => tx.batch("RELEASE SAVEPOINT orderflow_unit").await,
                    Err(e) => Err(e),
                };
                if let Err(e) = undone {
                    broken = Some(e);
                }
            }
        }
        if let Ok(d) = done {
            answers.push(d.answer);
        }
        if broken.is_some() {
            break;
        }
    }
    let committed_ok = match broken {
        Some(e) => {
            tracing::warn!(error = %e, units = size, "a batch failed; rolling it back");
            let _ = tx.batch("ROLLBACK").await;
            false
        }
        // Nothing to keep (or only reads): nothing to make durable.
        None if kept == 0 || matches!(mode, Mode::Read) => {
            let _ = tx.batch("ROLLBACK").await;
            true
        }
        None => match tx.batch("COMMIT").await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, units = size, "committing a batch failed");
                if tx.in_transaction() {
                    let _ = tx.batch("ROLLBACK").await;
                }
                false
            }
        },
    };
    // The kept units' events are durable now: hand them to the relay (a relay that is gone, or
    // none at all, leaves them to its sweep of the outbox table).
    let outgoing = tx.take_staged();
    if committed_ok
        && !outgoing.is_empty()
        && let Some(relay) = committed.get()
    {
        let _ = relay.send(outgoing);
    }
    // Units that failed are answered with their own error whatever became of the batch.
    for answer in answers {
        answer(committed_ok);
    }
}

/// Runs `future` to completion on this thread, assuming it never waits: on SQLite every
/// [`Tx`] method completes at once. `None` if it did suspend (a unit awaited something else);
/// the future is dropped then, which answers its units with [`WriteError::Aborted`].
pub(crate) fn run_now<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// The SQLite thread's loop: batches off `queue`, each run to completion on `tx`.
pub(crate) fn sqlite_thread(
    mut tx: Tx,
    mut queue: mpsc::Receiver<Unit>,
    mode: Mode,
    committed: CommittedOutbox,
) {
    while let Some(first) = queue.blocking_recv() {
        let batch = fill(&mut queue, first);
        if run_now(run_batch(&mut tx, batch, mode, &committed)).is_none() {
            tracing::error!(
                "a unit of work waited on something other than the database on the SQLite thread; \
                 its batch was rolled back"
            );
            if tx.in_transaction() {
                // Synchronous on SQLite: cannot suspend.
                let _ = run_now(tx.batch("ROLLBACK"));
            }
        }
    }
}
