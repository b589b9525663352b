//! Queries of the two-factor service (`crate::two_factor`): TOTP seeds (sealed), one-time
//! code challenges (hashed), failure counts per context, and the outbox event that hands a
//! code to the operator's gateway. Every query names the plugin.

use sqlx::{AnyConnection, Row};

use super::{Backend, StoreError};

/// A subject's TOTP row.
pub struct TotpRow {
    pub sealed: Vec<u8>,
    pub last_step: Option<i64>,
}

pub async fn insert_totp(
    conn: &mut AnyConnection,
    plugin: &str,
    subject: &str,
    sealed: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO two_factor_totp (plugin, subject, sealed, last_step, created_at) \
         VALUES ($1, $2, $3, NULL, $4)",
    )
    .bind(plugin)
    .bind(subject)
    .bind(sealed.to_vec())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The subject's seed; with `for_update` (PostgreSQL) the row stays locked until the
/// transaction ends.
pub async fn totp(
    conn: &mut AnyConnection,
    plugin: &str,
    subject: &str,
    for_update: bool,
) -> Result<Option<TotpRow>, StoreError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT sealed, last_step FROM two_factor_totp WHERE plugin = $1 AND subject = $2{lock}"
    )))
    .bind(plugin)
    .bind(subject)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(TotpRow {
            sealed: row.try_get("sealed")?,
            last_step: row.try_get("last_step")?,
        })
    })
    .transpose()
}

/// Records `step` as the subject's last accepted step, unless it is not newer than the
/// one stored (then false: the code was used already).
pub async fn advance_totp_step(
    conn: &mut AnyConnection,
    plugin: &str,
    subject: &str,
    step: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE two_factor_totp SET last_step = $1 \
         WHERE plugin = $2 AND subject = $3 AND (last_step IS NULL OR last_step < $4)",
    )
    .bind(step)
    .bind(plugin)
    .bind(subject)
    .bind(step)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_totp(
    conn: &mut AnyConnection,
    plugin: &str,
    subject: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM two_factor_totp WHERE plugin = $1 AND subject = $2")
        .bind(plugin)
        .bind(subject)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes sure the context has a row, takes it (PostgreSQL: `FOR UPDATE`; SQLite's
/// immediate transaction already holds the write lock), and returns its failures.
pub async fn lock_context(
    conn: &mut AnyConnection,
    backend: Backend,
    plugin: &str,
    subject: &str,
    context: &str,
    now: i64,
) -> Result<u32, StoreError> {
    sqlx::query(
        "INSERT INTO two_factor_contexts (plugin, subject, context, failures, updated_at) \
         VALUES ($1, $2, $3, 0, $4) ON CONFLICT (plugin, subject, context) DO NOTHING",
    )
    .bind(plugin)
    .bind(subject)
    .bind(context)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let lock = if backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let failures: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT failures FROM two_factor_contexts \
         WHERE plugin = $1 AND subject = $2 AND context = $3{lock}"
    )))
    .bind(plugin)
    .bind(subject)
    .bind(context)
    .fetch_one(conn)
    .await?;
    u32::try_from(failures).map_err(|_| StoreError::Corrupt(format!("failures {failures}")))
}

pub async fn set_failures(
    conn: &mut AnyConnection,
    plugin: &str,
    subject: &str,
    context: &str,
    failures: u32,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE two_factor_contexts SET failures = $1, updated_at = $2 \
         WHERE plugin = $3 AND subject = $4 AND context = $5",
    )
    .bind(i64::from(failures))
    .bind(now)
    .bind(plugin)
    .bind(subject)
    .bind(context)
    .execute(conn)
    .await?;
    Ok(())
}

/// Failures recorded in a context (0 when it has none).
pub async fn context_failures(
    conn: &mut AnyConnection,
    plugin: &str,
    subject: &str,
    context: &str,
) -> Result<u32, StoreError> {
    let failures: Option<i64> = sqlx::query_scalar(
        "SELECT failures FROM two_factor_contexts WHERE plugin = $1 AND subject = $2 AND context = $3",
    )
    .bind(plugin)
    .bind(subject)
    .bind(context)
    .fetch_optional(conn)
    .await?;
    let failures = failures.unwrap_or(0);
    u32::try_from(failures).map_err(|_| StoreError::Corrupt(format!("failures {failures}")))
}

/// How many codes the subject was sent since `since`, and when the oldest of them was.
pub async fn codes_sent_since(
    conn: &mut AnyConnection,
    plugin: &str,
    subject: &str,
    since: i64,
) -> Result<(u64, Option<i64>), StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM two_factor_codes \
         WHERE plugin = $1 AND subject = $2 AND created_at > $3",
    )
    .bind(plugin)
    .bind(subject)
    .bind(since)
    .fetch_one(conn)
    .await?;
    let n: i64 = row.try_get("n")?;
    Ok((n.max(0) as u64, row.try_get("oldest")?))
}

/// A challenge to store.
pub struct NewChallenge<'a> {
    pub id: &'a str,
    pub plugin: &'a str,
    pub subject: &'a str,
    pub context: &'a str,
    pub channel: &'a str,
    pub code_hash: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_challenge(
    conn: &mut AnyConnection,
    c: &NewChallenge<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO two_factor_codes \
         (id, plugin, subject, context, channel, code_hash, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
    )
    .bind(c.id)
    .bind(c.plugin)
    .bind(c.subject)
    .bind(c.context)
    .bind(c.channel)
    .bind(c.code_hash)
    .bind(c.created_at)
    .bind(c.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A stored challenge.
pub struct ChallengeRow {
    pub plugin: String,
    pub subject: String,
    pub context: String,
    pub code_hash: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub async fn challenge(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ChallengeRow>, StoreError> {
    let row = sqlx::query(
        "SELECT plugin, subject, context, code_hash, expires_at, used_at \
         FROM two_factor_codes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(ChallengeRow {
            plugin: row.try_get("plugin")?,
            subject: row.try_get("subject")?,
            context: row.try_get("context")?,
            code_hash: row.try_get("code_hash")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
        })
    })
    .transpose()
}

/// Marks a challenge used; false when it already was.
pub async fn use_challenge(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE two_factor_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Queues the delivery of a code: an outbox event of the calling plugin that concerns no
/// merchant and no invoice (rendered by the host, not the plugin).
pub async fn insert_delivery_event(
    conn: &mut AnyConnection,
    plugin: &str,
    payload: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox_events (merchant_id, plugin, kind, payload, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind("")
    .bind(plugin)
    .bind(crate::two_factor::DELIVERY_EVENT_KIND)
    .bind(payload)
    .bind(now)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}
