-- The claim's order in the index. Keep in step with migrations/sqlite/0019_outbox_due_order.sql.
--
-- A worker claims the oldest due events: `state = 'pending' AND next_attempt_at <= now
-- ORDER BY next_attempt_at, id LIMIT n` (host/src/store/outbox.rs, `claim`). With the
-- index on (state, next_attempt_at) alone, every event due at the same millisecond (a
-- burst, a batch of retries) had to be read, checked for per-invoice order and sorted by
-- id before the first n could be locked; with `id` in the index the scan yields them in
-- claim order and stops after n.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox_events (state, next_attempt_at, id);
