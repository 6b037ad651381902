//! The transactional outbox and its relay.
//!
//! [`enqueue`] writes an outgoing event inside the caller's transaction. Once the writer has
//! committed that transaction it hands the event to the [`OutboxRelay`] in memory
//! (`crate::writer`): the relay publishes it at once (pipelined, every PubAck awaited) without
//! reading it back, and marks what JetStream acknowledged as sent a little later, many rows in
//! one statement that joins the writer's next group commit (no transaction of its own).
//!
//! The table stays the source of truth. A sweep reads rows still unsent [`SWEEP_AFTER`] after
//! they were written — left by a crash between commit and publish, or by another instance that
//! died — and publishes them too; so does the drain on shutdown. When JetStream does not
//! acknowledge what this relay published (a NATS node lost with the PubAcks due, a stream between
//! leaders), the sweeps read every unsent row, not only stale ones, on a short backoff (50 ms
//! doubling to 1 s) until one leaves none unacknowledged: the rows go out again as soon as NATS
//! answers.
//! Sending a row twice is harmless: the row id is the event id and JetStream de-duplicates on
//! `Nats-Msg-Id`.
use std::time::Duration;

use orderflow_messaging::{OutgoingMessage, Publisher};
use orderflow_resilience::Backoff;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use orderflow_telemetry::metrics::names;

use crate::sql::{Param, SqlError, Tx};
use crate::{Db, args};

/// Largest batch the relay publishes at once.
pub(crate) const BATCH: i64 = 512;
/// Sent rows are deleted after this long.
pub(crate) const KEEP_SENT: Duration = Duration::from_secs(3600);
/// The sweep publishes rows still unsent this long after they were written: far longer than
/// the in-memory path takes to publish and mark a row, far shorter than JetStream's duplicate
/// window (2 min), so a row the sweep sends again is still de-duplicated.
pub const SWEEP_AFTER: Duration = Duration::from_secs(5);
/// How often the sweep looks.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// When a publish leaves rows unacknowledged: 50 ms doubling to 1 s, half of each delay random,
/// never giving up. Short, so that the rows go out again within a second of NATS answering again
/// (a node lost, a leader elected); a retry is a sweep of at most [`BATCH`] rows.
const RETRY: orderflow_resilience::BackoffConfig = orderflow_resilience::BackoffConfig {
    initial: Duration::from_millis(50),
    max: Duration::from_secs(1),
    multiplier: 2.0,
    jitter: 0.5,
    max_elapsed: None,
};
/// How long published rows wait to be marked sent, so that many share one statement.
pub(crate) const MARK_EVERY: Duration = Duration::from_millis(100);

/// Writes `msg` to the outbox in the caller's transaction.
pub async fn enqueue(tx: &mut Tx, msg: &OutgoingMessage) -> Result<(), SqlError> {
    let payload = std::str::from_utf8(&msg.payload)
        .map_err(|e| SqlError::Decode(format!("outbox payload is not UTF-8: {e}")))?;
    let now = crate::now_rfc3339();
    tx.execute(
        "INSERT INTO outbox (id, subject, payload, correlation_id, traceparent, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            &msg.message_id,
            &msg.subject,
            payload,
            msg.correlation_id.as_deref(),
            msg.traceparent.as_deref(),
            &now
        ],
    )
    .await?;
    tx.stage(msg);
    Ok(())
}

/// Writes every message of one event (one per version published: see
/// [`EventVersions::messages`](orderflow_messaging::EventVersions::messages)) to the outbox in the
/// caller's transaction.
pub async fn enqueue_all(tx: &mut Tx, msgs: &[OutgoingMessage]) -> Result<(), SqlError> {
    for msg in msgs {
        enqueue(tx, msg).await?;
    }
    Ok(())
}

/// `UPDATE outbox SET sent_at = now WHERE id IN (…)` for `ids` (at most [`BATCH`]).
///
/// The list is padded to a power of two by repeating the last id (the same row, matched once),
/// so that at most ten statement texts exist (1, 2, 4 … 512). One text per count filled the connection's
/// prepared-statement cache with hundreds of one-off statements of up to 512 parameters: memory
/// that grew for hours (found by the memory test) and evicted the hot per-order statements.
async fn mark_sent(tx: &mut Tx, ids: Vec<String>) -> Result<(), SqlError> {
    let Some(last) = ids.last() else { return Ok(()) };
    let slots = ids.len().next_power_of_two();
    let mut sql = String::from("UPDATE outbox SET sent_at = $1 WHERE id IN (");
    for i in 0..slots {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 2));
    }
    sql.push(')');
    let now = crate::now_rfc3339();
    let mut params = Vec::with_capacity(slots + 1);
    params.push(Param::from(&now));
    params.extend(ids.iter().map(Param::from));
    params.resize(slots + 1, Param::from(last));
    tx.execute(&sql, &params).await?;
    Ok(())
}

/// Publishes the outbox.
#[derive(Debug)]
pub struct OutboxRelay {
    db: Db,
    publisher: Publisher,
    /// Committed messages from the writer; `None` when another relay of the same `Db` has it.
    committed: Option<mpsc::UnboundedReceiver<Vec<OutgoingMessage>>>,
    service: &'static str,
}

/// Backlog figures, for metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// Unsent rows.
    pub unsent: i64,
    /// `created_at` of the oldest unsent row.
    pub(crate) oldest: Option<String>,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug)]
struct Swept {
    /// Unsent rows read from the table.
    read: usize,
    /// Of those, how many JetStream did not acknowledge.
    missed: usize,
}

/// Which unsent rows a sweep reads.
#[derive(Clone, Copy, Debug)]
enum Sweep {
    /// Those written before [`SWEEP_AFTER`] ago: the in-memory path had its chance.
    Stale,
    /// Every one (the drain on shutdown).
    All,
}

impl OutboxRelay {
    /// A relay for `db`'s outbox; `service` labels its metrics.
    pub fn new(db: Db, publisher: Publisher, service: &'static str) -> Self {
        let committed = db.committed_outbox();
        Self { db, publisher, committed, service }
    }

    /// Runs until `shutdown`, then drains the outbox once more (bounded by `drain_for`).
    pub async fn run(mut self, shutdown: CancellationToken, drain_for: Duration) {
        let mut failures = 0u32;
        // Rows this relay handled but JetStream did not acknowledge (a NATS node lost with
        // their PubAcks due, the stream briefly without a leader): until a sweep leaves none,
        // sweeps read every unsent row, not only the stale ones, so that they go out again as
        // soon as NATS answers instead of waiting out `SWEEP_AFTER`.
        let mut behind = false;
        let mut retry = Backoff::new(RETRY).unwrap_or_default();
        let mut sent: Vec<String> = Vec::new();
        let mut next_sweep = Instant::now();
        let mut next_mark = Instant::now() + MARK_EVERY;
        let mut last_purge = Instant::now();
        let mut last_gauge = Instant::now() - Duration::from_secs(60);
        let mut committed = self.committed.take();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                batch = recv(&mut committed) => match batch {
                    // While publishing fails (NATS unreachable), what commits is left to the
                    // sweep instead of piling up here: the rows are in the table.
                    Some(_) if failures > 0 => {}
                    Some(mut msgs) => {
                        // Whatever else committed meanwhile goes in the same pipelined publish.
                        while msgs.len() < BATCH as usize
                            && let Some(more) = committed.as_mut().and_then(|c| c.try_recv().ok())
                        {
                            msgs.extend(more);
                        }
                        let missed = match self.publish(msgs, &mut sent).await {
                            Ok(missed) => missed,
                            Err(e) => {
                                failures += 1;
                                tracing::warn!(error = %e, "publishing committed events failed; retrying from the table");
                                1
                            }
                        };
                        if missed > 0 && !behind {
                            behind = true;
                            next_sweep = next_sweep.min(Instant::now() + retry.next_delay().unwrap_or(SWEEP_EVERY));
                        }
                    }
                    None => committed = None,
                },
                _ = tokio::time::sleep_until(next_sweep) => {
                    let which = if behind { Sweep::All } else { Sweep::Stale };
                    next_sweep = match self.sweep(which, &mut sent).await {
                        Ok(swept) => {
                            failures = 0;
                            // A full batch: more may wait (and, after a failure, be recent).
                            let more = swept.read as i64 == BATCH;
                            behind = swept.missed > 0 || (behind && more);
                            if swept.missed == 0 {
                                retry.reset();
                            }
                            Instant::now() + if swept.missed > 0 {
                                retry.next_delay().unwrap_or(SWEEP_EVERY)
                            } else if more {
                                Duration::ZERO
                            } else {
                                SWEEP_EVERY
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            behind = true;
                            tracing::warn!(error = %e, attempt = failures, "outbox sweep failed; retrying");
                            // Without a time limit there is always a next delay.
                            Instant::now() + retry.next_delay().unwrap_or(SWEEP_EVERY)
                        }
                    };
                    if last_gauge.elapsed() >= Duration::from_secs(5) {
                        last_gauge = Instant::now();
                        self.record_backlog().await;
                    }
                    if last_purge.elapsed() > Duration::from_secs(60) {
                        last_purge = Instant::now();
                        if let Err(e) = self.purge().await {
                            tracing::warn!(error = %e, "purging sent outbox rows failed");
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_mark), if !sent.is_empty() => {}
            }
            if !sent.is_empty() && (Instant::now() >= next_mark || sent.len() >= BATCH as usize) {
                self.mark(&mut sent).await;
                next_mark = Instant::now() + MARK_EVERY;
            }
        }
        // Flush what committed before shutdown: what the writer handed over, then the table.
        let deadline = Instant::now() + drain_for;
        if let Some(c) = committed.as_mut() {
            while let Ok(msgs) = c.try_recv() {
                if let Err(e) = self.publish(msgs, &mut sent).await {
                    tracing::warn!(error = %e, "outbox drain failed; the table still has the rows");
                }
            }
        }
        self.mark(&mut sent).await;
        while Instant::now() < deadline {
            match self.sweep(Sweep::All, &mut sent).await {
                Ok(Swept { read: 0, .. }) => break,
                // Rows left, none of them acknowledged now (another publisher has them): they
                // stay for that publisher or the next start instead of being swept in a loop.
                Ok(_) if sent.is_empty() => break,
                Ok(_) => self.mark(&mut sent).await,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox drain failed; rows stay for the next start");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        self.record_backlog().await;
        if let Err(e) = self.publisher.jetstream().client().flush().await {
            tracing::warn!(error = %e, "flushing NATS on shutdown failed");
        }
    }

    /// Publishes `msgs` (pipelined) and adds the ids JetStream acknowledged to `sent`; returns how
    /// many were not acknowledged, and fails only when none was. A message another publisher is
    /// storing at the same moment (JetStream's 409 "duplicate message id is in process") is not
    /// an error: its row stays unsent until that publisher marks it, or the next sweep gets the
    /// duplicate acknowledgement.
    async fn publish(
        &self,
        msgs: Vec<OutgoingMessage>,
        sent: &mut Vec<String>,
    ) -> Result<usize, anyhow::Error> {
        let results = self.publisher.publish_all(&msgs).await;
        let mut acked = 0;
        let mut busy_elsewhere = 0;
        let mut failed = 0;
        let mut first_error = None;
        for (msg, result) in msgs.into_iter().zip(results) {
            match result {
                Ok(_) => {
                    metrics::counter!(
                        names::MESSAGES_PUBLISHED,
                        "service" => self.service,
                        "subject" => msg.subject
                    )
                    .increment(1);
                    sent.push(msg.message_id);
                    acked += 1;
                }
                Err(e) if e.is_duplicate_in_process() => {
                    tracing::debug!(subject = %e.subject, "another publisher is storing this event; leaving it to them");
                    busy_elsewhere += 1;
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            if acked == 0 && busy_elsewhere == 0 {
                return Err(e.into());
            }
            tracing::warn!(error = %e, acked, failed, "some outbox rows were not acknowledged; publishing them again");
        }
        Ok(failed + busy_elsewhere)
    }

    /// Marks `sent` sent (one statement, in the writer's next group commit) and empties it. On
    /// failure the rows stay unsent and are published again by a sweep: harmless.
    async fn mark(&self, sent: &mut Vec<String>) {
        while !sent.is_empty() {
            let ids: Vec<String> = sent.drain(..sent.len().min(BATCH as usize)).collect();
            if let Err(e) = self.db.write(move |tx| Box::pin(mark_sent(tx, ids))).await {
                tracing::warn!(error = %e, "marking outbox rows sent failed; they will be sent again");
            }
        }
    }

    /// Publishes one batch of unsent rows from the table.
    async fn sweep(&self, which: Sweep, sent: &mut Vec<String>) -> Result<Swept, anyhow::Error> {
        let cutoff = match which {
            Sweep::Stale => crate::format_rfc3339(time::OffsetDateTime::now_utc() - SWEEP_AFTER),
            // Later than any row can be.
            Sweep::All => "9999".to_owned(),
        };
        let rows = self
            .db
            .read(move |tx| {
                Box::pin(async move {
                    tx.query_all(
                        "SELECT id, subject, payload, correlation_id, traceparent FROM outbox \
                         WHERE sent_at IS NULL AND created_at < $1 ORDER BY id LIMIT $2",
                        args![&cutoff, BATCH],
                    )
                    .await
                })
            })
            .await?;
        if rows.is_empty() {
            return Ok(Swept { read: 0, missed: 0 });
        }
        let mut msgs = Vec::with_capacity(rows.len());
        for row in &rows {
            msgs.push(OutgoingMessage {
                message_id: row.text(0)?,
                subject: row.text(1)?,
                payload: row.text(2)?.into(),
                correlation_id: row.opt_text(3)?,
                traceparent: row.opt_text(4)?,
            });
        }
        tracing::debug!(rows = msgs.len(), ?which, "publishing unsent outbox rows");
        let missed = self.publish(msgs, sent).await?;
        Ok(Swept { read: rows.len(), missed })
    }

    /// Unsent rows and the oldest one's age.
    pub async fn backlog(db: &Db) -> Result<Backlog, SqlError> {
        db.read(|tx| {
            Box::pin(async move {
                let row = tx
                    .query_one("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL", &[])
                    .await?;
                Ok(Backlog { unsent: row.int(0)?, oldest: row.opt_text(1)? })
            })
        })
        .await
    }

    async fn record_backlog(&self) {
        match Self::backlog(&self.db).await {
            Ok(b) => {
                let age = b
                    .oldest
                    .as_deref()
                    .and_then(|t| {
                        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                    })
                    .map_or(0.0, |t| (time::OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0));
                metrics::gauge!(names::OUTBOX_BACKLOG, "service" => self.service).set(b.unsent as f64);
                metrics::gauge!(names::OUTBOX_OLDEST_AGE, "service" => self.service).set(age);
            }
            Err(e) => tracing::debug!(error = %e, "reading the outbox backlog failed"),
        }
    }

    async fn purge(&self) -> Result<(), crate::WriteError<SqlError>> {
        let cutoff = crate::format_rfc3339(time::OffsetDateTime::now_utc() - KEEP_SENT);
        self.db
            .write(move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1",
                        args![&cutoff],
                    )
                    .await
                })
            })
            .await?;
        Ok(())
    }
}

/// The next committed batch, or never when there is no feed.
async fn recv(
    feed: &mut Option<mpsc::UnboundedReceiver<Vec<OutgoingMessage>>>,
) -> Option<Vec<OutgoingMessage>> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}
