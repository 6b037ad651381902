-- Orders and their state machine (pending -> confirmed | cancelled).
CREATE TABLE IF NOT EXISTS orders (
    order_id       TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    items          TEXT NOT NULL,
    priority       TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    total_cents    BIGINT,
    currency       TEXT,
    correlation_id TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);

-- Every status an order has had, in order.
CREATE TABLE IF NOT EXISTS order_history (
    order_id TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    status   TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Idempotency-Key records: the canonical request body and the response it got.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    idem_key      TEXT PRIMARY KEY,
    request_body  TEXT NOT NULL,
    status_code   BIGINT NOT NULL,
    response_body TEXT NOT NULL,
    location      TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);
