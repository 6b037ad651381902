-- inventory-service tables. Portable SQL: runs unchanged on SQLite and PostgreSQL (see
-- orderflow_platform::db): BIGINT and TEXT only, timestamps as fixed-width RFC 3339 text.

-- One row per product (SKU). Stock is conserved: every reservation moves units from `available`
-- to `reserved`, a completed payment moves them on to `committed`, a failed one back to
-- `available`. The CHECKs make overselling impossible even if a query were wrong.
CREATE TABLE IF NOT EXISTS products (
    product_id       TEXT PRIMARY KEY,
    available        BIGINT NOT NULL CHECK (available >= 0),
    reserved         BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    committed        BIGINT NOT NULL DEFAULT 0 CHECK (committed >= 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    currency         TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

-- One row per reserved order. `lines` is the JSON array sent in inventory.reserved.v1 (with the
-- unit prices at reservation time); `express` (0/1) keeps the order's lane so that the events
-- that follow (inventory.released.v1) stay on it.
CREATE TABLE IF NOT EXISTS reservations (
    order_id       TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
    lines          TEXT NOT NULL,
    total_cents    BIGINT NOT NULL CHECK (total_cents >= 0),
    currency       TEXT NOT NULL,
    express        BIGINT NOT NULL DEFAULT 0 CHECK (express IN (0, 1)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_status ON reservations (status);
