-- The invoice domain's correctness fixes.

-- Lateness is judged by the block's time, not by when the host stored the transfer.
-- Transfers stored before this column existed take their observation time, the best
-- value known for them.
ALTER TABLE observed_transfers ADD COLUMN block_time BIGINT;
UPDATE observed_transfers SET block_time = observed_at;

-- The timestamp of the processed block: reservations end only once the chain has been
-- read past their deadline, so no payment mined before it can be missed.
ALTER TABLE chain_cursors ADD COLUMN processed_time BIGINT;

-- An invoice whose settlement failed is set aside (with the reason) so its chain moves on.
ALTER TABLE invoices ADD COLUMN quarantined_at BIGINT;
ALTER TABLE invoices ADD COLUMN quarantine_reason TEXT;
CREATE INDEX invoices_quarantined ON invoices (quarantined_at) WHERE quarantined_at IS NOT NULL;

-- Idempotent creation: one invoice per (plugin, merchant, key), and the request it was
-- created from.
ALTER TABLE invoices ADD COLUMN idempotency_key TEXT;
ALTER TABLE invoices ADD COLUMN request_fingerprint TEXT;
CREATE UNIQUE INDEX invoices_idempotency ON invoices (plugin, merchant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A payment-contract reference names one invoice per chain.
DROP INDEX invoices_pay_reference;
CREATE UNIQUE INDEX invoices_pay_reference ON invoices (chain, pay_reference)
    WHERE pay_reference IS NOT NULL;

-- When an active target may be released if nothing settles it first (see the invoice
-- service: the deadline for shared targets nothing was paid to, else the end of the
-- monitoring window). Released by an indexed scan over the due ones only.
ALTER TABLE payment_targets ADD COLUMN release_at BIGINT;
UPDATE payment_targets SET release_at =
    (SELECT monitor_until FROM invoices WHERE invoices.id = payment_targets.invoice_id)
    WHERE active = 1;
CREATE INDEX payment_targets_release ON payment_targets (release_at) WHERE active = 1;

-- Recently released unique amounts are not handed out again at once (a late payment of a
-- released amount must not pay a new invoice).
CREATE INDEX payment_targets_recent_release ON payment_targets (chain, asset, address, released_at)
    WHERE amount IS NOT NULL AND active = 0;

-- One open fixed-address invoice per (chain, asset, address). Older duplicates keep their
-- target; newer ones are released (their invoices then expire unpaid unless settled).
UPDATE payment_targets SET active = 0, released_at = created_at
    WHERE strategy = 'fixed-address' AND active = 1 AND EXISTS (
        SELECT 1 FROM payment_targets o
        WHERE o.strategy = 'fixed-address' AND o.active = 1 AND o.chain = payment_targets.chain
          AND o.asset = payment_targets.asset AND o.address = payment_targets.address
          AND (o.created_at < payment_targets.created_at
               OR (o.created_at = payment_targets.created_at AND o.id < payment_targets.id)));
CREATE UNIQUE INDEX payment_targets_fixed_open ON payment_targets (chain, asset, address)
    WHERE active = 1 AND strategy = 'fixed-address';
