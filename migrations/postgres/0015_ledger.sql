-- The ledger of custodial dialects (see host/src/ledger). Keep in step with
-- migrations/sqlite/0015_ledger.sql.
--
-- Ids of users, orders and items are 64-bit snowflake-style integers made by the host.
-- Money is base units as decimal TEXT, summed in Rust, like everywhere else.

-- A user of one plugin; optionally the payee of one merchant for that plugin.
CREATE TABLE ledger_users (
    id            BIGINT PRIMARY KEY,
    plugin        TEXT NOT NULL,
    merchant_id   TEXT,
    national_code TEXT,
    mobile        TEXT,
    email         TEXT,
    plugin_data   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_users_merchant ON ledger_users (plugin, merchant_id)
    WHERE merchant_id IS NOT NULL;

-- One account per (plugin, owner, chain, asset, kind). owner is a user id, or 0 for the
-- plugin's external accounts.
-- kind: available | locked (credit-normal, a user's money) | debt (debit-normal, what a
-- user owes after a spent deposit was reversed) | external (debit-normal: deposits and
-- operator credits) | outflow (credit-normal: reversals and operator debits). balance is the cached normal-side balance, never negative, updated in
-- the transaction that writes the postings.
CREATE TABLE ledger_accounts (
    id         BIGINT PRIMARY KEY,
    plugin     TEXT NOT NULL,
    owner      BIGINT NOT NULL,
    chain      TEXT NOT NULL,
    asset      TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('available', 'locked', 'debt', 'external', 'outflow')),
    balance    TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_accounts_key ON ledger_accounts (plugin, owner, chain, asset, kind);

-- Orders paid from balances.
-- status: waiting | processing | completed | expired | cancelled
CREATE TABLE ledger_orders (
    id              BIGINT PRIMARY KEY,
    plugin          TEXT NOT NULL,
    payer_user_id   BIGINT NOT NULL REFERENCES ledger_users(id),
    payee_user_id   BIGINT NOT NULL REFERENCES ledger_users(id),
    merchant_id     TEXT,
    client_order_id TEXT NOT NULL,
    status          TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    paid_at         BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    notify_url      TEXT,
    plugin_data     TEXT NOT NULL
);
CREATE UNIQUE INDEX ledger_orders_client ON ledger_orders (payee_user_id, client_order_id);
CREATE INDEX ledger_orders_payer ON ledger_orders (plugin, payer_user_id, id);
CREATE INDEX ledger_orders_due ON ledger_orders (expires_at)
    WHERE status IN ('waiting', 'processing');

CREATE TABLE ledger_order_items (
    id       BIGINT PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES ledger_orders(id),
    position INTEGER NOT NULL,
    pay_type TEXT NOT NULL CHECK (pay_type IN ('pay', 'prepay')),
    chain    TEXT NOT NULL,
    asset    TEXT NOT NULL,
    decimals INTEGER NOT NULL,
    amount   TEXT NOT NULL,
    paid     TEXT NOT NULL,
    locked   TEXT NOT NULL,
    unlocked TEXT NOT NULL,
    refunded TEXT NOT NULL
);
CREATE INDEX ledger_order_items_order ON ledger_order_items (order_id, position);

-- Postings: one row per line of a balanced entry (sum of debits = sum of credits per
-- entry_id, per chain and asset). Never updated or deleted.
CREATE TABLE ledger_postings (
    id         BIGINT PRIMARY KEY,
    entry_id   BIGINT NOT NULL,
    plugin     TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES ledger_accounts(id),
    side       TEXT NOT NULL CHECK (side IN ('debit', 'credit')),
    amount     TEXT NOT NULL,
    -- pay | lock | settle | unlock | refund | deposit | reversal | adjustment
    memo       TEXT NOT NULL,
    order_id   BIGINT,
    item_id    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_postings_account ON ledger_postings (account_id, id);
CREATE INDEX ledger_postings_entry ON ledger_postings (entry_id);
CREATE INDEX ledger_postings_order ON ledger_postings (order_id) WHERE order_id IS NOT NULL;
