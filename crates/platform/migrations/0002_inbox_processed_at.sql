-- Inbox pruning (crate::inbox::prune) deletes rows by age: an index on processed_at keeps each
-- batch a range read instead of a scan of the whole table.
CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at);
