//! The plugin-scoped key-value store: each plugin reads and writes only keys under its own
//! name. Values may expire; an expired value reads as absent and is swept lazily.

use super::{Backend, Store, StoreError, Tx};

impl Store {
    /// Reads a live value.
    pub async fn kv_get(
        &self,
        plugin: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)")
            .bind(plugin)
            .bind(key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Writes a value, replacing any previous one; `expires_at` in unix ms or never.
    pub async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plugin_kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(plugin)
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes a value only if no live value exists; returns whether it was written. This is
    /// the primitive for "seen before?" checks such as replay protection.
    pub async fn kv_insert_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        delete_if_expired(&mut tx, plugin, key, now).await?;
        let inserted = sqlx::query("INSERT INTO plugin_kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (plugin, key) DO NOTHING")
            .bind(plugin)
            .bind(key)
            .bind(value)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Deletes a value; returns whether one existed.
    pub async fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2")
            .bind(plugin)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Removes expired values; returns how many.
    pub async fn kv_sweep(&self, now: i64) -> Result<u64, StoreError> {
        let swept =
            sqlx::query("DELETE FROM plugin_kv WHERE expires_at IS NOT NULL AND expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(swept.rows_affected())
    }

    /// Adds `delta` to the integer counter at (`plugin`, `key`), creating it at 0 (with
    /// `expires_at`) when absent or expired; `Ok(None)` if the value is not an integer
    /// or the sum overflows. Serialised per key: the row is created first, then locked.
    pub async fn plugin_kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        delete_if_expired(&mut tx, plugin, key, now).await?;
        sqlx::query(
            "INSERT INTO plugin_kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (plugin, key) DO NOTHING",
        )
        .bind(plugin)
        .bind(key)
        .bind(b"0".as_slice())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let lock = if self.backend() == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!("SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2{lock}");
        let value: Vec<u8> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(plugin)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        let next = std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|v| v.checked_add(delta));
        let Some(next) = next else { return Ok(None) };
        sqlx::query("UPDATE plugin_kv SET value = $1 WHERE plugin = $2 AND key = $3")
            .bind(next.to_string().into_bytes())
            .bind(plugin)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(next))
    }
}

/// Removes the value at (`plugin`, `key`) if it has expired, so an insert can take its place.
async fn delete_if_expired(
    tx: &mut Tx,
    plugin: &str,
    key: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2 AND expires_at IS NOT NULL AND expires_at <= $3",
    )
    .bind(plugin)
    .bind(key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
