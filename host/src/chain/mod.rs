//! Chain listeners: read blocks from a node, keep what pays a watched address, and hand it
//! to the [`matcher`](crate::matcher).
//!
//! This module owns
//!
//! - **network configuration** ([`ChainConfig`], [`AssetConfig`],
//!   [`PaymentContractConfig`]): the `[[chains]]` entries of the main config, their
//!   defaults and their validation (every error names its key, e.g.
//!   `chains[1].assets[0].contract`);
//! - **what a listener is doing** ([`ChainStatus`]), published live on a
//!   `tokio::sync::watch` channel, kept in `chain_cursors`, and exported as
//!   `polypay_chain_*` metrics;
//! - **following a chain** ([`follow`]): the chain-neutral loop (cursor, reorg rollback,
//!   watch set, committing transfers with the settlement they cause) that drives a
//!   chain-specific [`follow::ChainSource`];
//! - **the EVM listener** ([`evm`]): alloy over JSON-RPC/HTTP;
//! - **the TRON listener** ([`tron`]): java-tron's HTTP API, TRX and TRC20, finality by
//!   the solidified block.
//!
//! What a listener observed is an [`ObservedTransfer`] (the invoice domain's type,
//! re-exported here), with the block's time.
//!
//! # Guarantees every listener keeps
//!
//! They are kept once, by [`follow::Follower`], for every kind of chain.
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
pub mod follow;
pub mod tron;

pub use config::{
    AssetAmountError, AssetConfig, ChainConfig, ChainConfigError, ChainKind, PaymentContractConfig,
    validate_chains,
};

pub use crate::invoice::{NATIVE_LOG_INDEX, ObservedTransfer};
use crate::store::Store;

/// The listener of one `[[chains]]` entry, ready to `run`.
pub enum Listener {
    Evm(evm::EvmListener),
    Tron(tron::TronListener),
}

impl Listener {
    /// The chain's name.
    pub fn chain(&self) -> &str {
        match self {
            Listener::Evm(l) => &l.settings().chain,
            Listener::Tron(l) => &l.settings().chain,
        }
    }

    /// The live state of this listener.
    pub fn status(&self) -> tokio::sync::watch::Receiver<ChainStatus> {
        match self {
            Listener::Evm(l) => l.status(),
            Listener::Tron(l) => l.status(),
        }
    }

    /// Follows the chain until `shutdown` resolves (see [`follow`]).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        match self {
            Listener::Evm(l) => l.run(shutdown).await,
            Listener::Tron(l) => l.run(shutdown).await,
        }
    }
}

/// A listener for every `[[chains]]` entry.
pub fn listeners(chains: &[ChainConfig], store: &Store) -> Result<Vec<Listener>, ChainConfigError> {
    chains
        .iter()
        .enumerate()
        .map(|(index, chain)| {
            Ok(match chain.kind {
                ChainKind::Evm => Listener::Evm(evm::listener(chain, index, store.clone())?),
                ChainKind::Tron => Listener::Tron(tron::listener(chain, index, store.clone())?),
            })
        })
        .collect()
}

/// A chain's native coin (ETH, BNB, TRX, …), as its listener needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeAsset {
    pub symbol: String,
    pub decimals: u8,
}

/// A token a chain's listener follows, with its contract in the chain's address type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<A> {
    pub symbol: String,
    pub decimals: u8,
    pub contract: A,
}

/// What a listener is doing, as published on its status channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChainStatus {
    pub chain: String,
    /// The node's latest block number, as last seen.
    pub head_block: Option<u64>,
    /// The newest block the node declares irreversible (TRON: the solidified block,
    /// minus `solidified_depth`); `None` on chains without one.
    pub final_block: Option<u64>,
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
