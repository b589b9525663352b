-- On-chain deposits credited to ledger users (see host/src/ledger). Keep in step with
-- migrations/postgres/0016_ledger_deposits.sql.
--
-- One row per transfer (chain, txn_hash, log_index): credited once, reversed when its
-- block leaves the chain, credited again if it is mined anew.
-- status: credited | reversed
CREATE TABLE ledger_deposits (
    id          INTEGER PRIMARY KEY,
    plugin      TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES ledger_users(id),
    chain       TEXT NOT NULL,
    asset       TEXT NOT NULL,
    amount      TEXT NOT NULL,
    address     TEXT NOT NULL,
    txn_hash    TEXT NOT NULL,
    log_index   INTEGER NOT NULL,
    status      TEXT NOT NULL,
    credited_at INTEGER NOT NULL,
    reversed_at INTEGER
);
CREATE UNIQUE INDEX ledger_deposits_transfer ON ledger_deposits (chain, txn_hash, log_index);
CREATE INDEX ledger_deposits_user ON ledger_deposits (plugin, user_id, id);
