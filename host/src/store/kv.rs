//! The plugin-scoped key-value store: each plugin reads and writes only keys under its own
//! name. Values may expire; an expired value reads as absent and is swept lazily.

use super::{Store, StoreError};

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
        sqlx::query("DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2 AND expires_at IS NOT NULL AND expires_at <= $3")
            .bind(plugin)
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
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
}
