-- Two-factor confirmation (the plugins' `two-factor` capability, host/src/two_factor.rs).
-- Every row belongs to a plugin: a subject (the plugin's user id) and a context (what is
-- being confirmed, e.g. an order id) mean something only within that plugin.

-- A subject's TOTP seed, sealed like merchant secrets (XChaCha20-Poly1305 under a key
-- derived from the master key, associated data naming plugin and subject), and the last
-- time step accepted: a step at or before it is never accepted again.
CREATE TABLE two_factor_totp (
    plugin       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    sealed       BLOB NOT NULL,
    last_step    INTEGER,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (plugin, subject)
);

-- One-time codes sent by SMS or e-mail: only a keyed hash (HMAC-SHA256 under a key
-- derived from the master key) of the code is kept.
CREATE TABLE two_factor_codes (
    -- the challenge id handed to the plugin: a decimal 64-bit id
    id           TEXT PRIMARY KEY,
    plugin       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    context      TEXT NOT NULL,
    -- mobile | email
    channel      TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX two_factor_codes_subject ON two_factor_codes (plugin, subject, created_at);

-- Failed verifications per (plugin, subject, context); three exhaust the context.
CREATE TABLE two_factor_contexts (
    plugin       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    context      TEXT NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (plugin, subject, context)
);
