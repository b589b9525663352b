-- Plugin isolation. Keep in step with migrations/postgres/0006_plugin_isolation.sql (same
-- meaning; only types differ).
--
-- 1. Every credential records the plugin it was issued for (by that plugin through
--    `merchants.issue-credential`, or by the operator with `polypay merchant create/rotate
--    --plugin NAME`). NULL: issued by the operator without naming a plugin (the generic
--    `api-key`). A plugin lists, signs with, rotates and revokes only its own credentials;
--    it authenticates requests with its own and with the operator's generic ones.
--    Existing rows: a merchant that belongs to a plugin had its credentials issued by or
--    for that plugin, so they become that plugin's. Credentials of operator merchants
--    (merchants.plugin NULL) keep NULL: which plugin issued them was never recorded, so
--    they stay usable for authentication under every plugin, as before, and are no
--    plugin's own; give each dialect its own set with `polypay merchant rotate ID --plugin NAME`.
ALTER TABLE credentials ADD COLUMN plugin TEXT;
UPDATE credentials SET plugin = (SELECT m.plugin FROM merchants m WHERE m.id = credentials.merchant_id);
-- Public ids are unique per (issuing plugin, kind): two plugins' credential sets never
-- collide, and one plugin cannot probe or squat another's public ids.
DROP INDEX credentials_public_id;
CREATE UNIQUE INDEX credentials_public_id ON credentials (COALESCE(plugin, ''), kind, public_id)
    WHERE public_id IS NOT NULL;
CREATE INDEX credentials_merchant_plugin ON credentials (merchant_id, plugin);

-- 2. The plugin-owned JSON of a merchant (WIT `merchant.plugin-data`), one document per
--    (merchant, plugin): dialects sharing an operator merchant never see or overwrite each
--    other's. Existing data of plugin-owned merchants moves here; `merchants.profile` of an
--    operator merchant (written by some unrecorded plugin) stays where it is, readable by
--    the operator only.
CREATE TABLE merchant_plugin_data (
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    plugin       TEXT NOT NULL,
    data         TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, plugin)
);
INSERT INTO merchant_plugin_data (merchant_id, plugin, data, updated_at)
    SELECT id, plugin, profile, updated_at FROM merchants WHERE plugin IS NOT NULL AND profile <> '{}';
UPDATE merchants SET profile = '{}' WHERE plugin IS NOT NULL;

-- 3. What each plugin holds in the key-value store, kept in step with plugin_kv by every
--    write (in the same transaction), so the per-plugin quota is checked without scanning.
--    Expired entries count until the sweep (or a write that needs the room) removes them.
CREATE TABLE plugin_kv_usage (
    plugin   TEXT PRIMARY KEY,
    entries  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
);
INSERT INTO plugin_kv_usage (plugin, entries, bytes)
    SELECT plugin, COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM plugin_kv GROUP BY plugin;
CREATE INDEX plugin_kv_expiry ON plugin_kv (plugin, expires_at) WHERE expires_at IS NOT NULL;
