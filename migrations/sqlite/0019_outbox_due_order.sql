-- The claim's order in the index. Keep in step with migrations/postgres/0019_outbox_due_order.sql.
--
-- A worker claims the oldest due events in (next_attempt_at, id) order
-- (host/src/store/outbox.rs, `claim`). SQLite already found them in that order (an index
-- entry ends with the rowid, which is `id`); the index names the column so that both
-- backends say the same.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox_events (state, next_attempt_at, id);
