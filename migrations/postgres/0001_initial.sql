-- polypay schema, PostgreSQL flavour. Keep in step with migrations/sqlite/0001_initial.sql:
-- the two files have the same tables, columns and constraints; only types differ.
-- Conventions: ids are TEXT (UUIDv4 unless stated), timestamps are unix milliseconds
-- (BIGINT), money is a non-negative integer of base units as a decimal TEXT, JSON is TEXT,
-- flags are integers 0/1 (sqlx's Any driver maps no boolean type on SQLite).

CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- the plugin that created the merchant (NULL: created by the operator for any plugin)
    plugin      TEXT,
    -- plugin-owned profile JSON (business details a dialect keeps about its merchant)
    profile     TEXT NOT NULL DEFAULT '{}',
    disabled    BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE credentials (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    -- label chosen by the dialect: "bearer", "api-key", "api-secret", "secure-key", ...
    kind         TEXT NOT NULL,
    -- identifier presented in clear next to a signature (an app id), if the scheme has one
    public_id    TEXT,
    -- keyed hash (HMAC-SHA256 under a key derived from the master key) of the secret, hex;
    -- lets a presented secret be found without decrypting every row
    lookup_hash  TEXT NOT NULL,
    -- AEAD ciphertext of the secret: 24-byte nonce || ciphertext+tag
    sealed       BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX credentials_lookup ON credentials (kind, lookup_hash);
CREATE UNIQUE INDEX credentials_public_id ON credentials (kind, public_id) WHERE public_id IS NOT NULL;
CREATE INDEX credentials_merchant ON credentials (merchant_id);

CREATE TABLE invoices (
    id                      TEXT PRIMARY KEY,
    merchant_id             TEXT NOT NULL REFERENCES merchants(id),
    -- the plugin that created the invoice; a plugin sees only its own invoices
    plugin                  TEXT NOT NULL,
    merchant_order_id       TEXT,
    status                  TEXT NOT NULL,
    underpaid               BIGINT NOT NULL DEFAULT 0 CHECK (underpaid IN (0, 1)),
    overpaid                BIGINT NOT NULL DEFAULT 0 CHECK (overpaid IN (0, 1)),
    paid_late               BIGINT NOT NULL DEFAULT 0 CHECK (paid_late IN (0, 1)),
    chain                   TEXT NOT NULL,
    asset                   TEXT NOT NULL,
    decimals                BIGINT NOT NULL,
    amount_due              TEXT NOT NULL,
    amount_paid             TEXT NOT NULL DEFAULT '0',
    amount_confirmed        TEXT NOT NULL DEFAULT '0',
    confirmations_required  BIGINT NOT NULL,
    strategy                TEXT NOT NULL,
    pay_address             TEXT NOT NULL,
    -- what the payment names: the invoice reference in a payment-contract event
    pay_reference           TEXT,
    txn_hash                TEXT,
    notify_url              TEXT,
    return_url              TEXT,
    plugin_data             TEXT NOT NULL DEFAULT '{}',
    expires_at              BIGINT NOT NULL,
    monitor_until           BIGINT NOT NULL,
    first_paid_at           BIGINT,
    paid_at                 BIGINT,
    submitted_at            BIGINT,
    cancelled_at            BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    -- bumped by every state change: optimistic concurrency between listeners and APIs
    version                 BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX invoices_order_id ON invoices (plugin, merchant_id, merchant_order_id)
    WHERE merchant_order_id IS NOT NULL;
CREATE INDEX invoices_merchant_created ON invoices (merchant_id, created_at);
CREATE INDEX invoices_status_expires ON invoices (status, expires_at);
CREATE INDEX invoices_pay_reference ON invoices (chain, pay_reference) WHERE pay_reference IS NOT NULL;

-- Where a payment for an invoice is expected. `active` reservations are unique per
-- (chain, asset, address, amount) so two open unique-amount invoices never collide.
CREATE TABLE payment_targets (
    id               TEXT PRIMARY KEY,
    invoice_id       TEXT NOT NULL REFERENCES invoices(id),
    chain            TEXT NOT NULL,
    asset            TEXT NOT NULL,
    address          TEXT NOT NULL,
    strategy         TEXT NOT NULL,
    -- the exact amount expected (unique-amount), NULL when any amount may match
    amount           TEXT,
    -- BIP32 non-hardened index for derived-address targets
    derivation_index BIGINT,
    active           BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at       BIGINT NOT NULL,
    released_at      BIGINT
);
CREATE UNIQUE INDEX payment_targets_unique_amount ON payment_targets (chain, asset, address, amount)
    WHERE active = 1 AND amount IS NOT NULL;
CREATE INDEX payment_targets_address ON payment_targets (chain, address) WHERE active = 1;
CREATE INDEX payment_targets_invoice ON payment_targets (invoice_id);

-- Every transfer a listener saw to a watched address, stored once.
CREATE TABLE observed_transfers (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain         TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    -- log index of the Transfer/Pay event; -1 for a native transfer
    log_index     BIGINT NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    TEXT NOT NULL,
    from_address  TEXT NOT NULL,
    to_address    TEXT NOT NULL,
    asset         TEXT NOT NULL,
    amount        TEXT NOT NULL,
    reference     TEXT,
    invoice_id    TEXT REFERENCES invoices(id),
    removed       BIGINT NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)),
    observed_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX observed_transfers_once ON observed_transfers (chain, tx_hash, log_index);
CREATE INDEX observed_transfers_invoice ON observed_transfers (invoice_id);
CREATE INDEX observed_transfers_block ON observed_transfers (chain, block_number);

-- Hashes of processed blocks, to detect reorgs by parent hash.
CREATE TABLE chain_blocks (
    chain        TEXT NOT NULL,
    number       BIGINT NOT NULL,
    hash         TEXT NOT NULL,
    parent_hash  TEXT NOT NULL,
    PRIMARY KEY (chain, number)
);

CREATE TABLE chain_cursors (
    chain           TEXT PRIMARY KEY,
    -- the highest block fully processed (NULL: not started)
    processed_block BIGINT,
    head_block      BIGINT,
    updated_at      BIGINT NOT NULL
);

-- Outbox: written in the same transaction as the state change it reports.
CREATE TABLE outbox_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id      TEXT NOT NULL REFERENCES invoices(id),
    merchant_id     TEXT NOT NULL,
    plugin          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- pending | delivering | delivered | dead | skipped
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox_events (state, next_attempt_at);
CREATE INDEX outbox_invoice ON outbox_events (invoice_id, id);

CREATE TABLE webhook_attempts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       BIGINT NOT NULL REFERENCES outbox_events(id),
    attempt        BIGINT NOT NULL,
    url            TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    latency_ms     BIGINT,
    status_code    BIGINT,
    response_body  TEXT,
    error          TEXT,
    accepted       BIGINT NOT NULL DEFAULT 0 CHECK (accepted IN (0, 1))
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, attempt);

-- Plugin-scoped key-value store with optional expiry.
CREATE TABLE plugin_kv (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BYTEA NOT NULL,
    expires_at  BIGINT,
    PRIMARY KEY (plugin, key)
);
