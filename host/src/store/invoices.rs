//! Queries over invoices, their payment targets, their credits and the outbox events their
//! changes emit: plain reads and writes of the types of [`crate::invoice`]. Which status an
//! invoice moves to, which event that emits and when a target is released are decided by
//! the invoice service (`crate::invoice::service`), which calls these inside its
//! transactions.
//!
//! Functions that take `&mut AnyConnection` run on whatever the caller holds: a pooled
//! connection, a transaction (`&mut *tx`) or a savepoint inside one.
//!
//! Concurrency: [`get_for_update`] reads the row with `FOR UPDATE` on PostgreSQL; on
//! SQLite the write transaction (`BEGIN IMMEDIATE`) already serialises writers. [`update`]
//! checks the version column as a second guard.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, StoreError, amount_column, flag, read_flag};
use crate::invoice::tally::Credit;
use crate::invoice::{
    EventPayload, FiatQuote, Idempotency, Invoice, InvoiceStatus, MatchStrategy, NewTarget,
    Outcome, PreviousDue,
};

/// A unique constraint an invoice insert can hit, told apart by the constraint's text
/// (PostgreSQL names the index, SQLite lists its columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceConflict {
    /// Another invoice of the plugin and merchant has the merchant order id.
    OrderId,
    /// Another invoice of the plugin and merchant was created with the idempotency key.
    IdempotencyKey,
    /// Another invoice on the chain has the payment reference.
    Reference,
}

/// Why an invoice or its target could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("unique constraint: {0:?}")]
    Invoice(InvoiceConflict),
    #[error("the payment target is held by another open invoice")]
    TargetTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) const INVOICE_COLUMNS: &str = "id, merchant_id, plugin, merchant_order_id, status, underpaid, overpaid, paid_late, \
     chain, asset, decimals, amount_due, amount_paid, amount_confirmed, tolerance, confirmations_required, strategy, pay_address, \
     pay_reference, txn_hash, payer_address, notify_url, return_url, plugin_data, expires_at, monitor_until, first_paid_at, paid_at, \
     submitted_at, cancelled_at, quarantined_at, created_at, updated_at, version, \
     fiat_amount, fiat_currency, fiat_rate, fiat_rate_source, fiat_quoted_at, fiat_valid_until, \
     previous_amount_due, previous_due_until";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn invoice_from_row(row: &AnyRow) -> Result<Invoice, StoreError> {
    let status: String = row.try_get("status")?;
    let strategy: String = row.try_get("strategy")?;
    let plugin_data: String = row.try_get("plugin_data")?;
    let decimals: i64 = row.try_get("decimals")?;
    let confirmations: i64 = row.try_get("confirmations_required")?;
    Ok(Invoice {
        id: row.try_get("id")?,
        merchant_id: row.try_get("merchant_id")?,
        plugin: row.try_get("plugin")?,
        merchant_order_id: row.try_get("merchant_order_id")?,
        status: status.parse().map_err(|e| corrupt("invoice status", e))?,
        outcome: Outcome {
            underpaid: read_flag(row, "underpaid")?,
            overpaid: read_flag(row, "overpaid")?,
            paid_late: read_flag(row, "paid_late")?,
        },
        chain: row.try_get("chain")?,
        asset: row.try_get("asset")?,
        decimals: u8::try_from(decimals).map_err(|e| corrupt("decimals", e))?,
        amount_due: amount_column(&row.try_get::<String, _>("amount_due")?)?,
        amount_paid: amount_column(&row.try_get::<String, _>("amount_paid")?)?,
        amount_confirmed: amount_column(&row.try_get::<String, _>("amount_confirmed")?)?,
        tolerance: amount_column(&row.try_get::<String, _>("tolerance")?)?,
        confirmations_required: u32::try_from(confirmations)
            .map_err(|e| corrupt("confirmations", e))?,
        strategy: strategy.parse().map_err(|e| corrupt("strategy", e))?,
        pay_address: row.try_get("pay_address")?,
        pay_reference: row.try_get("pay_reference")?,
        txn_hash: row.try_get("txn_hash")?,
        payer_address: row.try_get("payer_address")?,
        fiat: fiat_from_row(row)?,
        previous_due: {
            let amount: Option<String> = row.try_get("previous_amount_due")?;
            let until: Option<i64> = row.try_get("previous_due_until")?;
            match (amount, until) {
                (Some(amount), Some(until)) => Some(PreviousDue {
                    amount: amount_column(&amount)?,
                    until,
                }),
                _ => None,
            }
        },
        notify_url: row.try_get("notify_url")?,
        return_url: row.try_get("return_url")?,
        plugin_data: serde_json::from_str(&plugin_data).map_err(|e| corrupt("plugin data", e))?,
        expires_at: row.try_get("expires_at")?,
        monitor_until: row.try_get("monitor_until")?,
        first_paid_at: row.try_get("first_paid_at")?,
        paid_at: row.try_get("paid_at")?,
        submitted_at: row.try_get("submitted_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
        quarantined_at: row.try_get("quarantined_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// The fiat quote columns: all set or all null (one insert writes them together).
fn fiat_from_row(row: &AnyRow) -> Result<Option<FiatQuote>, StoreError> {
    let amount: Option<String> = row.try_get("fiat_amount")?;
    let Some(amount) = amount else {
        return Ok(None);
    };
    let currency: Option<String> = row.try_get("fiat_currency")?;
    let rate: Option<String> = row.try_get("fiat_rate")?;
    let source: Option<String> = row.try_get("fiat_rate_source")?;
    let quoted_at: Option<i64> = row.try_get("fiat_quoted_at")?;
    let valid_until: Option<i64> = row.try_get("fiat_valid_until")?;
    match (currency, rate, source, quoted_at, valid_until) {
        (Some(currency), Some(rate), Some(source), Some(quoted_at), Some(valid_until)) => {
            Ok(Some(FiatQuote {
                amount,
                currency,
                rate,
                source,
                quoted_at,
                valid_until,
            }))
        }
        _ => Err(corrupt("fiat quote", "partly null")),
    }
}

async fn fetch_invoice(
    conn: &mut AnyConnection,
    condition: &str,
    binds: &[&str],
) -> Result<Option<Invoice>, StoreError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE {condition}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(*bind);
    }
    query
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(invoice_from_row)
        .transpose()
}

/// Reads an invoice.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<Invoice>, StoreError> {
    fetch_invoice(conn, "id = $1", &[id]).await
}

/// Reads an invoice for update inside a write transaction (row lock on PostgreSQL).
pub async fn get_for_update(
    conn: &mut AnyConnection,
    backend: Backend,
    id: &str,
) -> Result<Option<Invoice>, StoreError> {
    let condition = match backend {
        Backend::Postgres => "id = $1 FOR UPDATE",
        Backend::Sqlite => "id = $1",
    };
    fetch_invoice(conn, condition, &[id]).await
}

/// Finds the invoice a merchant created in a plugin with its own order id.
pub async fn find_by_order_id(
    conn: &mut AnyConnection,
    plugin: &str,
    merchant_id: &str,
    order_id: &str,
) -> Result<Option<Invoice>, StoreError> {
    let condition = "plugin = $1 AND merchant_id = $2 AND merchant_order_id = $3";
    fetch_invoice(conn, condition, &[plugin, merchant_id, order_id]).await
}

/// Finds the invoice a merchant created in a plugin with an idempotency key, with the
/// fingerprint of the request that created it.
pub async fn find_by_idempotency_key(
    conn: &mut AnyConnection,
    plugin: &str,
    merchant_id: &str,
    key: &str,
) -> Result<Option<(Invoice, String)>, StoreError> {
    let sql = format!(
        "SELECT {INVOICE_COLUMNS}, request_fingerprint FROM invoices \
         WHERE plugin = $1 AND merchant_id = $2 AND idempotency_key = $3"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(plugin)
        .bind(merchant_id)
        .bind(key)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        let fingerprint: Option<String> = row.try_get("request_fingerprint")?;
        Ok((invoice_from_row(&row)?, fingerprint.unwrap_or_default()))
    })
    .transpose()
}

/// Whether an invoice is set aside (read without parsing the rest of the row, which may be
/// why it was set aside).
pub async fn is_quarantined(conn: &mut AnyConnection, id: &str) -> Result<bool, StoreError> {
    let at: Option<Option<i64>> =
        sqlx::query_scalar("SELECT quarantined_at FROM invoices WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(matches!(at, Some(Some(_))))
}

fn invoice_conflict(error: &StoreError) -> Option<InvoiceConflict> {
    let StoreError::Conflict(text) = error else {
        return None;
    };
    Some(if text.contains("idempotency") {
        InvoiceConflict::IdempotencyKey
    } else if text.contains("pay_reference") {
        InvoiceConflict::Reference
    } else {
        InvoiceConflict::OrderId
    })
}

/// Inserts a new invoice (and its idempotency key).
pub async fn insert(
    conn: &mut AnyConnection,
    invoice: &Invoice,
    idempotency: Option<&Idempotency>,
) -> Result<(), InsertError> {
    let inserted = sqlx::query(
        "INSERT INTO invoices (id, merchant_id, plugin, merchant_order_id, status, chain, asset, decimals, amount_due, \
         confirmations_required, strategy, pay_address, pay_reference, notify_url, return_url, plugin_data, expires_at, \
         monitor_until, created_at, updated_at, tolerance, idempotency_key, request_fingerprint, fiat_amount, \
         fiat_currency, fiat_rate, fiat_rate_source, fiat_quoted_at, fiat_valid_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, \
         $24, $25, $26, $27, $28, $29)",
    )
    .bind(&invoice.id)
    .bind(&invoice.merchant_id)
    .bind(&invoice.plugin)
    .bind(&invoice.merchant_order_id)
    .bind(invoice.status.as_str())
    .bind(&invoice.chain)
    .bind(&invoice.asset)
    .bind(i64::from(invoice.decimals))
    .bind(invoice.amount_due.to_string())
    .bind(i64::from(invoice.confirmations_required))
    .bind(invoice.strategy.as_str())
    .bind(&invoice.pay_address)
    .bind(&invoice.pay_reference)
    .bind(&invoice.notify_url)
    .bind(&invoice.return_url)
    .bind(invoice.plugin_data.to_string())
    .bind(invoice.expires_at)
    .bind(invoice.monitor_until)
    .bind(invoice.created_at)
    .bind(invoice.updated_at)
    .bind(invoice.tolerance.to_string())
    .bind(idempotency.map(|i| i.key.as_str()))
    .bind(idempotency.map(|i| i.fingerprint.as_str()))
    .bind(invoice.fiat.as_ref().map(|f| f.amount.as_str()))
    .bind(invoice.fiat.as_ref().map(|f| f.currency.as_str()))
    .bind(invoice.fiat.as_ref().map(|f| f.rate.as_str()))
    .bind(invoice.fiat.as_ref().map(|f| f.source.as_str()))
    .bind(invoice.fiat.as_ref().map(|f| f.quoted_at))
    .bind(invoice.fiat.as_ref().map(|f| f.valid_until))
    .execute(conn)
    .await
    .map_err(StoreError::from);
    match inserted {
        Ok(_) => Ok(()),
        Err(e) => Err(match invoice_conflict(&e) {
            Some(conflict) => InsertError::Invoice(conflict),
            None => InsertError::Store(e),
        }),
    }
}

/// Inserts the payment target of `invoice`, active until it is released (at the latest
/// around `release_at`, see the invoice service). A unique constraint (a reserved amount,
/// an address with an open fixed-address invoice) is [`InsertError::TargetTaken`].
pub async fn insert_target(
    conn: &mut AnyConnection,
    invoice: &Invoice,
    target: &NewTarget,
    release_at: i64,
) -> Result<(), InsertError> {
    let inserted = sqlx::query(
        "INSERT INTO payment_targets (id, invoice_id, chain, asset, address, strategy, amount, derivation_index, \
         created_at, release_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&invoice.id)
    .bind(&invoice.chain)
    .bind(&invoice.asset)
    .bind(&target.address)
    .bind(invoice.strategy.as_str())
    .bind(target.reserved_amount.map(|a| a.to_string()))
    .bind(target.derivation_index)
    .bind(invoice.created_at)
    .bind(release_at)
    .execute(conn)
    .await
    .map_err(StoreError::from);
    match inserted {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(InsertError::TargetTaken),
        Err(e) => Err(e.into()),
    }
}

/// Writes the lifecycle columns of `changed` (status, outcome, amounts, times, the fiat
/// quote; not the plugin's data, which only the plugin changes) if the stored version is still
/// `expected`; false when it is not (a concurrent change).
pub async fn update(
    conn: &mut AnyConnection,
    expected: i64,
    changed: &Invoice,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE invoices SET status = $1, underpaid = $2, overpaid = $3, paid_late = $4, amount_paid = $5, \
         amount_confirmed = $6, txn_hash = $7, first_paid_at = $8, paid_at = $9, cancelled_at = $10, submitted_at = $11, \
         updated_at = $12, version = $13, payer_address = $16, amount_due = $17, fiat_amount = $18, fiat_currency = $19, \
         fiat_rate = $20, fiat_rate_source = $21, fiat_quoted_at = $22, fiat_valid_until = $23, previous_amount_due = $24, \
         previous_due_until = $25 WHERE id = $14 AND version = $15",
    )
    .bind(changed.status.as_str())
    .bind(flag(changed.outcome.underpaid))
    .bind(flag(changed.outcome.overpaid))
    .bind(flag(changed.outcome.paid_late))
    .bind(changed.amount_paid.to_string())
    .bind(changed.amount_confirmed.to_string())
    .bind(&changed.txn_hash)
    .bind(changed.first_paid_at)
    .bind(changed.paid_at)
    .bind(changed.cancelled_at)
    .bind(changed.submitted_at)
    .bind(changed.updated_at)
    .bind(changed.version)
    .bind(&changed.id)
    .bind(expected)
    .bind(&changed.payer_address)
    .bind(changed.amount_due.to_string())
    .bind(changed.fiat.as_ref().map(|f| f.amount.as_str()))
    .bind(changed.fiat.as_ref().map(|f| f.currency.as_str()))
    .bind(changed.fiat.as_ref().map(|f| f.rate.as_str()))
    .bind(changed.fiat.as_ref().map(|f| f.source.as_str()))
    .bind(changed.fiat.as_ref().map(|f| f.quoted_at))
    .bind(changed.fiat.as_ref().map(|f| f.valid_until))
    .bind(changed.previous_due.map(|p| p.amount.to_string()))
    .bind(changed.previous_due.map(|p| p.until))
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Appends an outbox event about `invoice` (the invoice of `payload`).
pub async fn append_event(
    conn: &mut AnyConnection,
    payload: &EventPayload,
    now: i64,
) -> Result<i64, StoreError> {
    let invoice = &payload.invoice;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox_events (invoice_id, merchant_id, plugin, kind, payload, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&invoice.id)
    .bind(&invoice.merchant_id)
    .bind(&invoice.plugin)
    .bind(&payload.kind)
    .bind(payload.to_json())
    .bind(now)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// The live (non-removed) transfers credited to an invoice, in chain order.
pub async fn credits_of(
    conn: &mut AnyConnection,
    invoice_id: &str,
) -> Result<Vec<Credit>, StoreError> {
    let rows = sqlx::query(
        "SELECT amount, block_number, block_time, observed_at, tx_hash, from_address FROM observed_transfers \
         WHERE invoice_id = $1 AND removed = 0 ORDER BY block_number, log_index, id",
    )
    .bind(invoice_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let block_time: Option<i64> = row.try_get("block_time")?;
            Ok(Credit {
                amount: amount_column(&row.try_get::<String, _>("amount")?)?,
                block_number: row.try_get("block_number")?,
                block_time: match block_time {
                    Some(t) => t,
                    None => row.try_get("observed_at")?,
                },
                tx_hash: row.try_get("tx_hash")?,
                from_address: row.try_get("from_address")?,
            })
        })
        .collect()
}

/// Deactivates an invoice's active payment targets so what they hold can be reused.
pub async fn release_targets(
    conn: &mut AnyConnection,
    invoice_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE payment_targets SET active = 0, released_at = $1 WHERE invoice_id = $2 AND active = 1",
    )
    .bind(now)
    .bind(invoice_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Re-activates the released targets of an invoice a reorg moved back, until
/// `release_at`, unless another active target has taken what they held meanwhile.
pub async fn reactivate_targets(
    conn: &mut AnyConnection,
    invoice_id: &str,
    release_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE payment_targets SET active = 1, released_at = NULL, release_at = $1 WHERE invoice_id = $2 AND active = 0 \
         AND NOT EXISTS (SELECT 1 FROM payment_targets o WHERE o.active = 1 AND o.chain = payment_targets.chain \
         AND o.asset = payment_targets.asset AND o.address = payment_targets.address \
         AND (o.amount = payment_targets.amount \
              OR (o.strategy = $3 AND payment_targets.strategy = $3)))",
    )
    .bind(release_at)
    .bind(invoice_id)
    .bind(MatchStrategy::FixedAddress.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends the reservation of `amount` held by an invoice's active target at `until` at the
/// latest (a re-quote's grace period for the amount it replaced).
pub async fn limit_reservation(
    conn: &mut AnyConnection,
    invoice_id: &str,
    amount: crate::invoice::Amount,
    until: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE payment_targets SET release_at = $1 WHERE invoice_id = $2 AND active = 1 AND amount = $3 \
         AND release_at > $1",
    )
    .bind(until)
    .bind(invoice_id)
    .bind(amount.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves when an invoice's active targets may be released.
pub async fn set_release_at(
    conn: &mut AnyConnection,
    invoice_id: &str,
    release_at: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE payment_targets SET release_at = $1 WHERE invoice_id = $2 AND active = 1")
        .bind(release_at)
        .bind(invoice_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The statement of [`release_due_targets`] (`$1` = now), public so a test can check its
/// query plan.
pub const RELEASE_DUE_TARGETS: &str = "UPDATE payment_targets SET active = 0, released_at = $1 \
     WHERE active = 1 AND release_at <= $1 \
     AND release_at <= (SELECT c.processed_time FROM chain_cursors c WHERE c.chain = payment_targets.chain)";

/// Releases the active targets whose `release_at` has passed at `now` *and* whose chain
/// has been processed up to a block at least that recent (so every payment mined before
/// it has been seen); returns how many. An indexed scan of the due targets only.
pub async fn release_due_targets(conn: &mut AnyConnection, now: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(RELEASE_DUE_TARGETS)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Ids of pending invoices whose deadline has passed at `now`, oldest deadline first, at
/// most `limit`; invoices set aside are left alone.
pub async fn due_for_expiry(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM invoices WHERE status = $1 AND expires_at <= $2 AND quarantined_at IS NULL \
         ORDER BY expires_at LIMIT $3",
    )
    .bind(InvoiceStatus::Pending.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Sets an invoice aside with the reason its settlement failed.
pub async fn quarantine(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE invoices SET quarantined_at = $1, quarantine_reason = $2 WHERE id = $3 AND quarantined_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes an invoice out of quarantine; false when it was not in it.
pub async fn clear_quarantine(conn: &mut AnyConnection, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE invoices SET quarantined_at = NULL, quarantine_reason = NULL WHERE id = $1 AND quarantined_at IS NOT NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An invoice set aside: what an operator sees.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    pub id: String,
    pub plugin: String,
    pub merchant_id: String,
    pub chain: String,
    pub status: String,
    pub quarantined_at: i64,
    pub reason: String,
}

/// The invoices set aside, oldest first.
pub async fn quarantined(conn: &mut AnyConnection) -> Result<Vec<Quarantined>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, plugin, merchant_id, chain, status, quarantined_at, quarantine_reason FROM invoices \
         WHERE quarantined_at IS NOT NULL ORDER BY quarantined_at, id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let reason: Option<String> = row.try_get("quarantine_reason")?;
            Ok(Quarantined {
                id: row.try_get("id")?,
                plugin: row.try_get("plugin")?,
                merchant_id: row.try_get("merchant_id")?,
                chain: row.try_get("chain")?,
                status: row.try_get("status")?,
                quarantined_at: row.try_get("quarantined_at")?,
                reason: reason.unwrap_or_default(),
            })
        })
        .collect()
}
