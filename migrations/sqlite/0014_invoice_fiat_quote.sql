-- The fiat price of an invoice priced in fiat and the quote its amount due came from:
-- the price (decimal string and ISO 4217 code), the rate (fiat per whole asset unit,
-- decimal string), the provider that gave it, when it was quoted and until when the
-- quote holds. All null for an invoice priced in the asset itself.
ALTER TABLE invoices ADD COLUMN fiat_amount TEXT;
ALTER TABLE invoices ADD COLUMN fiat_currency TEXT;
ALTER TABLE invoices ADD COLUMN fiat_rate TEXT;
ALTER TABLE invoices ADD COLUMN fiat_rate_source TEXT;
ALTER TABLE invoices ADD COLUMN fiat_quoted_at INTEGER;
ALTER TABLE invoices ADD COLUMN fiat_valid_until INTEGER;

-- A re-quote of an unpaid fiat-priced invoice keeps the amount it replaced acceptable for
-- a grace period: that amount (base units) and until when (Unix ms). Null when the
-- invoice was never re-quoted to another amount.
ALTER TABLE invoices ADD COLUMN previous_amount_due TEXT;
ALTER TABLE invoices ADD COLUMN previous_due_until INTEGER;
