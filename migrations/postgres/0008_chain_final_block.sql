-- The newest block a listener has settled invoices against as irreversible (TRON's
-- solidified block, minus its configured extra depth); NULL on chains without one. A
-- listener never settles against a lower one, even after a restart on a node whose
-- solidified view lags. Keep in step with migrations/sqlite/0008_chain_final_block.sql.
ALTER TABLE chain_cursors ADD COLUMN final_block BIGINT;
