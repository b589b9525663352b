-- Who paid: the sender of the transfer an invoice shows as its payment (the one that
-- completed it, else the latest), kept beside txn_hash and set by the same settlement.
ALTER TABLE invoices ADD COLUMN payer_address TEXT;
