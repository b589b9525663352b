-- Each ledger user's deposit address per chain (see host/src/ledger). Keep in step with
-- migrations/postgres/0017_ledger_deposit_addresses.sql.
--
-- Derived once per (plugin, user, chain) from the extended public key the operator
-- configured for the plugin and that chain (BIP32 non-hardened child `derivation_index`,
-- handed out by derivation_counters like an invoice's derived address), then kept: the
-- same address on every request. An address belongs to one user only.
CREATE TABLE ledger_deposit_addresses (
    plugin           TEXT NOT NULL,
    user_id          INTEGER NOT NULL REFERENCES ledger_users(id),
    chain            TEXT NOT NULL,
    address          TEXT NOT NULL,
    derivation_index INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (plugin, user_id, chain)
);
CREATE UNIQUE INDEX ledger_deposit_addresses_address ON ledger_deposit_addresses (chain, address);
CREATE INDEX ledger_deposit_addresses_created ON ledger_deposit_addresses (chain, created_at);
