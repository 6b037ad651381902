-- The transactional outbox: rows are written in the same transaction as the state change they
-- announce; the relay publishes them and sets sent_at. id is the event id (UUIDv7), which is
-- time-ordered as text and is also the JetStream Nats-Msg-Id.
CREATE TABLE IF NOT EXISTS outbox (
    id             TEXT PRIMARY KEY,
    subject        TEXT NOT NULL,
    payload        TEXT NOT NULL,
    correlation_id TEXT,
    traceparent    TEXT,
    created_at     TEXT NOT NULL,
    sent_at        TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- The inbox: one row per (handler, event id) processed, written in the handler's transaction,
-- so a redelivered or duplicated event is recognised and becomes a no-op.
CREATE TABLE IF NOT EXISTS inbox (
    handler      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (handler, event_id)
);
