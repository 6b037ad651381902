-- One row per order once its payment is decided: completed (charged) or failed.
CREATE TABLE IF NOT EXISTS payments (
    order_id     TEXT PRIMARY KEY,
    payment_id   TEXT NOT NULL,
    status       TEXT NOT NULL,
    charge_id    TEXT,
    amount_cents BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    reason       TEXT,
    detail       TEXT,
    attempts     BIGINT NOT NULL,
    created_at   TEXT NOT NULL
);
