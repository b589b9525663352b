//! The plugin-scoped key-value store: each plugin reads and writes only keys under its own
//! name. Values may expire; an expired value reads as absent.
//!
//! Quota: each plugin holds at most [`KvQuota`] entries and value bytes. What a plugin holds
//! is kept in `plugin_kv_usage`, updated by every write in the same transaction, so the
//! check costs one row, not a scan. Every write locks its plugin's usage row first (the
//! order every writer and the sweep follow, so they never deadlock); on SQLite the
//! immediate transaction already serialises writers. Expired entries count until they are
//! removed: by [`Store::kv_sweep`] (the plugin runtime's maintenance task runs it), or by a
//! write that would exceed the quota, which first removes its plugin's expired entries.

use sqlx::Row;

use super::{Backend, Store, StoreError, Tx};

/// What one plugin may hold in the key-value store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    pub max_entries: u64,
    /// Sum of value lengths.
    pub max_bytes: u64,
}

impl KvQuota {
    /// No practical limit (operator tools and tests of other behaviour).
    pub const UNLIMITED: KvQuota = KvQuota {
        max_entries: u64::MAX,
        max_bytes: u64::MAX,
    };
}

/// Why a key-value write was refused.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error(
        "the plugin's key-value quota is used up ({entries} of {max_entries} entries, {bytes} of {max_bytes} bytes)"
    )]
    QuotaExceeded {
        entries: u64,
        max_entries: u64,
        bytes: u64,
        max_bytes: u64,
    },
    /// `increment` on a value that is not a decimal integer, or an overflowing sum.
    #[error("the value is not an integer")]
    NotAnInteger,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for KvError {
    fn from(e: sqlx::Error) -> Self {
        KvError::Store(e.into())
    }
}

/// A plugin's usage, read under its lock.
#[derive(Debug, Clone, Copy)]
struct Usage {
    entries: i64,
    bytes: i64,
}

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
        quota: KvQuota,
        now: i64,
    ) -> Result<(), KvError> {
        let mut tx = self.begin().await?;
        let usage = self.lock_usage(&mut tx, plugin).await?;
        // An expired value is replaced like an absent one; removing it first also keeps it
        // out of the way of `make_room`, which removes expired entries.
        let usage = delete_if_expired(&mut tx, plugin, key, usage, now).await?;
        let old = value_len(&mut tx, plugin, key).await?;
        put(
            &mut tx, plugin, key, value, expires_at, usage, old, quota, now,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
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
        quota: KvQuota,
        now: i64,
    ) -> Result<bool, KvError> {
        let mut tx = self.begin().await?;
        let usage = self.lock_usage(&mut tx, plugin).await?;
        let usage = delete_if_expired(&mut tx, plugin, key, usage, now).await?;
        if value_len(&mut tx, plugin, key).await?.is_some() {
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(false);
        }
        put(
            &mut tx, plugin, key, value, expires_at, usage, None, quota, now,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(true)
    }

    /// Deletes a value; returns whether one existed.
    pub async fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let usage = self.lock_usage(&mut tx, plugin).await?;
        let deleted = sqlx::query(
            "DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2 RETURNING CAST(LENGTH(value) AS BIGINT) AS len",
        )
        .bind(plugin)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let existed = deleted.is_some();
        if let Some(row) = deleted {
            let bytes: i64 = row.try_get("len")?;
            save_usage(
                &mut tx,
                plugin,
                Usage {
                    entries: usage.entries - 1,
                    bytes: usage.bytes - bytes,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(existed)
    }

    /// Removes every expired value, one plugin at a time; returns how many.
    pub async fn kv_sweep(&self, now: i64) -> Result<u64, StoreError> {
        let plugins: Vec<String> =
            sqlx::query_scalar("SELECT plugin FROM plugin_kv_usage WHERE entries > 0")
                .fetch_all(&self.pool)
                .await?;
        let mut swept = 0;
        for plugin in plugins {
            let mut tx = self.begin().await?;
            let usage = self.lock_usage(&mut tx, &plugin).await?;
            let (removed, usage) = delete_expired(&mut tx, &plugin, usage, now).await?;
            save_usage(&mut tx, &plugin, usage).await?;
            tx.commit().await?;
            swept += removed;
        }
        Ok(swept)
    }

    /// Entries and value bytes `plugin` holds, expired ones included until removed.
    pub async fn kv_usage(&self, plugin: &str) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query("SELECT entries, bytes FROM plugin_kv_usage WHERE plugin = $1")
            .bind(plugin)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => (
                u64::try_from(row.try_get::<i64, _>("entries")?).unwrap_or(0),
                u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0),
            ),
            None => (0, 0),
        })
    }

    /// Adds `delta` to the integer counter at (`plugin`, `key`), creating it at 0 (with
    /// `expires_at`) when absent or expired. A value that is not a decimal integer, or a
    /// sum that overflows, is [`KvError::NotAnInteger`].
    pub async fn plugin_kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<i64>,
        quota: KvQuota,
        now: i64,
    ) -> Result<i64, KvError> {
        let mut tx = self.begin().await?;
        let usage = self.lock_usage(&mut tx, plugin).await?;
        let usage = delete_if_expired(&mut tx, plugin, key, usage, now).await?;
        let current: Option<(Vec<u8>, Option<i64>)> =
            sqlx::query("SELECT value, expires_at FROM plugin_kv WHERE plugin = $1 AND key = $2")
                .bind(plugin)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| {
                    Ok::<_, sqlx::Error>((row.try_get("value")?, row.try_get("expires_at")?))
                })
                .transpose()?;
        let (old_value, expiry) = match current {
            Some((value, expiry)) => (Some(value), expiry),
            None => (None, expires_at),
        };
        let next = match &old_value {
            None => Some(delta),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(|v| v.checked_add(delta)),
        };
        let Some(next) = next else {
            return Err(KvError::NotAnInteger);
        };
        let text = next.to_string().into_bytes();
        let old_len = old_value.as_ref().map(|v| len(v));
        put(
            &mut tx, plugin, key, &text, expiry, usage, old_len, quota, now,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(next)
    }

    /// Locks `plugin`'s usage row (creating it) and reads it.
    async fn lock_usage(&self, tx: &mut Tx, plugin: &str) -> Result<Usage, StoreError> {
        sqlx::query(
            "INSERT INTO plugin_kv_usage (plugin, entries, bytes) VALUES ($1, 0, 0) ON CONFLICT (plugin) DO NOTHING",
        )
        .bind(plugin)
        .execute(&mut **tx)
        .await?;
        let lock = if self.backend() == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!("SELECT entries, bytes FROM plugin_kv_usage WHERE plugin = $1{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(plugin)
            .fetch_one(&mut **tx)
            .await?;
        Ok(Usage {
            entries: row.try_get("entries")?,
            bytes: row.try_get("bytes")?,
        })
    }
}

fn len(value: &[u8]) -> i64 {
    i64::try_from(value.len()).unwrap_or(i64::MAX)
}

/// How many value bytes replacing a value of `old` bytes (or none) with `new` adds.
fn change(old: Option<i64>, new: &[u8]) -> i64 {
    len(new) - old.unwrap_or(0)
}

/// Writes `value` at (`plugin`, `key`), which held a value of `old` bytes (or none),
/// within `quota`, and saves the plugin's usage.
#[allow(clippy::too_many_arguments)]
async fn put(
    tx: &mut Tx,
    plugin: &str,
    key: &str,
    value: &[u8],
    expires_at: Option<i64>,
    usage: Usage,
    old: Option<i64>,
    quota: KvQuota,
    now: i64,
) -> Result<(), KvError> {
    let usage = make_room(
        tx,
        plugin,
        usage,
        old.is_none(),
        change(old, value),
        quota,
        now,
    )
    .await?;
    sqlx::query(
        "INSERT INTO plugin_kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    )
    .bind(plugin)
    .bind(key)
    .bind(value)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    let usage = Usage {
        entries: usage.entries + i64::from(old.is_none()),
        bytes: usage.bytes + change(old, value),
    };
    save_usage(tx, plugin, usage).await?;
    Ok(())
}

/// The length of the value at (`plugin`, `key`), live or expired, if there is one.
async fn value_len(tx: &mut Tx, plugin: &str, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(LENGTH(value) AS BIGINT) FROM plugin_kv WHERE plugin = $1 AND key = $2",
    )
    .bind(plugin)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Checks that `usage` plus one more entry (if `new_entry`) and `more_bytes` fits `quota`;
/// if not, removes the plugin's expired entries and checks again. Returns the usage then.
async fn make_room(
    tx: &mut Tx,
    plugin: &str,
    usage: Usage,
    new_entry: bool,
    more_bytes: i64,
    quota: KvQuota,
    now: i64,
) -> Result<Usage, KvError> {
    let fits = |u: Usage| {
        let entries = u.entries + i64::from(new_entry);
        let bytes = u.bytes + more_bytes;
        (!new_entry || u64::try_from(entries).unwrap_or(0) <= quota.max_entries)
            && (more_bytes <= 0 || u64::try_from(bytes).unwrap_or(0) <= quota.max_bytes)
    };
    if fits(usage) {
        return Ok(usage);
    }
    let (_, usage) = delete_expired(tx, plugin, usage, now).await?;
    if fits(usage) {
        return Ok(usage);
    }
    Err(KvError::QuotaExceeded {
        entries: u64::try_from(usage.entries).unwrap_or(0),
        max_entries: quota.max_entries,
        bytes: u64::try_from(usage.bytes).unwrap_or(0),
        max_bytes: quota.max_bytes,
    })
}

/// Removes `plugin`'s expired entries; returns how many and the usage after.
async fn delete_expired(
    tx: &mut Tx,
    plugin: &str,
    usage: Usage,
    now: i64,
) -> Result<(u64, Usage), StoreError> {
    let removed = sqlx::query(
        "DELETE FROM plugin_kv WHERE plugin = $1 AND expires_at IS NOT NULL AND expires_at <= $2 \
         RETURNING CAST(LENGTH(value) AS BIGINT) AS len",
    )
    .bind(plugin)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let mut bytes = 0i64;
    for row in &removed {
        bytes += row.try_get::<i64, _>("len")?;
    }
    let count = removed.len() as i64;
    Ok((
        count as u64,
        Usage {
            entries: usage.entries - count,
            bytes: usage.bytes - bytes,
        },
    ))
}

/// Removes the value at (`plugin`, `key`) if it has expired, so an insert can take its place.
async fn delete_if_expired(
    tx: &mut Tx,
    plugin: &str,
    key: &str,
    usage: Usage,
    now: i64,
) -> Result<Usage, StoreError> {
    let removed = sqlx::query(
        "DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2 AND expires_at IS NOT NULL AND expires_at <= $3 \
         RETURNING CAST(LENGTH(value) AS BIGINT) AS len",
    )
    .bind(plugin)
    .bind(key)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match removed {
        Some(row) => Usage {
            entries: usage.entries - 1,
            bytes: usage.bytes - row.try_get::<i64, _>("len")?,
        },
        None => usage,
    })
}

async fn save_usage(tx: &mut Tx, plugin: &str, usage: Usage) -> Result<(), StoreError> {
    sqlx::query("UPDATE plugin_kv_usage SET entries = $1, bytes = $2 WHERE plugin = $3")
        .bind(usage.entries.max(0))
        .bind(usage.bytes.max(0))
        .bind(plugin)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
