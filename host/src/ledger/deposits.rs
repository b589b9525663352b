//! The chain side of ledger deposits: which addresses the chain listeners watch for the
//! ledger, and, in the listener's step transaction, crediting the transfers to them that
//! became confirmed and reversing those a reorg removed.
//!
//! A deposit address is not an invoice's payment target: the listener watches it
//! (`Follower::refresh_watch` adds [`Ledger::watched_deposit_addresses`]), the matcher
//! finds no invoice for a transfer to it and stores it unmatched, and
//! [`Ledger::credit_confirmed_deposits`] attributes it to the address's user through
//! `ledger_deposit_addresses`. So invoice matching is untouched, and a transfer is never
//! counted both for an invoice and for a user (only unmatched transfers are credited).
//!
//! Confirmation is judged as for invoices (`crate::invoice::tally`): at least the chain's
//! required confirmations below the processed block, and at or below the final block on
//! a chain that declares one.

use sqlx::Row;

use super::{DepositTransfer, Ledger, LedgerError};
use crate::invoice::Amount;
use crate::store::Tx;

/// The chain as a listener step settles against (see `crate::invoice::ChainView`).
#[derive(Debug, Clone, Copy)]
pub struct DepositWindow {
    /// Required confirmations of the chain.
    pub confirmations: u32,
    /// The highest block processed (and checked for reorgs).
    pub processed_block: i64,
    /// The chain's newest irreversible block, when it declares one.
    pub final_block: Option<i64>,
    /// The lowest block whose transfers this step may newly confirm.
    pub low: i64,
}

impl Ledger {
    /// Deposit addresses on `chain`, created at or after `since` when given.
    pub async fn watched_deposit_addresses(
        &self,
        chain: &str,
        since: Option<i64>,
    ) -> Result<Vec<String>, LedgerError> {
        let query = sqlx::query_scalar(
            "SELECT address FROM ledger_deposit_addresses WHERE chain = $1 AND created_at >= $2",
        )
        .bind(chain)
        .bind(since.unwrap_or(i64::MIN));
        Ok(query.fetch_all(self.store().pool()).await?)
    }

    /// Credits, in the caller's transaction, every live unmatched transfer of `chain` to
    /// a deposit address in blocks `window.low..` that `window` confirms and that is not
    /// credited yet (zero-amount transfers credit nothing and are skipped). Returns how
    /// many were credited. A transfer the ledger refuses (a conflict, which cannot happen
    /// for a live transfer at one user's address) is logged and left for the operator
    /// rather than stopping the chain.
    pub async fn credit_confirmed_deposits(
        &self,
        tx: &mut Tx,
        chain: &str,
        window: DepositWindow,
        now: i64,
    ) -> Result<usize, LedgerError> {
        let deepest = window.processed_block - i64::from(window.confirmations.max(1)) + 1;
        let high = window.final_block.map_or(deepest, |f| deepest.min(f));
        if high < window.low {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT t.tx_hash, t.log_index, t.asset, t.amount, t.to_address, a.plugin, a.user_id \
             FROM observed_transfers t \
             JOIN ledger_deposit_addresses a ON a.chain = t.chain AND a.address = t.to_address \
             WHERE t.chain = $1 AND t.block_number >= $2 AND t.block_number <= $3 \
             AND t.removed = 0 AND t.invoice_id IS NULL AND t.reference IS NULL AND t.amount <> '0' \
             AND NOT EXISTS (SELECT 1 FROM ledger_deposits d WHERE d.chain = t.chain \
                 AND d.txn_hash = t.tx_hash AND d.log_index = t.log_index AND d.status = 'credited') \
             ORDER BY t.block_number, t.id",
        )
        .bind(chain)
        .bind(window.low)
        .bind(high)
        .fetch_all(&mut **tx)
        .await?;
        let mut credited = 0;
        for row in rows {
            let amount: String = row.try_get("amount")?;
            let transfer = DepositTransfer {
                chain: chain.to_owned(),
                asset: row.try_get("asset")?,
                amount: Amount::from_base_units(&amount)
                    .map_err(|e| LedgerError::Invalid(e.to_string()))?,
                address: row.try_get("to_address")?,
                txn_hash: row.try_get("tx_hash")?,
                log_index: row.try_get("log_index")?,
            };
            let plugin: String = row.try_get("plugin")?;
            let user_id: i64 = row.try_get("user_id")?;
            // A refusal happens before anything is written (the credit's checks), so
            // the step's transaction stays clean.
            match self
                .credit_deposit_in(tx, &plugin, user_id, &transfer, now)
                .await
            {
                Ok(Some(_)) => credited += 1,
                Ok(None) => {}
                Err(LedgerError::Store(e)) => return Err(LedgerError::Store(e)),
                Err(e) => tracing::error!(
                    chain, tx = %transfer.txn_hash, log_index = transfer.log_index, error = %e,
                    "deposit not credited; left for the operator"
                ),
            }
        }
        Ok(credited)
    }

    /// Reverses, in the caller's transaction, the credited deposits of `chain` whose
    /// transfers a reorg just removed (blocks above `ancestor`). Returns how many.
    pub async fn reverse_removed_deposits(
        &self,
        tx: &mut Tx,
        chain: &str,
        ancestor: i64,
        now: i64,
    ) -> Result<usize, LedgerError> {
        let rows = sqlx::query(
            "SELECT d.txn_hash, d.log_index FROM ledger_deposits d \
             JOIN observed_transfers t ON t.chain = d.chain AND t.tx_hash = d.txn_hash AND t.log_index = d.log_index \
             WHERE t.chain = $1 AND t.block_number > $2 AND t.removed = 1 AND d.status = 'credited'",
        )
        .bind(chain)
        .bind(ancestor)
        .fetch_all(&mut **tx)
        .await?;
        let mut reversed = 0;
        for row in rows {
            let txn_hash: String = row.try_get("txn_hash")?;
            let log_index: i64 = row.try_get("log_index")?;
            if self
                .reverse_deposit_in(tx, chain, &txn_hash, log_index, now)
                .await?
                .is_some()
            {
                reversed += 1;
            }
        }
        Ok(reversed)
    }
}
