//! A TRON test network: the java-tron simulator ([`super::tron`]) with a USDT-like TRC20
//! token, and the `[[chains]]` entry that points a listener at its nodes.

use polypay_host::chain::tron::TronAddress;
use polypay_host::chain::{AssetConfig, ChainConfig, ChainKind};
use polypay_host::invoice::Amount;

use super::tron::SimChain;

/// The chain name tests use.
pub const CHAIN: &str = "tron";

/// The TRC20 token the tests pay with (symbol `USDT`, 6 decimals).
pub fn usdt() -> TronAddress {
    SimChain::contract(0)
}

/// A TRC20 token the chain config does not list.
pub fn unlisted_token() -> TronAddress {
    SimChain::contract(1)
}

/// A decimal amount of a 6-decimal asset (TRX or USDT) in base units.
pub fn units(amount: &str) -> Amount {
    Amount::parse_decimal(amount, 6).expect("amount")
}

/// A `[[chains]]` entry following `urls` (the first preferred): `TRX` (native) and `USDT`,
/// 1 confirmation (finality comes from solidification), fast polling, starting at
/// `start_block`.
pub fn config(urls: &[String], start_block: u64) -> ChainConfig {
    let asset = |symbol: &str, contract: Option<String>| AssetConfig {
        symbol: symbol.into(),
        decimals: 6,
        native: contract.is_none(),
        contract,
        unique_amount_step: None,
        unique_amount_slots: 1_000,
        payment_tolerance: None,
    };
    ChainConfig {
        name: CHAIN.into(),
        kind: ChainKind::Tron,
        chain_id: None,
        rpc_url: urls[0].clone(),
        fallback_rpc_urls: urls[1..].to_vec(),
        solidity_rpc_urls: Vec::new(),
        api_key: None,
        confirmations: 1,
        solidified_depth: 0,
        poll_interval_ms: 50,
        rpc_timeout_ms: 2_000,
        max_retry_interval_ms: 500,
        start_block: Some(start_block),
        max_block_range: 1_000,
        reorg_window: 30,
        max_reorg_depth: 256,
        assets: vec![asset("TRX", None), asset("USDT", Some(usdt().to_string()))],
        payment_contracts: Vec::new(),
    }
}
