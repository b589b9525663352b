-- The network's latest gas price in wei (decimal digits), read by an EVM listener once
-- per new head block; NULL until read and on chains without one. Served to plugins by
-- `chains.status`. Keep in step with migrations/postgres/0011_chain_gas_price.sql.
ALTER TABLE chain_cursors ADD COLUMN gas_price TEXT;
