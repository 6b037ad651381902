//! The transactional outbox and its relay.
//!
//! [`enqueue`] writes an outgoing event inside the caller's transaction. The [`OutboxRelay`]
//! publishes unsent rows in batches (pipelined, every PubAck awaited) and marks exactly the
//! acknowledged ones sent, with one statement per batch that joins the writer's next group commit
//! ([`crate::writer`]). It wakes as soon as a transaction that enqueued something commits
//! ([`OutboxHandle::wake`]), and also polls, so rows written by another instance or left by a
//! crash are published too. Sending a row twice (two instances, or a crash between publish and
//! mark) is harmless: the row id is the event id and JetStream de-duplicates on `Nats-Msg-Id`.
//! On shutdown the relay drains what is left before returning.

use std::sync::Arc;
use std::time::Duration;

use orderflow_messaging::{OutgoingMessage, Publisher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use orderflow_telemetry::metrics::names;

use crate::sql::{Param, SqlError, Tx};
use crate::{Db, args};

/// Largest batch the relay publishes at once.
pub const BATCH: i64 = 512;
/// Sent rows are deleted after this long.
pub const KEEP_SENT: Duration = Duration::from_secs(3600);

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
    Ok(())
}

/// `UPDATE outbox SET sent_at = now WHERE id IN (…)` for `ids` (at most [`BATCH`]).
async fn mark_sent(tx: &mut Tx, ids: Vec<String>) -> Result<(), SqlError> {
    let mut sql = String::from("UPDATE outbox SET sent_at = $1 WHERE id IN (");
    for i in 0..ids.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 2));
    }
    sql.push(')');
    let now = crate::now_rfc3339();
    let mut params = Vec::with_capacity(ids.len() + 1);
    params.push(Param::from(&now));
    params.extend(ids.iter().map(Param::from));
    tx.execute(&sql, &params).await?;
    Ok(())
}

/// Wakes the relay after a commit.
#[derive(Clone, Debug, Default)]
pub struct OutboxHandle {
    notify: Arc<Notify>,
}

impl OutboxHandle {
    /// Call after committing a transaction that enqueued messages.
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

/// Publishes the outbox.
#[derive(Debug)]
pub struct OutboxRelay {
    db: Db,
    publisher: Publisher,
    handle: OutboxHandle,
    poll: Duration,
    service: &'static str,
}

/// Backlog figures, for metrics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// Unsent rows.
    pub unsent: i64,
    /// `created_at` of the oldest unsent row.
    pub oldest: Option<String>,
}

impl OutboxRelay {
    /// A relay for `db`'s outbox; `service` labels its metrics.
    pub fn new(db: Db, publisher: Publisher, service: &'static str) -> Self {
        Self { db, publisher, handle: OutboxHandle::default(), poll: Duration::from_millis(500), service }
    }

    /// The handle that wakes this relay.
    pub fn handle(&self) -> OutboxHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown`, then drains the outbox once more (bounded by `drain_for`).
    pub async fn run(self, shutdown: CancellationToken, drain_for: Duration) {
        let mut failures = 0u32;
        let mut last_purge = tokio::time::Instant::now();
        let mut last_gauge = tokio::time::Instant::now() - Duration::from_secs(60);
        loop {
            if last_gauge.elapsed() >= Duration::from_secs(5) {
                last_gauge = tokio::time::Instant::now();
                self.record_backlog().await;
            }
            let batch = match self.publish_batch().await {
                Ok(n) => {
                    failures = 0;
                    n
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "outbox relay failed; retrying");
                    0
                }
            };
            if last_purge.elapsed() > Duration::from_secs(60) {
                last_purge = tokio::time::Instant::now();
                if let Err(e) = self.purge().await {
                    tracing::warn!(error = %e, "purging sent outbox rows failed");
                }
            }
            if batch as i64 == BATCH {
                continue;
            }
            let wait = if failures > 0 {
                orderflow_messaging::connect::reconnect_delay(
                    failures as usize,
                    Duration::from_millis(100),
                    Duration::from_secs(5),
                )
            } else {
                self.poll
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.handle.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Flush what committed before shutdown.
        let deadline = tokio::time::Instant::now() + drain_for;
        while tokio::time::Instant::now() < deadline {
            match self.publish_batch().await {
                Ok(0) => break,
                Ok(_) => {}
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

    /// Publishes one batch of unsent rows; returns how many were marked sent.
    pub async fn publish_batch(&self) -> Result<usize, anyhow::Error> {
        let rows = self
            .db
            .read(|tx| {
                Box::pin(async move {
                    tx.query_all(
                        "SELECT id, subject, payload, correlation_id, traceparent FROM outbox \
                         WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                        args![BATCH],
                    )
                    .await
                })
            })
            .await?;
        if rows.is_empty() {
            return Ok(0);
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
        let results = self.publisher.publish_all(&msgs).await;
        let mut sent_ids = Vec::with_capacity(msgs.len());
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
                    sent_ids.push(msg.message_id);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let sent = sent_ids.len();
        if sent > 0 {
            // One statement for the whole batch, committed with whatever else the writer is
            // committing: no transaction (and no fsync) of its own.
            self.db
                .write(move |conn| Box::pin(mark_sent(conn, sent_ids)))
                .await
                .map_err(|e| anyhow::anyhow!("marking outbox rows sent: {e}"))?;
        }
        if let Some(e) = first_error {
            if sent == 0 {
                return Err(e.into());
            }
            tracing::warn!(error = %e, sent, "some outbox rows were not acknowledged; retrying them");
        }
        Ok(sent)
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
