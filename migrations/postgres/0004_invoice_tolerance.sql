-- Underpayment accepted as full payment, in base units (from the asset's payment_tolerance).
ALTER TABLE invoices ADD COLUMN tolerance TEXT NOT NULL DEFAULT '0';
