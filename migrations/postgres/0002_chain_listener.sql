-- Chain listener and matcher additions. Keep in step with
-- migrations/sqlite/0002_chain_listener.sql (same meaning, only types differ).

-- The next BIP32 child index to hand out per extended public key, so that concurrent
-- invoice creations never derive the same address. `xpub_id` is the SHA-256 (hex) of
-- the key's text: the key itself, which reveals every address, is not stored.
CREATE TABLE derivation_counters (
    xpub_id     TEXT PRIMARY KEY,
    next_index  BIGINT NOT NULL
);

-- A listener refreshes its set of watched addresses from the targets created since its
-- last look.
CREATE INDEX payment_targets_chain_created ON payment_targets (chain, created_at);
