//! A transfer a chain listener saw: the chain-neutral fact the matcher attributes to an
//! invoice and the invoice service settles.

use super::Amount;

/// A transfer to a watched address (or a payment-contract event), as the matcher and the
/// `observed_transfers` table take it. Addresses, hashes and amounts are the strings the
/// database keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTransfer {
    /// The config name of the chain (`ethereum`, `tron`, …).
    pub chain: String,
    /// Transaction hash as the chain family writes it (EVM: `0x`-prefixed lowercase hex).
    pub tx_hash: String,
    /// Index of the log within its block; [`NATIVE_LOG_INDEX`] for a native transfer.
    pub log_index: i64,
    pub block_number: u64,
    /// Block hash as the chain family writes it.
    pub block_hash: String,
    /// The block's timestamp, unix milliseconds: when the payment was made, for lateness.
    pub block_time: i64,
    /// The payer (for a payment-contract event: the sender of the transaction).
    pub from: String,
    /// The receiving address (for a payment-contract event: its `recipient`).
    pub to: String,
    /// Asset symbol from the chain's config.
    pub asset: String,
    /// Amount in the asset's base units.
    pub amount: Amount,
    /// The invoice reference a payment-contract event names; `None` for plain transfers.
    pub reference: Option<String>,
}

/// `log_index` of a native-coin transfer, which has no log.
pub const NATIVE_LOG_INDEX: i64 = -1;
