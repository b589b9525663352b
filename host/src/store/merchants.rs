//! Queries for merchants and credentials. Secrets arrive here already sealed
//! (see [`crate::merchant`]); nothing in this file sees a plaintext secret.
//!
//! Every credential records the plugin it was issued for (`credentials.plugin`, NULL for
//! the operator's generic credentials), and a merchant's plugin-owned JSON is kept per
//! (merchant, plugin) in `merchant_plugin_data`: queries made for a plugin take its name
//! and select only what is its own (see `migrations/*/0006_plugin_isolation.sql`).

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StoreError, Tx};
use serde::Serialize;

/// A merchant as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    /// The plugin the merchant belongs to; `None`: an operator merchant every plugin may serve.
    pub plugin: Option<String>,
    /// The operator's own JSON about the merchant. Plugins keep theirs per plugin
    /// (`store::merchants::plugin_data`) and never read this.
    pub profile: serde_json::Value,
    pub disabled: bool,
    pub created_at: i64,
}

/// A credential without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credential {
    pub id: String,
    pub merchant_id: String,
    /// The plugin it was issued for; `None`: the operator's generic credential.
    pub plugin: Option<String>,
    pub kind: String,
    pub public_id: Option<String>,
    pub created_at: i64,
}

/// A credential row as written: sealed secret and keyed lookup hash.
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    /// The plugin the credential is issued for; `None`: the operator's generic credential.
    pub plugin: Option<String>,
    pub kind: String,
    pub public_id: Option<String>,
    pub lookup_hash: String,
    pub sealed: Vec<u8>,
}

const MERCHANT_COLUMNS: &str = "m.id, m.name, m.plugin, m.profile, m.disabled, m.created_at";
const CREDENTIAL_COLUMNS: &str = "c.id AS c_id, c.merchant_id AS c_merchant_id, c.plugin AS c_plugin, c.kind AS c_kind, c.public_id AS c_public_id, c.created_at AS c_created_at";

/// The live credentials a plugin may authenticate with: its own and the operator's generic
/// ones (`$n` is the plugin's name).
fn usable_by(n: usize) -> String {
    format!("(c.plugin = ${n} OR c.plugin IS NULL)")
}

fn merchant_from_row(row: &AnyRow) -> Result<Merchant, StoreError> {
    let profile: String = row.try_get("profile")?;
    Ok(Merchant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        plugin: row.try_get("plugin")?,
        profile: serde_json::from_str(&profile)
            .map_err(|e| StoreError::Corrupt(format!("merchant profile: {e}")))?,
        disabled: super::read_flag(row, "disabled")?,
        created_at: row.try_get("created_at")?,
    })
}

fn credential_from_row(row: &AnyRow) -> Result<Credential, StoreError> {
    Ok(Credential {
        id: row.try_get("c_id")?,
        merchant_id: row.try_get("c_merchant_id")?,
        plugin: row.try_get("c_plugin")?,
        kind: row.try_get("c_kind")?,
        public_id: row.try_get("c_public_id")?,
        created_at: row.try_get("c_created_at")?,
    })
}

pub async fn insert_merchant(tx: &mut Tx, merchant: &Merchant) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merchants (id, name, plugin, profile, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&merchant.id)
    .bind(&merchant.name)
    .bind(&merchant.plugin)
    .bind(merchant.profile.to_string())
    .bind(super::flag(merchant.disabled))
    .bind(merchant.created_at)
    .bind(merchant.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn insert_credential(
    tx: &mut Tx,
    merchant_id: &str,
    row: &CredentialRow,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO credentials (id, merchant_id, plugin, kind, public_id, lookup_hash, sealed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.id)
    .bind(merchant_id)
    .bind(&row.plugin)
    .bind(&row.kind)
    .bind(&row.public_id)
    .bind(&row.lookup_hash)
    .bind(&row.sealed)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get_merchant(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Merchant>, StoreError> {
    let sql = format!("SELECT {MERCHANT_COLUMNS} FROM merchants m WHERE m.id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(merchant_from_row)
        .transpose()
}

/// The live credentials of a merchant issued for `plugin` (`None`: the operator's generic
/// ones), oldest first.
pub async fn live_credentials(
    conn: &mut AnyConnection,
    merchant_id: &str,
    plugin: Option<&str>,
) -> Result<Vec<Credential>, StoreError> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.merchant_id = $1 AND COALESCE(c.plugin, '') = $2 \
         AND c.revoked_at IS NULL ORDER BY c.created_at, c.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant_id)
        .bind(plugin.unwrap_or_default())
        .fetch_all(conn)
        .await?;
    rows.iter().map(credential_from_row).collect()
}

/// Revokes the live credentials of a merchant issued for `plugin` (`None`: the operator's
/// generic ones). Revoked rows stay for the audit trail but free their lookup hash and
/// public id for reuse.
pub async fn revoke_credentials(
    tx: &mut Tx,
    merchant_id: &str,
    plugin: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    // The unique indexes cover live and revoked rows alike; moving the revoked row's
    // lookup hash and public id out of the way keeps public ids reusable on rotation.
    sqlx::query(
        "UPDATE credentials SET revoked_at = $1, lookup_hash = 'revoked:' || id, \
         public_id = CASE WHEN public_id IS NULL THEN NULL ELSE 'revoked:' || id END \
         WHERE merchant_id = $2 AND COALESCE(plugin, '') = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(merchant_id)
    .bind(plugin.unwrap_or_default())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The JSON `plugin` keeps about a merchant (WIT `merchant.plugin-data`), if it wrote any.
pub async fn plugin_data(
    conn: &mut AnyConnection,
    merchant_id: &str,
    plugin: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT data FROM merchant_plugin_data WHERE merchant_id = $1 AND plugin = $2",
    )
    .bind(merchant_id)
    .bind(plugin)
    .fetch_optional(conn)
    .await?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Corrupt(format!("merchant plugin data: {e}")))
    })
    .transpose()
}

/// Replaces the JSON `plugin` keeps about a merchant.
pub async fn set_plugin_data(
    conn: &mut AnyConnection,
    merchant_id: &str,
    plugin: &str,
    data: &serde_json::Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO merchant_plugin_data (merchant_id, plugin, data, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (merchant_id, plugin) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
    )
    .bind(merchant_id)
    .bind(plugin)
    .bind(data.to_string())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_merchants_with_credentials(
    pool: &sqlx::AnyPool,
) -> Result<Vec<(Merchant, Vec<Credential>)>, StoreError> {
    let sql = format!("SELECT {MERCHANT_COLUMNS} FROM merchants m ORDER BY m.created_at, m.id");
    let merchants: Vec<Merchant> = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
        .iter()
        .map(merchant_from_row)
        .collect::<Result<_, _>>()?;
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.revoked_at IS NULL ORDER BY c.created_at, c.id"
    );
    let credentials: Vec<Credential> = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
        .iter()
        .map(credential_from_row)
        .collect::<Result<_, _>>()?;
    Ok(merchants
        .into_iter()
        .map(|m| {
            let own = credentials
                .iter()
                .filter(|c| c.merchant_id == m.id)
                .cloned()
                .collect();
            (m, own)
        })
        .collect())
}

/// The live credential with this keyed hash that `plugin` may authenticate with (its own or
/// the operator's generic one), its merchant, and its sealed secret.
pub async fn find_by_lookup_hash(
    pool: &sqlx::AnyPool,
    plugin: &str,
    kind: &str,
    lookup_hash: &str,
) -> Result<Option<(Merchant, Credential, Vec<u8>)>, StoreError> {
    let sql = format!(
        "SELECT {MERCHANT_COLUMNS}, {CREDENTIAL_COLUMNS}, c.sealed FROM credentials c JOIN merchants m ON m.id = c.merchant_id \
         WHERE c.kind = $1 AND c.lookup_hash = $2 AND c.revoked_at IS NULL AND {}",
        usable_by(3)
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(kind)
        .bind(lookup_hash)
        .bind(plugin)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        merchant_from_row(&row)?,
        credential_from_row(&row)?,
        row.try_get("sealed")?,
    )))
}

/// The live credential of `kind` with this public id that `plugin` may authenticate with,
/// and its merchant. Public ids are unique per issuing plugin; when `plugin` and the
/// operator both issued the same one, the plugin's own wins.
pub async fn find_by_public_id(
    pool: &sqlx::AnyPool,
    plugin: &str,
    kind: &str,
    public_id: &str,
) -> Result<Option<(Merchant, Credential)>, StoreError> {
    let sql = format!(
        "SELECT {MERCHANT_COLUMNS}, {CREDENTIAL_COLUMNS} FROM credentials c JOIN merchants m ON m.id = c.merchant_id \
         WHERE c.kind = $1 AND c.public_id = $2 AND c.revoked_at IS NULL AND {} \
         ORDER BY CASE WHEN c.plugin IS NULL THEN 1 ELSE 0 END LIMIT 1",
        usable_by(3)
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(kind)
        .bind(public_id)
        .bind(plugin)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((merchant_from_row(&row)?, credential_from_row(&row)?)))
}

/// The sealed secret of a live credential.
pub async fn sealed_secret(
    pool: &sqlx::AnyPool,
    credential_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT sealed FROM credentials WHERE id = $1 AND revoked_at IS NULL")
            .bind(credential_id)
            .fetch_optional(pool)
            .await?,
    )
}
