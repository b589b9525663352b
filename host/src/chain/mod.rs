//! Chain listeners: read blocks from a node, keep what pays a watched address, and hand it
//! to the [`matcher`](crate::matcher).
//!
//! This module owns
//!
//! - **network configuration** ([`ChainConfig`], [`AssetConfig`],
//!   [`PaymentContractConfig`]): the `[[chains]]` entries of the main config, their
//!   defaults and their validation (every error names its key, e.g.
//!   `chains[1].assets[0].contract`);
//! - **what a listener observed** ([`ObservedTransfer`]), chain-neutral: addresses, hashes
//!   and amounts as the strings the database keeps;
//! - **what a listener is doing** ([`ChainStatus`]), published live on a
//!   `tokio::sync::watch` channel, kept in `chain_cursors`, and exported as
//!   `polypay_chain_*` metrics;
//! - **the EVM listener** ([`evm`]): alloy over JSON-RPC/HTTP.
//!
//! A TRON listener (`chain::tron`) will sit beside [`evm`] and produce the same
//! [`ObservedTransfer`]s; `kind = "tron"` is already a recognised config value.
//!
//! # Guarantees every listener keeps
//!
//! - Blocks are processed strictly in order from a stored cursor (`chain_cursors`); a
//!   range's transfers, block hashes and the cursor advance commit in one transaction, so
//!   a listener killed at any point resumes exactly where the last commit left it.
//! - A transfer is stored once, unique on (chain, tx hash, log index); replaying a range
//!   changes nothing.
//! - A node error never skips a block: the step is retried with exponential backoff and
//!   the failure is visible in [`ChainStatus`] and `polypay_chain_rpc_errors_total`.
//! - A reorg (a new block whose parent is not the stored hash, or a stored tip the node no
//!   longer has) rolls back to the common ancestor: orphaned transfers are marked
//!   `removed` and the invoices they paid are re-settled, which moves them back with an
//!   `invoice.reverted` outbox event.

mod config;
pub mod evm;

pub use config::{
    AssetConfig, ChainConfig, ChainConfigError, ChainKind, PaymentContractConfig, validate_chains,
};

pub use crate::invoice::{NATIVE_LOG_INDEX, ObservedTransfer};
use crate::store::Store;

/// A listener for every `[[chains]]` entry this host can follow, ready to `run`. Entries of
/// kind `tron` are skipped with a warning until `chain::tron` exists.
pub fn evm_listeners(
    chains: &[ChainConfig],
    store: &Store,
) -> Result<Vec<evm::EvmListener>, ChainConfigError> {
    let mut listeners = Vec::new();
    for (index, chain) in chains.iter().enumerate() {
        match chain.kind {
            ChainKind::Evm => {
                listeners.push(evm::EvmListener::from_config(chain, index, store.clone())?)
            }
            ChainKind::Tron => {
                tracing::warn!(chain = %chain.name, "no TRON listener yet; chain not followed")
            }
        }
    }
    Ok(listeners)
}

/// What a listener is doing, as published on its status channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChainStatus {
    pub chain: String,
    /// The node's latest block number, as last seen.
    pub head_block: Option<u64>,
    /// The highest block fully processed.
    pub processed_block: Option<u64>,
    /// `head_block - processed_block`, when both are known.
    pub lag_blocks: Option<u64>,
    /// False while the node is failing; the listener keeps retrying.
    pub healthy: bool,
    /// The last error, cleared by the next successful step.
    pub last_error: Option<String>,
    /// Errors in a row since the last successful step.
    pub consecutive_errors: u32,
    /// Reorgs handled since start.
    pub reorgs: u64,
}

impl ChainStatus {
    fn new(chain: &str) -> ChainStatus {
        ChainStatus {
            chain: chain.to_string(),
            healthy: true,
            ..ChainStatus::default()
        }
    }
}
