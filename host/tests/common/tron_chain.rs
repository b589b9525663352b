//! A TRON test network: the java-tron simulator ([`super::tron`]) with a USDT-like TRC20
//! token, the `[[chains]]` entry that points a listener at its nodes, and
//! [`TronHarness`] for end-to-end payment tests.

use polypay_host::chain::tron::TronAddress;
use polypay_host::chain::{AssetConfig, ChainConfig, ChainKind};
use polypay_host::invoice::{Amount, Invoice};
use polypay_host::matcher::TargetSpec;

use super::db::TestDb;
use super::merchant::Merchant;
use super::tron::{SimChain, SimNode};

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
        unique_amount_reuse_after_secs: 0,
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

/// Simulated nodes of one chain, a fresh database, a merchant, and (when spawned) a TRON
/// listener following the chain into the database: what an end-to-end payment test needs.
/// Derefs to its [`Merchant`].
pub struct TronHarness {
    /// The preferred node (`rpc_url`).
    pub node: SimNode,
    /// Nodes listed in `fallback_rpc_urls`, in order.
    pub fallbacks: Vec<SimNode>,
    pub merchant: Merchant,
}

impl std::ops::Deref for TronHarness {
    type Target = Merchant;

    fn deref(&self) -> &Merchant {
        &self.merchant
    }
}

impl std::ops::DerefMut for TronHarness {
    fn deref_mut(&mut self) -> &mut Merchant {
        &mut self.merchant
    }
}

impl TronHarness {
    /// One node over a fresh chain; the listener starts at the next block.
    pub async fn start(db: TestDb) -> TronHarness {
        TronHarness::start_with(db, 0, |_| {}).await
    }

    /// A node and `fallbacks` more over one fresh chain, the config changed by `edit`.
    pub async fn start_with(
        db: TestDb,
        fallbacks: usize,
        edit: impl FnOnce(&mut ChainConfig),
    ) -> TronHarness {
        let node = SimNode::start().await;
        let mut others = Vec::new();
        for _ in 0..fallbacks {
            others.push(SimNode::serve(node.chain.clone()).await);
        }
        let urls: Vec<String> = std::iter::once(&node)
            .chain(&others)
            .map(SimNode::url)
            .collect();
        let mut config = config(&urls, node.chain.head() + 1);
        edit(&mut config);
        TronHarness {
            merchant: Merchant::open_shop(db, config).await,
            node,
            fallbacks: others,
        }
    }

    pub fn chain(&self) -> &SimChain {
        &self.node.chain
    }

    /// Opens a fixed-address invoice for `amount` of `asset` paid to `to`, expiring in an
    /// hour.
    pub async fn open_fixed(&self, asset: &str, to: TronAddress, amount: &str) -> Invoice {
        let spec = TargetSpec::FixedAddress {
            address: to.to_string(),
        };
        self.open_for_an_hour(asset, amount, spec).await
    }

    /// Polls until the listener has processed the chain's current head.
    pub async fn wait_caught_up(&self) {
        self.wait_processed(self.chain().head()).await;
    }

    /// Mines until block `number` is solidified, then waits for the listener to process
    /// the head.
    pub async fn solidify(&self, number: u64) {
        self.chain().mine_until_solidified(number);
        self.wait_caught_up().await;
    }
}
