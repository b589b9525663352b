-- Several instances on one database. Keep in step with
-- migrations/sqlite/0012_multi_instance.sql (same meaning, only types differ).

-- Every move of a listener's processed block (a range processed, a reorg rolled back, an
-- operator's rewind) bumps the cursor's generation. A listener writes its cursor only if
-- the generation, the processed block and the tip's hash are still the ones it read at
-- the start of its step (compare-and-set, checked inside the step's transaction): a
-- listener that lags behind another one, or outlived its leadership, can neither move
-- the cursor back nor revive a transfer that a reorg removed.
ALTER TABLE chain_cursors ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

-- Wake-ups across instances (PostgreSQL only; SQLite has one process and no NOTIFY).
-- A committed outbox event notifies `polypay_outbox`, so idle webhook workers of every
-- instance claim it at once instead of at their next poll; an invoice whose status or
-- amounts changed notifies `polypay_invoice` with its id, so checkout streams following
-- it re-read it at once. Notifications are sent on commit, never for a rolled-back
-- change; each instance still polls, so a lost notification only costs latency.
CREATE FUNCTION polypay_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('polypay_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION polypay_notify_outbox();

CREATE FUNCTION polypay_notify_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('polypay_invoice', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER invoices_notify AFTER UPDATE ON invoices
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.amount_paid IS DISTINCT FROM NEW.amount_paid
          OR OLD.amount_confirmed IS DISTINCT FROM NEW.amount_confirmed)
    EXECUTE FUNCTION polypay_notify_invoice();
