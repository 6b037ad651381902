//! The durable ledger: every charge the simulator made, and the idempotency keys of the last
//! `idempotency_key_ttl_secs` (24 h by default), in a SQLite file of its own
//! (`<data-dir>/gateway-sim.db`).
//!
//! A key older than its TTL is not honoured any more — the lookup ignores it, so expiry is exact
//! whenever the pruning last ran — and the same key then makes a new charge, as at a real
//! gateway. [`Ledger::expire_keys`] deletes expired keys (the charges stay), so the table holds
//! about one TTL of keys.
//!
//! A real gateway keeps both across its restarts; so must its stand-in, or a charge retried
//! after a restart would charge the customer twice, and the invariant "one charge per confirmed
//! order" could not be checked across restarts. Keeping them on disk also keeps them out of
//! memory, which grew with every charge. The decision itself ([`crate::domain::decide`]) runs
//! inside one unit of the database's group commit, so two requests with one key cannot both
//! create a charge, and the answer is given only once the charge is durable.

use std::path::Path;
use std::time::Duration;

use orderflow_platform::sql::{Row, SqlError, Tx};
use orderflow_platform::{Db, DbError, Migration, WriteError, args};
use time::OffsetDateTime;

use crate::domain::{
    AmountCents, Charge, ChargeOutcome, ChargeRequest, ChargeStatus, Currency, Faults, IdempotencyKey,
    OrderRef, Rolls, decide,
};

const MIGRATION: Migration = Migration {
    version: 100,
    description: "gateway-sim charges and idempotency keys",
    sql: "CREATE TABLE IF NOT EXISTS charges (
        charge_id       TEXT PRIMARY KEY,
        order_id        TEXT NOT NULL,
        amount_cents    BIGINT NOT NULL,
        currency        TEXT NOT NULL,
        status          TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        created_at      TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS charges_order_id ON charges (order_id);
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        idem_key   TEXT PRIMARY KEY,
        charge_id  TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);",
};

/// The caller's trace context, kept with each charge (a ledger written before it has `NULL`).
const TRACEPARENT_MIGRATION: Migration = Migration {
    version: 101,
    description: "gateway-sim charges keep the request's traceparent",
    sql: "ALTER TABLE charges ADD COLUMN traceparent TEXT;",
};

const COLUMNS: &str = "c.charge_id, c.order_id, c.amount_cents, c.currency, c.status, c.idempotency_key, \
                       c.created_at, c.traceparent";

/// The ledger's handle; clones share the database.
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    db: Db,
    /// How long a key is honoured.
    key_ttl: Duration,
}

impl Ledger {
    /// Opens (or creates) `<data_dir>/gateway-sim.db`.
    /// Keys are honoured for `key_ttl`.
    pub(crate) async fn open(data_dir: &Path, key_ttl: Duration) -> Result<Self, DbError> {
        let url = format!("sqlite://{}", data_dir.join("gateway-sim.db").display());
        let db = Db::connect(&url, "gateway", &[MIGRATION, TRACEPARENT_MIGRATION]).await?;
        Ok(Self { db, key_ttl })
    }

    /// Keys created before this are expired.
    fn key_cutoff(&self, now: OffsetDateTime) -> String {
        let oldest = time::Duration::try_from(self.key_ttl)
            .ok()
            .and_then(|ttl| now.checked_sub(ttl))
            .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc());
        orderflow_platform::format_rfc3339(oldest)
    }

    /// Decides a charge request against the recorded charge of its key and records a new one
    /// (with the request's `traceparent`); answers once it is durable.
    pub(crate) async fn charge(
        &self,
        key: IdempotencyKey,
        request: ChargeRequest,
        traceparent: Option<String>,
        faults: Faults,
        rolls: Rolls,
    ) -> Result<ChargeOutcome, SqlError> {
        // Stored with millisecond precision: answer with what a replay will read back.
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(u32::from(now.millisecond()) * 1_000_000).unwrap_or(now);
        let cutoff = self.key_cutoff(now);
        self.db
            .write(move |tx| {
                Box::pin(async move {
                    let existing = tx
                        .query_opt(
                            &format!(
                                "SELECT {COLUMNS} FROM idempotency_keys k JOIN charges c ON c.charge_id = k.charge_id \
                                 WHERE k.idem_key = $1 AND k.created_at >= $2"
                            ),
                            args![key.as_str(), &cutoff],
                        )
                        .await?
                        .map(|row| charge(&row))
                        .transpose()?;
                    let outcome = decide(existing, key, request, traceparent, &faults, rolls, now);
                    if let ChargeOutcome::Created(c) = &outcome {
                        insert(tx, c).await?;
                    }
                    Ok(outcome)
                })
            })
            .await
            .map_err(WriteError::into_unit_error)
    }

    /// Charges for one order, or all of them, oldest first.
    pub(crate) async fn charges(&self, order_id: Option<String>) -> Result<Vec<Charge>, SqlError> {
        self.db
            .read(move |tx| {
                Box::pin(async move {
                    let rows = match &order_id {
                        Some(id) => {
                            let sql = format!(
                                "SELECT {COLUMNS} FROM charges c WHERE c.order_id = $1 ORDER BY c.charge_id"
                            );
                            tx.query_all(&sql, args![id.as_str()]).await?
                        }
                        None => {
                            tx.query_all(
                                &format!("SELECT {COLUMNS} FROM charges c ORDER BY c.charge_id"),
                                &[],
                            )
                            .await?
                        }
                    };
                    rows.iter().map(charge).collect()
                })
            })
            .await
    }

    /// `(succeeded, declined)` charge counts.
    pub(crate) async fn count_by_status(&self) -> Result<(u64, u64), SqlError> {
        self.db
            .read(|tx| {
                Box::pin(async move {
                    let rows =
                        tx.query_all("SELECT status, COUNT(*) FROM charges GROUP BY status", &[]).await?;
                    let mut counts = (0, 0);
                    for row in rows {
                        let n = u64::try_from(row.int(1)?).unwrap_or(0);
                        match row.text(0)?.as_str() {
                            "succeeded" => counts.0 = n,
                            "declined" => counts.1 = n,
                            _ => {}
                        }
                    }
                    Ok(counts)
                })
            })
            .await
    }

    /// Forgets the idempotency keys older than their TTL; returns how many.
    pub(crate) async fn expire_keys(&self) -> Result<u64, SqlError> {
        let cutoff = self.key_cutoff(OffsetDateTime::now_utc());
        self.db
            .write(move |tx| {
                Box::pin(async move {
                    tx.execute("DELETE FROM idempotency_keys WHERE created_at < $1", args![&cutoff]).await
                })
            })
            .await
            .map_err(WriteError::into_unit_error)
    }

    /// Whether the database answers (readiness).
    pub(crate) async fn ping(&self) -> Result<(), SqlError> {
        self.db.ping().await
    }
}

async fn insert(tx: &mut Tx, c: &Charge) -> Result<(), SqlError> {
    let created_at = orderflow_platform::format_rfc3339(c.created_at);
    let amount = i64::try_from(c.amount_cents.cents()).map_err(|e| SqlError::Decode(e.to_string()))?;
    tx.execute(
        "INSERT INTO charges (charge_id, order_id, amount_cents, currency, status, idempotency_key, created_at, \
         traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            c.charge_id.as_str(),
            c.order_id.as_str(),
            amount,
            c.currency.as_str(),
            c.status.as_str(),
            c.idempotency_key.as_str(),
            &created_at,
            c.traceparent.as_deref()
        ],
    )
    .await?;
    tx.execute(
        // An expired key not pruned yet is taken over by the new charge.
        "INSERT INTO idempotency_keys (idem_key, charge_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (idem_key) DO UPDATE SET charge_id = excluded.charge_id, created_at = excluded.created_at",
        args![c.idempotency_key.as_str(), c.charge_id.as_str(), &created_at],
    )
    .await?;
    Ok(())
}

fn charge(row: &Row) -> Result<Charge, SqlError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| SqlError::Decode(format!("stored {what}: {e}"));
    let status = match row.text(4)?.as_str() {
        "succeeded" => ChargeStatus::Succeeded,
        "declined" => ChargeStatus::Declined,
        other => return Err(SqlError::Decode(format!("stored status {other:?}"))),
    };
    let created_at = OffsetDateTime::parse(&row.text(6)?, &time::format_description::well_known::Rfc3339)
        .map_err(|e| corrupt("time", &e))?;
    let cents = u64::try_from(row.int(2)?).map_err(|e| corrupt("amount", &e))?;
    Ok(Charge {
        charge_id: row.text(0)?,
        order_id: OrderRef::parse(row.text(1)?).map_err(|e| corrupt("order id", &e))?,
        amount_cents: AmountCents::parse(cents).map_err(|e| corrupt("amount", &e))?,
        currency: Currency::parse(row.text(3)?).map_err(|e| corrupt("currency", &e))?,
        status,
        idempotency_key: IdempotencyKey::parse(row.text(5)?).map_err(|e| corrupt("key", &e))?,
        created_at,
        traceparent: row.opt_text(7)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn expiring_keys_forgets_only_those_past_their_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), Duration::from_secs(3600)).await.unwrap();
        let now = OffsetDateTime::now_utc();
        for (key, age) in [("old", 3601), ("new", 3599)] {
            let at = orderflow_platform::format_rfc3339(now - Duration::from_secs(age));
            ledger
                .db
                .write(move |tx| {
                    Box::pin(async move {
                        tx.execute(
                            "INSERT INTO idempotency_keys (idem_key, charge_id, created_at) VALUES ($1, 'c', $2)",
                            args![key, &at],
                        )
                        .await
                    })
                })
                .await
                .unwrap();
        }

        let expired = ledger.expire_keys().await.unwrap();

        assert_eq!(expired, 1);
        let left: Vec<String> = ledger
            .db
            .read(|tx| {
                Box::pin(async move { tx.query_all("SELECT idem_key FROM idempotency_keys", &[]).await })
            })
            .await
            .unwrap()
            .iter()
            .map(|r| r.text(0).unwrap())
            .collect();
        assert_eq!(left, ["new"]);
    }
}
