-- Webhook delivery additions. Keep in step with migrations/sqlite/0003_webhooks.sql
-- (same tables, columns and constraints; only types and the way of getting there differ).
--
-- 1. Test callbacks (a plugin's "send me a test webhook") belong to no invoice, so
--    `outbox_events.invoice_id` becomes nullable.
-- 2. Replay bookkeeping on events: the attempt count at the last operator replay (the
--    plugin and the retry schedule count attempts from there), how often it was replayed,
--    and when it was last attempted.
-- 3. Attempts get their outcome spelled out, a flag for a truncated response body, and a
--    unique (event_id, attempt): an attempt number is held by one worker only, ever.

ALTER TABLE outbox_events ALTER COLUMN invoice_id DROP NOT NULL;
ALTER TABLE outbox_events ADD COLUMN attempts_before_replay BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox_events ADD COLUMN replays BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox_events ADD COLUMN last_attempt_at BIGINT;

-- accepted | rejected | failed | refused | render_failed | abandoned
ALTER TABLE webhook_attempts ADD COLUMN outcome TEXT;
UPDATE webhook_attempts SET outcome =
    CASE WHEN accepted = 1 THEN 'accepted' WHEN status_code IS NOT NULL THEN 'rejected' ELSE 'failed' END;
ALTER TABLE webhook_attempts ALTER COLUMN outcome SET NOT NULL;
ALTER TABLE webhook_attempts ADD COLUMN response_truncated BIGINT NOT NULL DEFAULT 0
    CHECK (response_truncated IN (0, 1));

CREATE INDEX outbox_merchant_created ON outbox_events (merchant_id, created_at);
DROP INDEX webhook_attempts_event;
CREATE UNIQUE INDEX webhook_attempts_once ON webhook_attempts (event_id, attempt);
