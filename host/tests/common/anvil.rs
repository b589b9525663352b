//! A real local EVM node for tests: [`Anvil`] starts its own `anvil` on a free port, waits
//! until it answers, and kills it (its whole process group) when dropped. [`TestChain`]
//! adds the contracts from `contracts/` (a 6-decimal ERC20 and the `InvoicePayment`
//! contract) and the `[[chains]]` entry that points a listener at it.
//!
//! The node, its JSON-RPC and the contracts are the library's (`polypay_host::dev`, which
//! `polypay dev` runs on); this module adds what tests want on top: free ports, a
//! throw-away directory, and calls that panic with the reason instead of returning it.
//! The binary is found as `polypay_host::dev::node::anvil_binary` says, starting from
//! this crate's directory.
//!
//! [`Harness`] puts a [`TestChain`], a fresh database and a listener together for
//! end-to-end payment tests.
//!
//! Transactions are sent with `eth_sendTransaction` from anvil's unlocked development
//! accounts; with automine (the default) each one is mined in its own block before the
//! call returns.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::RootProvider;
use polypay_host::chain::{AssetConfig, ChainConfig, ChainKind, PaymentContractConfig};
pub use polypay_host::dev::contracts::Contracts;
use polypay_host::dev::node::{AnvilNode, AnvilOptions, NodeError};
pub use polypay_host::dev::rpc::Receipt;
use polypay_host::dev::rpc::{AnvilRpc, Transaction};
use polypay_host::invoice::{Amount, Invoice};
use polypay_host::matcher::TargetSpec;
use serde_json::Value;

use super::db::TestDb;
use super::merchant::Merchant;
use super::polypay::free_port;

/// BIP32 test vector 1, chain m/0H/1: an extended public key whose children nobody uses,
/// for derived-address invoices (public derivation only).
pub const TEST_XPUB: &str = "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ";

/// anvil's default chain id.
pub const CHAIN_ID: u64 = polypay_host::dev::setup::CHAIN_ID;

/// The anvil executable (see `polypay_host::dev::node::anvil_binary`).
pub fn anvil_binary() -> PathBuf {
    polypay_host::dev::node::anvil_binary(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A running anvil node, killed on drop.
pub struct Anvil {
    node: AnvilNode,
    pub port: u16,
    pub url: String,
    pub provider: RootProvider,
    /// Working directory: anvil's log, and its state file when persistent.
    _dir: tempfile::TempDir,
    /// The unlocked development accounts.
    pub accounts: Vec<Address>,
}

impl Anvil {
    /// Starts a fresh node.
    pub async fn start() -> Anvil {
        Anvil::launch(false).await
    }

    /// Starts a node that keeps its chain across [`Anvil::stop`] and [`Anvil::restart`]
    /// (anvil `--state`).
    pub async fn start_persistent() -> Anvil {
        Anvil::launch(true).await
    }

    async fn launch(persistent: bool) -> Anvil {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last_error = None;
        // A free port may be taken by someone else before anvil binds it: try another.
        for _ in 0..5 {
            let mut options = AnvilOptions::new(
                anvil_binary(),
                free_port(),
                CHAIN_ID,
                dir.path().join("anvil.log"),
            );
            if persistent {
                options.state = Some(dir.path().join("state.json"));
            }
            match AnvilNode::start(options).await {
                Ok(node) => {
                    let rpc = node.rpc().clone();
                    let accounts = rpc.accounts().await.expect("eth_accounts");
                    return Anvil {
                        port: node.port(),
                        url: node.url().to_string(),
                        provider: rpc.provider().clone(),
                        node,
                        _dir: dir,
                        accounts,
                    };
                }
                Err(e @ (NodeError::PortTaken { .. } | NodeError::WrongChain { .. })) => {
                    last_error = Some(e)
                }
                Err(e) => panic!("anvil did not start: {e}"),
            }
        }
        panic!("anvil did not start: {}", last_error.expect("an error"));
    }

    /// The node's JSON-RPC client.
    pub fn client(&self) -> &AnvilRpc {
        self.node.rpc()
    }

    /// Stops the node (SIGTERM to its process group, so a persistent node saves its
    /// state), and waits for it to exit. Its port stops answering.
    pub fn stop(&mut self) {
        self.node.stop();
    }

    /// Starts the node again on the same port (with its chain, if persistent).
    pub async fn restart(&mut self) {
        self.node
            .restart()
            .await
            .unwrap_or_else(|e| panic!("anvil did not restart: {e}"));
    }

    /// A JSON-RPC call, panicking on error.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// A JSON-RPC call.
    pub async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        self.client()
            .call(method, params)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn block_number(&self) -> u64 {
        self.client().block_number().await.expect("eth_blockNumber")
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) {
        self.client().mine(blocks).await.expect("anvil_mine");
    }

    /// Gives the next mined block the timestamp `time_ms` (unix ms, rounded up to the
    /// second, the unit of EVM block times); later blocks follow from it.
    pub async fn set_next_block_time(&self, time_ms: i64) {
        let secs = u64::try_from(time_ms.max(0))
            .expect("not negative")
            .div_ceil(1000);
        self.client()
            .set_next_block_timestamp(secs)
            .await
            .expect("evm_setNextBlockTimestamp");
    }

    /// Turns automine (one block per transaction) on or off.
    pub async fn set_automine(&self, on: bool) {
        self.client()
            .set_automine(on)
            .await
            .expect("evm_setAutomine");
    }

    /// Takes a snapshot of the chain; [`Anvil::revert`] returns to it.
    pub async fn snapshot(&self) -> Value {
        self.client().snapshot().await.expect("evm_snapshot")
    }

    /// Reverts the chain to a snapshot: the blocks after it disappear.
    pub async fn revert(&self, snapshot: Value) {
        self.client().revert(snapshot).await.expect("evm_revert");
    }

    /// Sends a transaction from an unlocked account and returns its mined receipt.
    pub async fn send(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        input: Bytes,
        gas: Option<u64>,
    ) -> Receipt {
        self.client()
            .send(Transaction {
                from,
                to,
                value,
                input,
                gas,
            })
            .await
            .expect("eth_sendTransaction")
    }

    /// Sends `value` wei from `from` to `to`.
    pub async fn send_eth(&self, from: Address, to: Address, value: U256) -> Receipt {
        self.send(from, Some(to), value, Bytes::new(), None).await
    }
}

/// An anvil node with the test token (symbol `USDT`, 6 decimals) and the payment contract
/// deployed, and the chain config that follows it.
pub struct TestChain {
    pub anvil: Anvil,
    pub token: Address,
    pub payment_contract: Address,
}

/// The chain name tests use.
pub const CHAIN: &str = "anvil";

impl TestChain {
    pub async fn start() -> TestChain {
        TestChain::on(Anvil::start().await).await
    }

    /// With a node that survives [`Anvil::stop`]/[`Anvil::restart`].
    pub async fn start_persistent() -> TestChain {
        TestChain::on(Anvil::start_persistent().await).await
    }

    async fn on(anvil: Anvil) -> TestChain {
        let contracts = Contracts::deploy(anvil.client(), anvil.accounts[0])
            .await
            .expect("deploy the test contracts");
        TestChain {
            anvil,
            token: contracts.token,
            payment_contract: contracts.payment_contract,
        }
    }

    fn contracts(&self) -> Contracts {
        Contracts {
            token: self.token,
            payment_contract: self.payment_contract,
        }
    }

    /// A `[[chains]]` entry for this node: `ETH` (native, 18 decimals) and `USDT` (the
    /// test token), the payment contract, 3 confirmations, fast polling, starting at the
    /// next block.
    pub async fn config(&self) -> ChainConfig {
        ChainConfig {
            name: CHAIN.into(),
            kind: ChainKind::Evm,
            chain_id: Some(CHAIN_ID),
            rpc_url: self.anvil.url.clone(),
            fallback_rpc_urls: Vec::new(),
            solidity_rpc_urls: Vec::new(),
            api_key: None,
            solidified_depth: 0,
            confirmations: 3,
            poll_interval_ms: 50,
            rpc_timeout_ms: 2_000,
            max_retry_interval_ms: 500,
            start_block: Some(self.anvil.block_number().await + 1),
            max_block_range: 1_000,
            reorg_window: 64,
            max_reorg_depth: 256,
            assets: vec![
                AssetConfig {
                    symbol: "ETH".into(),
                    decimals: 18,
                    native: true,
                    contract: None,
                    unique_amount_step: None,
                    unique_amount_slots: 1_000,
                    unique_amount_reuse_after_secs: 0,
                    payment_tolerance: None,
                },
                AssetConfig {
                    symbol: "USDT".into(),
                    decimals: 6,
                    native: false,
                    contract: Some(self.token.to_checksum(None)),
                    unique_amount_step: None,
                    unique_amount_slots: 1_000,
                    unique_amount_reuse_after_secs: 0,
                    payment_tolerance: None,
                },
            ],
            payment_contracts: vec![PaymentContractConfig {
                address: self.payment_contract.to_checksum(None),
                asset: "USDT".into(),
            }],
        }
    }

    /// A `[[chains]]` entry of a config file for this node, named `name`: `ETH` (native)
    /// and `USDT` (the test token), `confirmations` deep, polled every 100 ms from the next
    /// block on. Tables of the entry (`[[chains.payment_contracts]]`) may follow.
    pub async fn config_toml(&self, name: &str, confirmations: u32) -> String {
        let start = self.anvil.block_number().await + 1;
        self.config_toml_from(name, confirmations, start)
    }

    /// [`TestChain::config_toml`] followed from block `start` (instances that must agree
    /// on where the listener starts).
    pub fn config_toml_from(&self, name: &str, confirmations: u32, start: u64) -> String {
        format!(
            r#"
[[chains]]
name = "{name}"
kind = "evm"
chain_id = {CHAIN_ID}
rpc_url = "{rpc}"
confirmations = {confirmations}
poll_interval_ms = 100
start_block = {start}

[[chains.assets]]
symbol = "ETH"
decimals = 18
native = true

[[chains.assets]]
symbol = "USDT"
decimals = 6
contract = "{token}"
"#,
            rpc = self.anvil.url,
            token = self.token.to_checksum(None),
        )
    }

    /// Development account `i` (anvil has ten).
    pub fn account(&self, i: usize) -> Address {
        self.anvil.accounts[i]
    }

    /// Mints test tokens (base units) to `to`.
    pub async fn mint(&self, to: Address, amount: U256) -> Receipt {
        self.contracts()
            .mint(self.anvil.client(), self.account(0), to, amount)
            .await
            .expect("mint")
    }

    /// The test-token balance of `owner`, read from the chain.
    pub async fn token_balance(&self, owner: Address) -> U256 {
        self.contracts()
            .token_balance(self.anvil.client(), owner)
            .await
            .expect("balanceOf")
    }

    /// An ERC20 transfer of the test token.
    pub async fn transfer_token(&self, from: Address, to: Address, amount: U256) -> Receipt {
        self.contracts()
            .transfer_token(self.anvil.client(), from, to, amount)
            .await
            .expect("token transfer")
    }

    /// Approves the payment contract and pays through it: `Pay(invoice_id, recipient, amount)`.
    pub async fn pay_through_contract(
        &self,
        from: Address,
        invoice_id: &str,
        recipient: Address,
        amount: U256,
    ) -> Receipt {
        self.contracts()
            .pay_through_contract(self.anvil.client(), from, invoice_id, recipient, amount)
            .await
            .expect("pay through the payment contract")
            .1
    }
}

/// A test chain, a fresh database, a merchant, and (when spawned) an EVM listener
/// following the chain into the database: what an end-to-end payment test needs. Derefs
/// to its [`Merchant`].
pub struct Harness {
    pub chain: TestChain,
    pub merchant: Merchant,
}

impl std::ops::Deref for Harness {
    type Target = Merchant;

    fn deref(&self) -> &Merchant {
        &self.merchant
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut Merchant {
        &mut self.merchant
    }
}

impl Harness {
    /// On a fresh test chain, with its default config.
    pub async fn start(db: TestDb) -> Harness {
        Harness::start_with(db, TestChain::start().await, |_| {}).await
    }

    /// On `chain`, with its config changed by `edit`.
    pub async fn start_with(
        db: TestDb,
        chain: TestChain,
        edit: impl FnOnce(&mut ChainConfig),
    ) -> Harness {
        let mut config = chain.config().await;
        edit(&mut config);
        Harness {
            chain,
            merchant: Merchant::open_shop(db, config).await,
        }
    }

    /// Opens a fixed-address USDT invoice paid to `to`, expiring in an hour.
    pub async fn open_fixed_usdt(&self, to: Address, amount: &str) -> Invoice {
        let spec = TargetSpec::FixedAddress {
            address: to.to_checksum(None),
        };
        self.open_for_an_hour("USDT", amount, spec).await
    }

    /// Opens a USDT invoice paid to an address derived from [`TEST_XPUB`], expiring in an
    /// hour: any amount to that address counts, so partial payments accumulate.
    pub async fn open_derived_usdt(&self, amount: &str) -> Invoice {
        let spec = TargetSpec::DerivedAddress {
            xpub: TEST_XPUB.into(),
        };
        self.open_for_an_hour("USDT", amount, spec).await
    }

    /// Polls until the listener has processed the node's current head.
    pub async fn wait_caught_up(&self) {
        self.wait_processed(self.chain.anvil.block_number().await)
            .await;
    }

    /// Mints `amount` (decimal) test tokens to `to`.
    pub async fn mint_usdt(&self, to: Address, amount: &str) {
        self.chain.mint(to, usdt(amount)).await;
    }
}

/// A decimal USDT amount in base units.
pub fn usdt(amount: &str) -> U256 {
    Amount::parse_decimal(amount, 6).expect("amount").as_u256()
}

/// A decimal ETH amount in wei.
pub fn eth(amount: &str) -> U256 {
    Amount::parse_decimal(amount, 18).expect("amount").as_u256()
}
