//! The EVM chain listener: alloy over JSON-RPC/HTTP, against any Ethereum-compatible node
//! (Ethereum and its testnets, BSC, Polygon, Fantom, a local anvil).
//!
//! - [`Network`]: a `[[chains]]` entry of kind `evm`, parsed and checked (addresses,
//!   URL, the asset each contract moves).
//! - [`BlockReader`]: reads what the listener needs from the node, block range by block
//!   range: ERC20 `Transfer` logs and payment-contract `Pay` logs via `eth_getLogs`, native
//!   transfers from full blocks (kept only when their receipt says the transaction
//!   succeeded), and the hashes that detect reorgs.
//! - [`EvmSource`]: the reader as a [`ChainSource`] (the node's chain id checked first,
//!   a refused log range reported as such); [`EvmListener`] is the chain-neutral
//!   [`Follower`] driving it: cursor, reorgs, settlement, backoff, [`ChainStatus`].
//!
//! Addresses are kept in EIP-55 checksum form (`0xAbC…`) wherever they are stored or
//! compared as text; hashes as lowercase `0x` hex.
//!
//! Chain quirks handled here: nodes that cap `eth_getLogs` ranges or result counts (the
//! range halves on each refusal and grows back), nodes of other EVM chains whose blocks
//! carry transaction types Ethereum does not know (read through alloy's `AnyNetwork`), and
//! logs a node flags `removed` (ignored: the reorg check owns rollbacks).
//!
//! [`ChainStatus`]: super::ChainStatus
//! [`ChainSource`]: super::follow::ChainSource
//! [`Follower`]: super::follow::Follower

mod reader;
mod source;

pub use reader::{BlockReader, BlockRef, ReadError, Scan, WatchSet};
pub use source::{EvmListener, EvmSource, listener};

use std::time::Duration;

use alloy::primitives::Address;

pub use super::NativeAsset;
use super::{ChainConfig, ChainConfigError, ChainKind};

alloy::sol! {
    /// The ERC20 transfer event.
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// The payment contract's event (contract-reference strategy); nothing is indexed.
    event Pay(string invoice_id, address recipient, uint256 amount);
}

/// An EVM network from config, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub chain_id: u64,
    pub rpc_url: alloy::transports::http::reqwest::Url,
    pub rpc_timeout: Duration,
    /// The native coin, if the chain's assets include it.
    pub native: Option<NativeAsset>,
    pub tokens: Vec<Token>,
    pub payment_contracts: Vec<PaymentContract>,
}

/// An ERC20 token.
pub type Token = super::Token<Address>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentContract {
    pub address: Address,
    /// Symbol of the token it moves.
    pub asset: String,
    /// That token's contract.
    pub token: Address,
}

impl Network {
    /// Parses the `index`-th `[[chains]]` entry, which must be of kind `evm`.
    pub fn from_config(config: &ChainConfig, index: usize) -> Result<Network, ChainConfigError> {
        let key = |field: &str| format!("chains[{index}].{field}");
        if config.kind != ChainKind::Evm {
            return Err(ChainConfigError::new(key("kind"), "not an evm chain"));
        }
        let chain_id = config
            .chain_id
            .ok_or_else(|| ChainConfigError::new(key("chain_id"), "required for an evm chain"))?;
        let rpc_url = config
            .rpc_url
            .parse()
            .map_err(|e| ChainConfigError::new(key("rpc_url"), format!("not a URL: {e}")))?;
        let mut native = None;
        let mut tokens = Vec::new();
        for (a, asset) in config.assets.iter().enumerate() {
            match &asset.contract {
                None => {
                    native = Some(NativeAsset {
                        symbol: asset.symbol.clone(),
                        decimals: asset.decimals,
                    })
                }
                Some(contract) => tokens.push(Token {
                    symbol: asset.symbol.clone(),
                    decimals: asset.decimals,
                    contract: parse_address(contract).map_err(|p| {
                        ChainConfigError::new(key(&format!("assets[{a}].contract")), p)
                    })?,
                }),
            }
        }
        let mut payment_contracts = Vec::new();
        for (p, contract) in config.payment_contracts.iter().enumerate() {
            let address = parse_address(&contract.address).map_err(|problem| {
                ChainConfigError::new(key(&format!("payment_contracts[{p}].address")), problem)
            })?;
            let token = tokens
                .iter()
                .find(|t| t.symbol == contract.asset)
                .ok_or_else(|| {
                    ChainConfigError::new(
                        key(&format!("payment_contracts[{p}].asset")),
                        format!("`{}` is not one of this chain's tokens", contract.asset),
                    )
                })?;
            payment_contracts.push(PaymentContract {
                address,
                asset: contract.asset.clone(),
                token: token.contract,
            });
        }
        Ok(Network {
            name: config.name.clone(),
            chain_id,
            rpc_url,
            rpc_timeout: Duration::from_millis(config.rpc_timeout_ms),
            native,
            tokens,
            payment_contracts,
        })
    }

    /// The token whose contract is `address`.
    pub fn token_at(&self, address: Address) -> Option<&Token> {
        self.tokens.iter().find(|t| t.contract == address)
    }

    /// The payment contract at `address`.
    pub fn payment_contract_at(&self, address: Address) -> Option<&PaymentContract> {
        self.payment_contracts.iter().find(|p| p.address == address)
    }
}

/// Parses a `0x` + 40 hex digits address. Mixed case must be a valid EIP-55 checksum
/// (a typo in a checksummed address is caught, not paid to).
pub fn parse_address(text: &str) -> Result<Address, InvalidAddress> {
    let not_hex = || InvalidAddress::NotHex(text.to_string());
    let hex = text.strip_prefix("0x").ok_or_else(not_hex)?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_hex());
    }
    let mixed =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        Address::parse_checksummed(text, None)
            .map_err(|_| InvalidAddress::Checksum(text.to_string()))
    } else {
        text.parse().map_err(|_| not_hex())
    }
}

/// Text that is not an EVM address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAddress {
    #[error("`{0}` is not a 20-byte hex address")]
    NotHex(String),
    #[error("`{0}` has a wrong EIP-55 checksum")]
    Checksum(String),
}

/// The text form of an address everywhere polypay stores or compares one: EIP-55.
pub fn address_text(address: Address) -> String {
    address.to_checksum(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_in_any_case_but_a_wrong_checksum_is_refused() {
        let good = "0xdAC17F958D2ee523a2206206994597C13D831ec7";
        let a = parse_address(good).unwrap();
        assert_eq!(parse_address(&good.to_lowercase()).unwrap(), a);
        assert_eq!(
            parse_address(&format!("0x{}", good[2..].to_uppercase())).unwrap(),
            a
        );
        assert_eq!(address_text(a), good);
        assert!(parse_address("0xdac17F958D2ee523a2206206994597C13D831ec7").is_err());
        assert!(parse_address("dAC17F958D2ee523a2206206994597C13D831ec7").is_err());
        assert!(parse_address("0x1234").is_err());
    }
}
