-- Webhook delivery additions. Keep in step with migrations/postgres/0003_webhooks.sql
-- (same tables, columns and constraints; only types and the way of getting there differ).
--
-- 1. Test callbacks (a plugin's "send me a test webhook") belong to no invoice, so
--    `outbox_events.invoice_id` becomes nullable. SQLite cannot drop a NOT NULL in place:
--    both outbox tables are rebuilt (webhook_attempts references outbox_events, and a
--    parent with children cannot be dropped while foreign keys are enforced).
-- 2. Replay bookkeeping on events: the attempt count at the last operator replay (the
--    plugin and the retry schedule count attempts from there), how often it was replayed,
--    and when it was last attempted.
-- 3. Attempts get their outcome spelled out, a flag for a truncated response body, and a
--    unique (event_id, attempt): an attempt number is held by one worker only, ever.

CREATE TABLE outbox_events_v3 (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for test events, which concern no invoice
    invoice_id              TEXT REFERENCES invoices(id),
    merchant_id             TEXT NOT NULL,
    plugin                  TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    payload                 TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    -- pending | delivering | delivered | dead | skipped
    state                   TEXT NOT NULL DEFAULT 'pending',
    -- attempts ever made, across replays; the claim of attempt n sets it to n
    attempts                INTEGER NOT NULL DEFAULT 0,
    next_attempt_at         INTEGER NOT NULL,
    -- lease of the worker holding a `delivering` event; past it, another worker retakes it
    locked_until            INTEGER,
    delivered_at            INTEGER,
    last_error              TEXT,
    attempts_before_replay  INTEGER NOT NULL DEFAULT 0,
    replays                 INTEGER NOT NULL DEFAULT 0,
    last_attempt_at         INTEGER
);
INSERT INTO outbox_events_v3 (id, invoice_id, merchant_id, plugin, kind, payload, created_at, state, attempts,
                              next_attempt_at, locked_until, delivered_at, last_error)
    SELECT id, invoice_id, merchant_id, plugin, kind, payload, created_at, state, attempts,
           next_attempt_at, locked_until, delivered_at, last_error
    FROM outbox_events;

CREATE TABLE webhook_attempts_v3 (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id            INTEGER NOT NULL REFERENCES outbox_events_v3(id),
    attempt             INTEGER NOT NULL,
    url                 TEXT NOT NULL,
    started_at          INTEGER NOT NULL,
    latency_ms          INTEGER,
    status_code         INTEGER,
    response_body       TEXT,
    error               TEXT,
    accepted            INTEGER NOT NULL DEFAULT 0 CHECK (accepted IN (0, 1)),
    -- accepted | rejected | failed | refused | render_failed | abandoned
    outcome             TEXT NOT NULL,
    response_truncated  INTEGER NOT NULL DEFAULT 0 CHECK (response_truncated IN (0, 1))
);
INSERT INTO webhook_attempts_v3 (id, event_id, attempt, url, started_at, latency_ms, status_code, response_body, error,
                                 accepted, outcome)
    SELECT id, event_id, attempt, url, started_at, latency_ms, status_code, response_body, error, accepted,
           CASE WHEN accepted = 1 THEN 'accepted' WHEN status_code IS NOT NULL THEN 'rejected' ELSE 'failed' END
    FROM webhook_attempts;

DROP TABLE webhook_attempts;
DROP TABLE outbox_events;
-- Renaming rewrites the reference in webhook_attempts_v3 to the new name.
ALTER TABLE outbox_events_v3 RENAME TO outbox_events;
ALTER TABLE webhook_attempts_v3 RENAME TO webhook_attempts;

CREATE INDEX outbox_due ON outbox_events (state, next_attempt_at);
CREATE INDEX outbox_invoice ON outbox_events (invoice_id, id);
CREATE INDEX outbox_merchant_created ON outbox_events (merchant_id, created_at);
CREATE UNIQUE INDEX webhook_attempts_once ON webhook_attempts (event_id, attempt);
