-- analytics-service tables: a read model folded from the order, inventory and payment events.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL (BIGINT and TEXT only). Every count is
-- changed in the same transaction as the inbox row of the event that changed it, so a
-- redelivered or duplicated event is counted once. Minutes are Unix seconds of the minute's
-- start, in the minute of the event's own `time` (not of its arrival): a late event lands in the
-- minute it happened in, whenever it arrives.

-- Orders accepted, confirmed and cancelled per minute.
CREATE TABLE IF NOT EXISTS analytics_minutes (
    minute    BIGINT PRIMARY KEY,
    accepted  BIGINT NOT NULL DEFAULT 0,
    confirmed BIGINT NOT NULL DEFAULT 0,
    cancelled BIGINT NOT NULL DEFAULT 0
);

-- Confirmed revenue per minute and currency, and over all time. Both saturate at the largest
-- BIGINT instead of overflowing (SQLite would turn the sum into a float, PostgreSQL would fail).
CREATE TABLE IF NOT EXISTS analytics_revenue (
    minute   BIGINT NOT NULL,
    currency TEXT NOT NULL,
    cents    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, currency)
);

CREATE TABLE IF NOT EXISTS analytics_revenue_total (
    currency TEXT PRIMARY KEY,
    cents    BIGINT NOT NULL DEFAULT 0
);

-- Cancellations by reason.
CREATE TABLE IF NOT EXISTS analytics_reasons (
    reason TEXT PRIMARY KEY,
    n      BIGINT NOT NULL DEFAULT 0
);

-- Events seen per saga step (`created`, `reserved`, `rejected`, `paid`, `payment_failed`,
-- `released`, `confirmed`, `cancelled`): the counts on the dashboard's flow.
CREATE TABLE IF NOT EXISTS analytics_flow (
    step TEXT PRIMARY KEY,
    n    BIGINT NOT NULL DEFAULT 0
);

-- Units and orders per product, from orders.created.
CREATE TABLE IF NOT EXISTS analytics_products (
    product_id TEXT PRIMARY KEY,
    quantity   BIGINT NOT NULL DEFAULT 0,
    orders     BIGINT NOT NULL DEFAULT 0
);

-- Created → terminal latency: how many orders took `bucket` ms (an HDR histogram value,
-- two significant figures), by the minute the order ended in.
CREATE TABLE IF NOT EXISTS analytics_latency (
    minute BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    n      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, bucket)
);

-- The same, over all time (what the summary's percentiles read: a few hundred rows at most).
CREATE TABLE IF NOT EXISTS analytics_latency_total (
    bucket BIGINT PRIMARY KEY,
    n      BIGINT NOT NULL DEFAULT 0
);

-- Orders with one end of their latency seen and the other not yet (either can come first: they
-- travel on different streams). The row goes once the latency is recorded, so the table holds
-- only orders in flight.
CREATE TABLE IF NOT EXISTS analytics_open_orders (
    order_id    TEXT PRIMARY KEY,
    created_ms  BIGINT,
    terminal_ms BIGINT
);
