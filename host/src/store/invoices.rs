//! Invoices, their payment targets, and the outbox events their changes emit.
//!
//! Every state change of an invoice goes through [`change_status`] (or one of the
//! operations built on it), which validates it with the lifecycle's one transition check,
//! bumps the row version and writes the outbox event, all inside the caller's
//! transaction: a change and its event commit together or not at all.
//!
//! Concurrency: the invoice row is read with `FOR UPDATE` on PostgreSQL before it is
//! changed; on SQLite the write transaction (`BEGIN IMMEDIATE`) already serialises
//! writers. The version column is checked on update as a second guard.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError, Tx, amount_column, flag, read_flag};
use crate::invoice::{
    Amount, EventKind, InvoiceStatus, MatchStrategy, Outcome, PaymentFacts, check_transition,
};

/// An invoice as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub id: String,
    pub merchant_id: String,
    pub plugin: String,
    pub merchant_order_id: Option<String>,
    pub status: InvoiceStatus,
    pub outcome: Outcome,
    pub chain: String,
    pub asset: String,
    pub decimals: u8,
    pub amount_due: Amount,
    pub amount_paid: Amount,
    pub amount_confirmed: Amount,
    /// Underpayment accepted as full payment (from the asset's `payment_tolerance`).
    pub tolerance: Amount,
    pub confirmations_required: u32,
    pub strategy: MatchStrategy,
    pub pay_address: String,
    pub pay_reference: Option<String>,
    pub txn_hash: Option<String>,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub plugin_data: serde_json::Value,
    pub expires_at: i64,
    pub monitor_until: i64,
    pub first_paid_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub submitted_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// What a new invoice is made of. The payment target is decided by the caller (the
/// matcher allocates unique amounts and derived addresses).
#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub id: String,
    pub merchant_id: String,
    pub plugin: String,
    pub merchant_order_id: Option<String>,
    pub chain: String,
    pub asset: String,
    pub decimals: u8,
    pub amount_due: Amount,
    /// Underpayment accepted as full payment; the matcher sets it from the asset config.
    pub tolerance: Amount,
    pub confirmations_required: u32,
    pub strategy: MatchStrategy,
    pub target: NewTarget,
    pub pay_reference: Option<String>,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub plugin_data: serde_json::Value,
    pub expires_at: i64,
    pub monitor_until: i64,
}

/// Where the payment is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTarget {
    pub address: String,
    /// The exact amount reserved (unique-amount matching); `None` when any amount matches.
    pub reserved_amount: Option<Amount>,
    pub derivation_index: Option<i64>,
}

/// An outbox event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEvent {
    pub id: i64,
    pub invoice_id: String,
    pub merchant_id: String,
    pub plugin: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: i64,
    pub state: String,
    pub attempts: i64,
}

/// Why an invoice could not be created or changed, when the caller can cause it.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    #[error("invoice {0} not found")]
    NotFound(String),
    #[error("an invoice with merchant order id `{0}` already exists")]
    DuplicateOrderId(String),
    #[error("the payment target is already reserved by another open invoice")]
    TargetTaken,
    #[error(transparent)]
    Illegal(#[from] crate::invoice::IllegalTransition),
    #[error("invoice {0} changed concurrently; retry")]
    Concurrent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for InvoiceError {
    fn from(e: sqlx::Error) -> Self {
        InvoiceError::Store(e.into())
    }
}

pub(crate) const INVOICE_COLUMNS: &str = "id, merchant_id, plugin, merchant_order_id, status, underpaid, overpaid, paid_late, \
     chain, asset, decimals, amount_due, amount_paid, amount_confirmed, tolerance, confirmations_required, strategy, pay_address, \
     pay_reference, txn_hash, notify_url, return_url, plugin_data, expires_at, monitor_until, first_paid_at, paid_at, \
     submitted_at, cancelled_at, created_at, updated_at, version";

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
        notify_url: row.try_get("notify_url")?,
        return_url: row.try_get("return_url")?,
        plugin_data: serde_json::from_str(&plugin_data).map_err(|e| corrupt("plugin data", e))?,
        expires_at: row.try_get("expires_at")?,
        monitor_until: row.try_get("monitor_until")?,
        first_paid_at: row.try_get("first_paid_at")?,
        paid_at: row.try_get("paid_at")?,
        submitted_at: row.try_get("submitted_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<OutboxEvent, StoreError> {
    let payload: String = row.try_get("payload")?;
    Ok(OutboxEvent {
        id: row.try_get("id")?,
        invoice_id: row.try_get("invoice_id")?,
        merchant_id: row.try_get("merchant_id")?,
        plugin: row.try_get("plugin")?,
        kind: row.try_get("kind")?,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("event payload", e))?,
        created_at: row.try_get("created_at")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
    })
}

/// Reads an invoice.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<Invoice>, StoreError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(invoice_from_row)
        .transpose()
}

/// Reads an invoice for update inside a write transaction (row lock on PostgreSQL).
pub async fn get_for_update(
    tx: &mut Tx,
    backend: Backend,
    id: &str,
) -> Result<Option<Invoice>, StoreError> {
    let lock = if backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1{lock}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .as_ref()
        .map(invoice_from_row)
        .transpose()
}

/// Finds the invoice a merchant created in a plugin with its own order id.
pub async fn find_by_order_id(
    conn: &mut AnyConnection,
    plugin: &str,
    merchant_id: &str,
    order_id: &str,
) -> Result<Option<Invoice>, StoreError> {
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE plugin = $1 AND merchant_id = $2 AND merchant_order_id = $3"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(plugin)
        .bind(merchant_id)
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(invoice_from_row)
        .transpose()
}

/// Appends an outbox event about `invoice` in the caller's transaction. The payload is a
/// snapshot of the invoice after the change, plus `extra` fields.
pub async fn append_event(
    tx: &mut Tx,
    invoice: &Invoice,
    kind: EventKind,
    previous: Option<InvoiceStatus>,
    now: i64,
) -> Result<i64, StoreError> {
    let payload = serde_json::json!({
        "kind": kind.as_str(),
        "previous_status": previous.map(InvoiceStatus::as_str),
        "invoice": invoice,
    });
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox_events (invoice_id, merchant_id, plugin, kind, payload, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&invoice.id)
    .bind(&invoice.merchant_id)
    .bind(&invoice.plugin)
    .bind(kind.as_str())
    .bind(payload.to_string())
    .bind(now)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// The outbox events of an invoice, oldest first.
pub async fn events_of(
    conn: &mut AnyConnection,
    invoice_id: &str,
) -> Result<Vec<OutboxEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, invoice_id, merchant_id, plugin, kind, payload, created_at, state, attempts \
         FROM outbox_events WHERE invoice_id = $1 ORDER BY id",
    )
    .bind(invoice_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(event_from_row).collect()
}

impl Store {
    /// Creates an invoice with its payment target and its `invoice.created` event, in one
    /// transaction.
    pub async fn create_invoice(&self, new: &NewInvoice) -> Result<Invoice, InvoiceError> {
        let now = super::now_ms();
        let invoice = Invoice {
            id: new.id.clone(),
            merchant_id: new.merchant_id.clone(),
            plugin: new.plugin.clone(),
            merchant_order_id: new.merchant_order_id.clone(),
            status: InvoiceStatus::Pending,
            outcome: Outcome::default(),
            chain: new.chain.clone(),
            asset: new.asset.clone(),
            decimals: new.decimals,
            amount_due: new.amount_due,
            amount_paid: Amount::ZERO,
            amount_confirmed: Amount::ZERO,
            tolerance: new.tolerance,
            confirmations_required: new.confirmations_required,
            strategy: new.strategy,
            pay_address: new.target.address.clone(),
            pay_reference: new.pay_reference.clone(),
            txn_hash: None,
            notify_url: new.notify_url.clone(),
            return_url: new.return_url.clone(),
            plugin_data: new.plugin_data.clone(),
            expires_at: new.expires_at,
            monitor_until: new.monitor_until.max(new.expires_at),
            first_paid_at: None,
            paid_at: None,
            submitted_at: None,
            cancelled_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO invoices (id, merchant_id, plugin, merchant_order_id, status, chain, asset, decimals, amount_due, \
             confirmations_required, strategy, pay_address, pay_reference, notify_url, return_url, plugin_data, expires_at, \
             monitor_until, created_at, updated_at, tolerance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
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
        .bind(now)
        .bind(now)
        .bind(invoice.tolerance.to_string())
        .execute(&mut *tx)
        .await;
        match inserted.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => {
                return Err(InvoiceError::DuplicateOrderId(
                    invoice.merchant_order_id.clone().unwrap_or_default(),
                ));
            }
            other => {
                other?;
            }
        }
        let target = sqlx::query(
            "INSERT INTO payment_targets (id, invoice_id, chain, asset, address, strategy, amount, derivation_index, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&invoice.id)
        .bind(&invoice.chain)
        .bind(&invoice.asset)
        .bind(&new.target.address)
        .bind(invoice.strategy.as_str())
        .bind(new.target.reserved_amount.map(|a| a.to_string()))
        .bind(new.target.derivation_index)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match target.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => return Err(InvoiceError::TargetTaken),
            other => {
                other?;
            }
        }
        append_event(&mut tx, &invoice, EventKind::Created, None, now).await?;
        tx.commit().await?;
        Ok(invoice)
    }

    /// Reads an invoice.
    pub async fn invoice(&self, id: &str) -> Result<Option<Invoice>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        get(&mut conn, id).await
    }

    /// Cancels an unpaid invoice (merchant request) and releases its payment target.
    pub async fn cancel_invoice(&self, id: &str) -> Result<Invoice, InvoiceError> {
        let now = super::now_ms();
        let mut tx = self.begin().await?;
        let invoice = get_for_update(&mut tx, self.backend, id)
            .await?
            .ok_or_else(|| InvoiceError::NotFound(id.into()))?;
        let changed = change_status(
            &mut tx,
            &invoice,
            InvoiceStatus::Cancelled,
            invoice.outcome,
            StatusFields {
                cancelled_at: Some(now),
                ..Default::default()
            },
            now,
        )
        .await?;
        release_targets(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Records that the payer says it has paid; the status does not change.
    pub async fn mark_submitted(&self, id: &str) -> Result<Invoice, InvoiceError> {
        let now = super::now_ms();
        let mut tx = self.begin().await?;
        let mut invoice = get_for_update(&mut tx, self.backend, id)
            .await?
            .ok_or_else(|| InvoiceError::NotFound(id.into()))?;
        if invoice.submitted_at.is_none() {
            sqlx::query("UPDATE invoices SET submitted_at = $1, updated_at = $2, version = version + 1 WHERE id = $3")
                .bind(now)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            invoice.submitted_at = Some(now);
            invoice.updated_at = now;
            invoice.version += 1;
            append_event(
                &mut tx,
                &invoice,
                EventKind::Submitted,
                Some(invoice.status),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(invoice)
    }

    /// Moves every open invoice whose deadline has passed to `expired` (with its event),
    /// at most `limit` per call; returns the invoices changed.
    pub async fn expire_due(&self, now: i64, limit: i64) -> Result<Vec<Invoice>, InvoiceError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM invoices WHERE status = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3")
            .bind(InvoiceStatus::Pending.as_str())
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut expired = Vec::new();
        for id in ids {
            let mut tx = self.begin().await?;
            // Re-read under the lock: a payment may have landed since the scan.
            let Some(invoice) = get_for_update(&mut tx, self.backend, &id).await? else {
                continue;
            };
            if let Some(changed) = settle(&mut tx, &invoice, None, now).await? {
                expired.push(changed);
            }
            tx.commit().await?;
        }
        Ok(expired)
    }
}

/// Optional columns set together with a status change.
#[derive(Debug, Default, Clone)]
pub struct StatusFields {
    pub paid_at: Option<i64>,
    pub cancelled_at: Option<i64>,
}

/// Changes an invoice's status (validated by the lifecycle) and outcome, and writes the
/// event the change emits, in the caller's transaction. Returns the invoice as changed.
pub async fn change_status(
    tx: &mut Tx,
    invoice: &Invoice,
    to: InvoiceStatus,
    outcome: Outcome,
    fields: StatusFields,
    now: i64,
) -> Result<Invoice, InvoiceError> {
    check_transition(invoice.status, to)?;
    let mut changed = invoice.clone();
    changed.status = to;
    changed.outcome = outcome;
    changed.updated_at = now;
    changed.version += 1;
    if fields.paid_at.is_some() {
        changed.paid_at = fields.paid_at;
    }
    if fields.cancelled_at.is_some() {
        changed.cancelled_at = fields.cancelled_at;
    }
    write_row(tx, invoice.version, &changed).await?;
    append_event(
        tx,
        &changed,
        EventKind::for_transition(invoice.status, to),
        Some(invoice.status),
        now,
    )
    .await?;
    Ok(changed)
}

/// Writes the mutable columns of `changed` if the stored version is still `expected`.
async fn write_row(tx: &mut Tx, expected: i64, changed: &Invoice) -> Result<(), InvoiceError> {
    let updated = sqlx::query(
        "UPDATE invoices SET status = $1, underpaid = $2, overpaid = $3, paid_late = $4, amount_paid = $5, \
         amount_confirmed = $6, txn_hash = $7, first_paid_at = $8, paid_at = $9, cancelled_at = $10, updated_at = $11, \
         version = $12 WHERE id = $13 AND version = $14",
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
    .bind(changed.updated_at)
    .bind(changed.version)
    .bind(&changed.id)
    .bind(expected)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(InvoiceError::Concurrent(changed.id.clone()));
    }
    Ok(())
}

/// Deactivates an invoice's payment targets so their reservations can be reused.
pub async fn release_targets(tx: &mut Tx, invoice_id: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE payment_targets SET active = 0, released_at = $1 WHERE invoice_id = $2 AND active = 1")
        .bind(now)
        .bind(invoice_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What the chain says about an invoice's payments, for [`settle`].
#[derive(Debug, Clone, Copy)]
pub struct ChainView {
    /// The chain's current head block number.
    pub head_block: i64,
    /// The newest block the chain declares irreversible (TRON's solidified block), on
    /// chains that have one: a credit in a later block is not confirmed, however deep.
    pub final_block: Option<i64>,
}

/// A matched transfer as [`settle`] sums it.
struct Credit {
    amount: Amount,
    block_number: i64,
    observed_at: i64,
    tx_hash: String,
}

/// Recomputes an invoice from its matched, non-removed transfers: paid and confirmed totals
/// (confirmed: at least `confirmations_required` blocks deep at `chain.head_block`, and at
/// or below `chain.final_block` when the chain has one; without
/// a chain view the stored totals are kept), the time the cumulative payment first covered
/// the amount due, the transaction that completed it; then asks the lifecycle which status
/// the facts call for. Writes the change and its event (or, when only the amounts changed, a
/// `payment_detected` event) in the caller's transaction. Returns the invoice if anything
/// changed.
pub async fn settle(
    tx: &mut Tx,
    invoice: &Invoice,
    chain: Option<ChainView>,
    now: i64,
) -> Result<Option<Invoice>, InvoiceError> {
    let mut changed = invoice.clone();
    if let Some(chain) = chain {
        let rows = sqlx::query(
            "SELECT amount, block_number, observed_at, tx_hash FROM observed_transfers \
             WHERE invoice_id = $1 AND removed = 0 ORDER BY block_number, log_index, id",
        )
        .bind(&invoice.id)
        .fetch_all(&mut **tx)
        .await?;
        let credits = rows
            .iter()
            .map(|row| {
                Ok(Credit {
                    amount: amount_column(&row.try_get::<String, _>("amount")?)?,
                    block_number: row.try_get("block_number")?,
                    observed_at: row.try_get("observed_at")?,
                    tx_hash: row.try_get("tx_hash")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let depth_needed = i64::from(invoice.confirmations_required.max(1));
        let mut paid = Amount::ZERO;
        let mut confirmed = Amount::ZERO;
        let mut completed: Option<&Credit> = None;
        for credit in &credits {
            paid = paid.saturating_add(credit.amount);
            let deep_enough = chain.head_block - credit.block_number + 1 >= depth_needed;
            if deep_enough && chain.final_block.is_none_or(|f| credit.block_number <= f) {
                confirmed = confirmed.saturating_add(credit.amount);
            }
            if completed.is_none() && paid >= invoice.amount_due {
                completed = Some(credit);
            }
        }
        changed.amount_paid = paid;
        changed.amount_confirmed = confirmed;
        changed.first_paid_at = completed.map(|c| c.observed_at);
        changed.txn_hash = completed.or(credits.last()).map(|c| c.tx_hash.clone());
    }
    let facts = PaymentFacts {
        status: invoice.status,
        amount_due: invoice.amount_due,
        paid_total: changed.amount_paid,
        confirmed_total: changed.amount_confirmed,
        tolerance: invoice.tolerance,
        now_ms: now,
        expires_at_ms: invoice.expires_at,
        monitor_until_ms: invoice.monitor_until,
        first_full_payment_at_ms: changed.first_paid_at,
    };
    let evaluation = crate::invoice::evaluate(&facts);
    changed.outcome = evaluation.outcome;
    let amounts_changed = changed.amount_paid != invoice.amount_paid
        || changed.amount_confirmed != invoice.amount_confirmed;
    if evaluation.status != invoice.status {
        let paid_at = (evaluation.status == InvoiceStatus::Paid).then_some(now);
        if evaluation.status != InvoiceStatus::Paid {
            changed.paid_at = None;
        }
        let result = change_status(
            tx,
            &changed_with_version(&changed, invoice),
            evaluation.status,
            evaluation.outcome,
            StatusFields {
                paid_at,
                ..Default::default()
            },
            now,
        )
        .await?;
        return Ok(Some(result));
    }
    if amounts_changed || changed.outcome != invoice.outcome || changed.txn_hash != invoice.txn_hash
    {
        changed.updated_at = now;
        changed.version += 1;
        write_row(tx, invoice.version, &changed).await?;
        if changed.amount_paid != invoice.amount_paid {
            append_event(
                tx,
                &changed,
                EventKind::PaymentDetected,
                Some(invoice.status),
                now,
            )
            .await?;
        }
        return Ok(Some(changed));
    }
    Ok(None)
}

/// `changed` with the stored version, so [`change_status`] checks against the row as read.
fn changed_with_version(changed: &Invoice, stored: &Invoice) -> Invoice {
    let mut c = changed.clone();
    c.version = stored.version;
    c.status = stored.status;
    c
}
