//! The TRON chain listener: java-tron's full-node HTTP API over `reqwest`, against
//! TronGrid-compatible providers or a self-hosted node (mainnet, Shasta, Nile).
//!
//! - [`address`]: base58check addresses with the `0x41` prefix, and the one conversion
//!   between their base58, hex and 20-byte forms.
//! - [`wire`]: java-tron's JSON answers (blocks, transactions, transaction infos, errors).
//! - [`client`]: the HTTP client: several endpoints with failover, timeouts, the
//!   `TRON-PRO-API-KEY` header.
//! - [`BlockReader`]: what a block range holds for the watched addresses (TRX
//!   `TransferContract`s, TRC20 `Transfer` logs of successful transactions), the head and
//!   the solidified head.
//! - [`Network`]: a `[[chains]]` entry of kind `tron`, parsed and checked.
//!
//! # Finality
//!
//! TRON's delegated proof of stake declares blocks irreversible once two thirds of the
//! super representatives have built on them: the *solidified* block
//! (`/walletsolidity/getnowblock`), about 19 blocks (one minute) behind the head. A
//! payment is final when its block is at or below the solidified block minus
//! `solidified_depth` (default 0) *and* has the chain's `confirmations`; until then the
//! invoice is `confirming`. Reorgs above the solidified block are rare but possible and
//! are followed as on EVM chains.
//!
//! # Decisions where java-tron is silent
//!
//! - Ids and hashes are kept as java-tron prints them (64 lowercase hex digits, no `0x`),
//!   addresses as base58check, in the database and towards plugins.
//! - Self-hosted java-tron serves `/walletsolidity/*` on its own port (8091 by default);
//!   `solidity_rpc_urls` names those endpoints, defaulting to the full-node URLs (TronGrid
//!   and most providers serve both on one host).
//! - Payment contracts (the `contract-reference` strategy) are not offered on TRON.

pub mod address;
pub mod client;
mod reader;
mod source;
pub mod wire;

pub use address::{AddressError, TronAddress};
pub use reader::{BLOCKS_PER_CALL, BlockReader, ReadError, WatchSet};
pub use source::{TronListener, TronSource, listener};

use std::time::Duration;

pub use super::NativeAsset;
use super::{ChainConfig, ChainConfigError, ChainKind};

/// TRX has 6 decimals: 1 TRX = 1 000 000 sun.
pub const TRX_DECIMALS: u8 = 6;

/// A TRON network from config, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    /// Full-node endpoints, in order of preference.
    pub rpc_urls: Vec<String>,
    /// Endpoints serving `/walletsolidity/*`, in order of preference.
    pub solidity_rpc_urls: Vec<String>,
    pub api_key: Option<String>,
    /// Blocks a payment must be below the solidified block before it is final.
    pub solidified_depth: u32,
    pub rpc_timeout: Duration,
    /// TRX, if the chain's assets include it.
    pub native: Option<NativeAsset>,
    pub tokens: Vec<Token>,
}

/// A TRC20 token.
pub type Token = super::Token<TronAddress>;

impl Network {
    /// Parses the `index`-th `[[chains]]` entry, which must be of kind `tron`.
    pub fn from_config(config: &ChainConfig, index: usize) -> Result<Network, ChainConfigError> {
        let key = |field: &str| format!("chains[{index}].{field}");
        if config.kind != ChainKind::Tron {
            return Err(ChainConfigError::new(key("kind"), "not a tron chain"));
        }
        if config.chain_id.is_some() {
            return Err(ChainConfigError::new(
                key("chain_id"),
                "TRON's HTTP API has no chain id; remove it",
            ));
        }
        if !config.payment_contracts.is_empty() {
            return Err(ChainConfigError::new(
                key("payment_contracts"),
                "payment contracts are not supported on tron chains",
            ));
        }
        let mut rpc_urls = vec![config.rpc_url.clone()];
        for (i, url) in config.fallback_rpc_urls.iter().enumerate() {
            check_url(url)
                .map_err(|p| ChainConfigError::new(key(&format!("fallback_rpc_urls[{i}]")), p))?;
            rpc_urls.push(url.clone());
        }
        for (i, url) in config.solidity_rpc_urls.iter().enumerate() {
            check_url(url)
                .map_err(|p| ChainConfigError::new(key(&format!("solidity_rpc_urls[{i}]")), p))?;
        }
        let solidity_rpc_urls = if config.solidity_rpc_urls.is_empty() {
            rpc_urls.clone()
        } else {
            config.solidity_rpc_urls.clone()
        };
        if let Some(api_key) = &config.api_key
            && (api_key.is_empty() || reqwest::header::HeaderValue::from_str(api_key).is_err())
        {
            return Err(ChainConfigError::new(
                key("api_key"),
                "must be a non-empty header value",
            ));
        }
        let mut native = None;
        let mut tokens = Vec::new();
        for (a, asset) in config.assets.iter().enumerate() {
            match &asset.contract {
                None => {
                    if asset.decimals != TRX_DECIMALS {
                        return Err(ChainConfigError::new(
                            key(&format!("assets[{a}].decimals")),
                            format!("TRX has {TRX_DECIMALS} decimals (1 TRX = 1000000 sun)"),
                        ));
                    }
                    native = Some(NativeAsset {
                        symbol: asset.symbol.clone(),
                        decimals: asset.decimals,
                    });
                }
                Some(contract) => tokens.push(Token {
                    symbol: asset.symbol.clone(),
                    decimals: asset.decimals,
                    contract: TronAddress::parse(contract).map_err(|e| {
                        ChainConfigError::new(key(&format!("assets[{a}].contract")), e.to_string())
                    })?,
                }),
            }
        }
        if let Some((t, token)) = tokens
            .iter()
            .enumerate()
            .find(|(t, token)| tokens[..*t].iter().any(|o| o.contract == token.contract))
        {
            return Err(ChainConfigError::new(
                key("assets"),
                format!(
                    "token contract {} is listed twice (asset {t})",
                    token.contract
                ),
            ));
        }
        Ok(Network {
            name: config.name.clone(),
            rpc_urls,
            solidity_rpc_urls,
            api_key: config.api_key.clone(),
            solidified_depth: config.solidified_depth,
            rpc_timeout: Duration::from_millis(config.rpc_timeout_ms),
            native,
            tokens,
        })
    }

    /// The token whose contract is `address`.
    pub fn token_at(&self, address: TronAddress) -> Option<&Token> {
        self.tokens.iter().find(|t| t.contract == address)
    }
}

fn check_url(url: &str) -> Result<(), InvalidUrl> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(InvalidUrl::Scheme);
    }
    reqwest::Url::parse(url)
        .map(drop)
        .map_err(|e| InvalidUrl::Unparsable(e.to_string()))
}

/// A node URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum InvalidUrl {
    #[error("must be an http:// or https:// URL")]
    Scheme,
    #[error("not a URL: {0}")]
    Unparsable(String),
}

/// The stored form of a TRON address given by a person or a plugin: base58check, checked.
pub fn canonical_address(text: &str) -> Result<String, AddressError> {
    TronAddress::parse(text.trim()).map(|a| a.to_string())
}
