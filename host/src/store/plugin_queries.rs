//! Queries the plugin runtime (`crate::plugin`) needs beyond the domain queries:
//! scoped invoice listing and statistics, single-credential changes, merchant
//! updates and the plugin key-value counter. (Webhook summaries and
//! statistics come from `store::outbox`.) Every invoice query here is
//! scoped by plugin (and by merchant when given): scoping is part of the SQL,
//! not a filter applied afterwards.

use sqlx::Row;

use super::invoices::{INVOICE_COLUMNS, invoice_from_row};
use super::merchants::Merchant;
use super::merchants::{
    CredentialRow, get_merchant, insert_credential, plugin_data, set_plugin_data,
};
use super::{Store, StoreError};
use crate::invoice::Invoice;
use crate::invoice::InvoiceStatus;

/// Which invoices a listing or statistic covers (all conditions must hold).
#[derive(Debug, Clone, Default)]
pub struct InvoiceQuery {
    pub plugin: String,
    /// `None`: every merchant's invoices of the plugin.
    pub merchant_id: Option<String>,
    /// Empty: any status.
    pub statuses: Vec<InvoiceStatus>,
    pub chain: Option<String>,
    pub asset: Option<String>,
    pub created_from: Option<i64>,
    /// Exclusive.
    pub created_to: Option<i64>,
    pub order_id_prefix: Option<String>,
}

/// Where a page starts, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    First,
    /// 1-based page number.
    Number(u32),
    /// Strictly older than this invoice.
    After(String),
    /// Strictly newer than this invoice (returned newest first).
    Before(String),
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct InvoicePageRows {
    pub items: Vec<Invoice>,
    pub total: u64,
    /// Whether invoices older than the last item exist.
    pub more: bool,
}

/// Counts per status plus paid volume per (chain, asset, decimals).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceCounts {
    pub by_status: Vec<(InvoiceStatus, u64)>,
    /// (chain, asset, decimals, paid count, summed amount paid in base units).
    pub volumes: Vec<(String, String, u8, u64, crate::invoice::Amount)>,
}

enum Bind {
    Text(String),
    Int(i64),
}

/// The WHERE clause selecting `q`, its placeholders numbered after those already in `binds`.
fn where_clause(q: &InvoiceQuery, binds: &mut Vec<Bind>) -> String {
    let mut conds = Vec::new();
    fn push(conds: &mut Vec<String>, binds: &mut Vec<Bind>, column_op: &str, b: Bind) {
        binds.push(b);
        conds.push(format!("{column_op} ${}", binds.len()));
    }
    push(&mut conds, binds, "plugin =", Bind::Text(q.plugin.clone()));
    if let Some(m) = &q.merchant_id {
        push(&mut conds, binds, "merchant_id =", Bind::Text(m.clone()));
    }
    if !q.statuses.is_empty() {
        let mut alts = Vec::new();
        for s in &q.statuses {
            binds.push(Bind::Text(s.as_str().to_owned()));
            alts.push(format!("status = ${}", binds.len()));
        }
        conds.push(format!("({})", alts.join(" OR ")));
    }
    if let Some(c) = &q.chain {
        push(&mut conds, binds, "chain =", Bind::Text(c.clone()));
    }
    if let Some(a) = &q.asset {
        push(&mut conds, binds, "asset =", Bind::Text(a.clone()));
    }
    if let Some(t) = q.created_from {
        push(&mut conds, binds, "created_at >=", Bind::Int(t));
    }
    if let Some(t) = q.created_to {
        push(&mut conds, binds, "created_at <", Bind::Int(t));
    }
    if let Some(p) = &q.order_id_prefix {
        // substr/length rather than LIKE: no escaping of `%` and `_` needed.
        binds.push(Bind::Text(p.clone()));
        let n = binds.len();
        conds.push(format!("substr(merchant_order_id, 1, length(${n})) = ${n}"));
    }
    conds.join(" AND ")
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for b in binds {
        query = match b {
            Bind::Text(t) => query.bind(t.as_str()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    query
}

impl Store {
    /// The newest invoice of `plugin` (and of `merchant_id`, when given) with this order id.
    pub async fn plugin_find_by_order_id(
        &self,
        plugin: &str,
        merchant_id: Option<&str>,
        order_id: &str,
    ) -> Result<Option<Invoice>, StoreError> {
        let q = InvoiceQuery {
            plugin: plugin.into(),
            merchant_id: merchant_id.map(str::to_owned),
            ..Default::default()
        };
        let mut binds = Vec::new();
        let mut sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE {}",
            where_clause(&q, &mut binds)
        );
        binds.push(Bind::Text(order_id.into()));
        sql.push_str(&format!(
            " AND merchant_order_id = ${} ORDER BY created_at DESC, id DESC LIMIT 1",
            binds.len()
        ));
        let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(invoice_from_row).transpose()
    }

    /// One page (`limit` items, newest first) of the invoices `q` selects, and their total.
    /// A cursor invoice outside `q`'s plugin and merchant is `Ok(None)`.
    pub async fn plugin_list_invoices(
        &self,
        q: &InvoiceQuery,
        start: &PageStart,
        limit: u32,
    ) -> Result<Option<InvoicePageRows>, StoreError> {
        let mut binds = Vec::new();
        let filter = where_clause(q, &mut binds);
        let count_sql = format!("SELECT COUNT(*) AS n FROM invoices WHERE {filter}");
        let total: i64 = bind_all(sqlx::query(sqlx::AssertSqlSafe(count_sql)), &binds)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;

        let mut sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE {filter}");
        let mut ascending = false;
        let mut offset = 0i64;
        match start {
            PageStart::First => {}
            PageStart::Number(n) => offset = i64::from(n.saturating_sub(1)) * i64::from(limit),
            PageStart::After(id) | PageStart::Before(id) => {
                let Some(cursor) = self.invoice(id).await? else {
                    return Ok(None);
                };
                if cursor.plugin != q.plugin
                    || q.merchant_id
                        .as_ref()
                        .is_some_and(|m| *m != cursor.merchant_id)
                {
                    return Ok(None);
                }
                let (op, asc) = if matches!(start, PageStart::After(_)) {
                    ("<", false)
                } else {
                    (">", true)
                };
                ascending = asc;
                binds.push(Bind::Int(cursor.created_at));
                let c = binds.len();
                binds.push(Bind::Text(cursor.id.clone()));
                let i = binds.len();
                sql.push_str(&format!(
                    " AND (created_at {op} ${c} OR (created_at = ${c} AND id {op} ${i}))"
                ));
            }
        }
        let order = if ascending { "ASC" } else { "DESC" };
        binds.push(Bind::Int(i64::from(limit) + 1));
        let l = binds.len();
        binds.push(Bind::Int(offset));
        let o = binds.len();
        sql.push_str(&format!(
            " ORDER BY created_at {order}, id {order} LIMIT ${l} OFFSET ${o}"
        ));
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .fetch_all(self.pool())
            .await?;
        let mut items = rows
            .iter()
            .map(invoice_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more_in_direction = items.len() > limit as usize;
        items.truncate(limit as usize);
        let more = if ascending {
            items.reverse();
            // Paging towards newer items: older ones exist (the cursor itself).
            true
        } else {
            more_in_direction
        };
        Ok(Some(InvoicePageRows {
            items,
            total: u64::try_from(total).unwrap_or(0),
            more,
        }))
    }

    /// Counts per status and paid volumes of the invoices `q` selects.
    pub async fn plugin_invoice_counts(
        &self,
        q: &InvoiceQuery,
    ) -> Result<InvoiceCounts, StoreError> {
        let mut binds = Vec::new();
        let filter = where_clause(q, &mut binds);
        let sql =
            format!("SELECT status, COUNT(*) AS n FROM invoices WHERE {filter} GROUP BY status");
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .fetch_all(self.pool())
            .await?;
        let mut counts = InvoiceCounts::default();
        for row in &rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            let status = status
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("invoice status: {e}")))?;
            counts
                .by_status
                .push((status, u64::try_from(n).unwrap_or(0)));
        }
        // Sums of base-unit strings are exact only in Rust (U256), not in SQL.
        let sql = format!(
            "SELECT chain, asset, decimals, amount_paid FROM invoices WHERE {filter} AND paid_at IS NOT NULL"
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &binds)
            .fetch_all(self.pool())
            .await?;
        for row in &rows {
            let chain: String = row.try_get("chain")?;
            let asset: String = row.try_get("asset")?;
            let decimals: i64 = row.try_get("decimals")?;
            let decimals = u8::try_from(decimals)
                .map_err(|e| StoreError::Corrupt(format!("decimals: {e}")))?;
            let paid = super::amount_column(&row.try_get::<String, _>("amount_paid")?)?;
            match counts
                .volumes
                .iter_mut()
                .find(|v| v.0 == chain && v.1 == asset)
            {
                Some(v) => {
                    v.3 += 1;
                    v.4 = v.4.checked_add(paid).unwrap_or(crate::invoice::Amount::MAX);
                }
                None => counts.volumes.push((chain, asset, decimals, 1, paid)),
            }
        }
        Ok(counts)
    }

    /// Replaces an invoice's plugin-owned JSON.
    pub async fn plugin_set_invoice_data(
        &self,
        id: &str,
        data: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE invoices SET plugin_data = $1, updated_at = $2 WHERE id = $3")
            .bind(data.to_string())
            .bind(super::now_ms())
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Changes a merchant's name and/or the JSON `plugin` keeps about it, in one
    /// transaction; `None` if the merchant does not exist. Returns the merchant and that JSON.
    pub async fn plugin_update_merchant(
        &self,
        id: &str,
        plugin: &str,
        name: Option<&str>,
        data: Option<&serde_json::Value>,
    ) -> Result<Option<(Merchant, serde_json::Value)>, StoreError> {
        let now = super::now_ms();
        let mut tx = self.begin().await?;
        if get_merchant(&mut tx, id).await?.is_none() {
            return Ok(None);
        }
        if let Some(name) = name {
            sqlx::query("UPDATE merchants SET name = $1, updated_at = $2 WHERE id = $3")
                .bind(name)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(data) = data {
            set_plugin_data(&mut tx, id, plugin, data, now).await?;
        }
        let merchant = get_merchant(&mut tx, id).await?;
        let data = plugin_data(&mut tx, id, plugin).await?;
        tx.commit().await?;
        Ok(merchant.map(|m| (m, data.unwrap_or_else(|| serde_json::json!({})))))
    }

    /// The merchant a live credential of `plugin` belongs to (another plugin's credential,
    /// or the operator's generic one, is `None`).
    pub async fn plugin_credential_owner(
        &self,
        plugin: &str,
        credential_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT merchant_id FROM credentials WHERE id = $1 AND plugin = $2 AND revoked_at IS NULL",
        )
        .bind(credential_id)
        .bind(plugin)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Adds one credential to a merchant (a unique public id or secret clash is `Conflict`).
    pub async fn plugin_insert_credential(
        &self,
        merchant_id: &str,
        row: &CredentialRow,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_credential(&mut tx, merchant_id, row, super::now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces a live credential's secret (its lookup hash and sealed form); the old
    /// secret stops working at once. Returns whether a live credential was changed.
    pub async fn plugin_replace_secret(
        &self,
        plugin: &str,
        credential_id: &str,
        lookup_hash: &str,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE credentials SET lookup_hash = $1, sealed = $2 WHERE id = $3 AND plugin = $4 AND revoked_at IS NULL")
            .bind(lookup_hash)
            .bind(sealed)
            .bind(credential_id)
            .bind(plugin)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes one live credential of `plugin` (freeing its lookup hash and public id, as
    /// `merchants::revoke_credentials` does for a set). Returns whether one was revoked.
    pub async fn plugin_revoke_credential(
        &self,
        plugin: &str,
        credential_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE credentials SET revoked_at = $1, lookup_hash = 'revoked:' || id, \
             public_id = CASE WHEN public_id IS NULL THEN NULL ELSE 'revoked:' || id END \
             WHERE id = $2 AND plugin = $3 AND revoked_at IS NULL",
        )
        .bind(super::now_ms())
        .bind(credential_id)
        .bind(plugin)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
