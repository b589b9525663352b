//! A real local EVM node for tests: [`Anvil`] starts its own `anvil` on a free port, waits
//! until it answers, and kills it (its whole process group) when dropped. [`TestChain`]
//! adds the contracts from `contracts/` (a 6-decimal ERC20 and the `InvoicePayment`
//! contract) and the `[[chains]]` entry that points a listener at it.
//!
//! The binary is found, in order, at `POLYPAY_ANVIL`, in the repository's
//! `node_modules` (installed by `scripts/install-test-tools.sh`), then on `PATH`.
//!
//! [`Harness`] puts a [`TestChain`], a fresh database and a listener together for
//! end-to-end payment tests.
//!
//! Transactions are sent with `eth_sendTransaction` from anvil's unlocked development
//! accounts; with automine (the default) each one is mined in its own block before the
//! call returns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::sol_types::{SolCall, SolValue};
use polypay_host::chain::{AssetConfig, ChainConfig, ChainKind, PaymentContractConfig};
use polypay_host::invoice::{Amount, Invoice};
use polypay_host::matcher::TargetSpec;
use serde_json::{Value, json};

use super::db::TestDb;
use super::merchant::Merchant;
use super::polypay::free_port;

alloy::sol! {
    function mint(address to, uint256 value) external;
    function transfer(address to, uint256 value) external returns (bool);
    function approve(address spender, uint256 value) external returns (bool);
    function pay(string invoice_id, address recipient, uint256 amount) external;
    function balanceOf(address owner) external view returns (uint256);
}

const TEST_TOKEN_ARTIFACT: &str = include_str!("../../../contracts/artifacts/TestToken.json");
const INVOICE_PAYMENT_ARTIFACT: &str =
    include_str!("../../../contracts/artifacts/InvoicePayment.json");

/// BIP32 test vector 1, chain m/0H/1: an extended public key whose children nobody uses,
/// for derived-address invoices (public derivation only).
pub const TEST_XPUB: &str = "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ";

/// anvil's default chain id.
pub const CHAIN_ID: u64 = 31337;

/// The anvil executable. See the module docs for the search order.
pub fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("POLYPAY_ANVIL") {
        return PathBuf::from(path);
    }
    // The platform package's native binary: unlike the npm `.bin/anvil` wrapper (a node
    // script), killing it stops the node itself.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        let scope = dir.join("node_modules/@foundry-rs");
        for platform in ["linux-amd64", "linux-arm64", "darwin-arm64", "darwin-amd64"] {
            let candidate = scope.join(format!("anvil-{platform}/bin/anvil"));
            if candidate.is_file() {
                return candidate;
            }
        }
        let wrapper = dir.join("node_modules/.bin/anvil");
        if wrapper.is_file() {
            return wrapper;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("anvil not found: run scripts/install-test-tools.sh (or set POLYPAY_ANVIL)");
}

/// A running anvil node, killed on drop.
pub struct Anvil {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    pub provider: RootProvider,
    /// Working directory: anvil's log, and its state file when persistent.
    dir: tempfile::TempDir,
    persistent: bool,
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
        let mut dir = tempfile::tempdir().expect("temp dir");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let url = format!("http://127.0.0.1:{port}");
            let provider = RootProvider::new_http(url.parse().expect("url"));
            let mut anvil = Anvil {
                child: None,
                port,
                url,
                provider,
                dir,
                persistent,
                accounts: Vec::new(),
            };
            match anvil.spawn_and_wait().await {
                Ok(()) => {
                    let accounts = anvil.rpc("eth_accounts", json!([])).await;
                    anvil.accounts = serde_json::from_value(accounts).expect("accounts");
                    return anvil;
                }
                Err(e) => {
                    last_error = e;
                    anvil.stop();
                    dir = std::mem::replace(&mut anvil.dir, tempfile::tempdir().expect("temp dir"));
                }
            }
        }
        panic!("anvil did not start: {last_error}");
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("anvil.log"))
            .map_err(|e| e.to_string())?;
        let mut command = Command::new(anvil_binary());
        command
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--chain-id",
                &CHAIN_ID.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if self.persistent {
            command
                .arg("--state")
                .arg(self.dir.path().join("state.json"));
        }
        // Its own process group, so that drop can stop it together with any wrapper.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", anvil_binary().display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(id) = self.provider.get_chain_id().await {
                return if id == CHAIN_ID {
                    Ok(())
                } else {
                    Err(format!("port {} answers chain id {id}", self.port))
                };
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("anvil.log")).unwrap_or_default();
                return Err(format!("anvil exited with {status}: {log}"));
            }
            if Instant::now() > deadline {
                return Err("anvil did not answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the node (SIGTERM to its process group, so a persistent node saves its
    /// state), and waits for it to exit. Its port stops answering.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                signal_group(child.id(), "-KILL");
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the node again on the same port (with its chain, if persistent).
    pub async fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                // The old socket may linger a moment.
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("anvil restart retry: {e}");
                    self.stop();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("anvil did not restart: {e}"),
            }
        }
    }

    /// A JSON-RPC call, panicking on error.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// A JSON-RPC call.
    pub async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        self.provider
            .raw_request::<_, Value>(method.to_string().into(), params)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn block_number(&self) -> u64 {
        self.provider
            .get_block_number()
            .await
            .expect("eth_blockNumber")
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) {
        self.rpc("anvil_mine", json!([format!("{blocks:#x}")]))
            .await;
    }

    /// Gives the next mined block the timestamp `time_ms` (unix ms, rounded up to the
    /// second, the unit of EVM block times); later blocks follow from it.
    pub async fn set_next_block_time(&self, time_ms: i64) {
        let secs = (time_ms + 999) / 1000;
        self.rpc("evm_setNextBlockTimestamp", json!([secs])).await;
    }

    /// Turns automine (one block per transaction) on or off.
    pub async fn set_automine(&self, on: bool) {
        self.rpc("evm_setAutomine", json!([on])).await;
    }

    /// Takes a snapshot of the chain; [`Anvil::revert`] returns to it.
    pub async fn snapshot(&self) -> Value {
        self.rpc("evm_snapshot", json!([])).await
    }

    /// Reverts the chain to a snapshot: the blocks after it disappear.
    pub async fn revert(&self, snapshot: Value) {
        assert_eq!(
            self.rpc("evm_revert", json!([snapshot])).await,
            json!(true),
            "evm_revert"
        );
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
        let mut tx = json!({ "from": from, "value": value, "input": input });
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        if let Some(gas) = gas {
            tx["gas"] = json!(format!("{gas:#x}"));
        }
        let hash: B256 = serde_json::from_value(self.rpc("eth_sendTransaction", json!([tx])).await)
            .expect("tx hash");
        self.receipt(hash).await
    }

    /// The receipt of a mined transaction (waits for it to be mined).
    pub async fn receipt(&self, hash: B256) -> Receipt {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !receipt.is_null() {
                return Receipt::from_json(hash, &receipt);
            }
            assert!(Instant::now() < deadline, "transaction {hash} not mined");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `value` wei from `from` to `to`.
    pub async fn send_eth(&self, from: Address, to: Address, value: U256) -> Receipt {
        self.send(from, Some(to), value, Bytes::new(), None).await
    }

    /// Deploys a contract from an artifact in `contracts/artifacts` with ABI-encoded
    /// constructor arguments.
    pub async fn deploy(&self, artifact: &str, constructor_args: Vec<u8>) -> Address {
        let artifact: Value = serde_json::from_str(artifact).expect("artifact JSON");
        let bytecode = artifact["bytecode"].as_str().expect("artifact bytecode");
        let mut code = alloy::hex::decode(bytecode).expect("bytecode hex");
        code.extend(constructor_args);
        let receipt = self
            .send(self.accounts[0], None, U256::ZERO, code.into(), None)
            .await;
        assert!(
            receipt.success,
            "deployment of {} failed",
            artifact["contractName"]
        );
        receipt.contract_address.expect("contract address")
    }
}

fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), "-KILL");
            let _ = child.wait();
        }
    }
}

/// What the tests need of a mined transaction.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
    pub success: bool,
    pub contract_address: Option<Address>,
}

impl Receipt {
    fn from_json(tx_hash: B256, json: &Value) -> Receipt {
        let number = json["blockNumber"].as_str().expect("blockNumber");
        Receipt {
            tx_hash,
            block_number: u64::from_str_radix(number.trim_start_matches("0x"), 16)
                .expect("block number"),
            block_hash: serde_json::from_value(json["blockHash"].clone()).expect("block hash"),
            success: json["status"] == json!("0x1"),
            contract_address: serde_json::from_value(json["contractAddress"].clone())
                .ok()
                .flatten(),
        }
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
        let token = anvil
            .deploy(
                TEST_TOKEN_ARTIFACT,
                ("Test USD".to_string(), "USDT".to_string()).abi_encode_params(),
            )
            .await;
        let payment_contract = anvil
            .deploy(INVOICE_PAYMENT_ARTIFACT, token.abi_encode())
            .await;
        TestChain {
            anvil,
            token,
            payment_contract,
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

    /// Development account `i` (anvil has ten).
    pub fn account(&self, i: usize) -> Address {
        self.anvil.accounts[i]
    }

    /// Mints test tokens (base units) to `to`.
    pub async fn mint(&self, to: Address, amount: U256) -> Receipt {
        let input = mintCall { to, value: amount }.abi_encode();
        self.call(self.account(0), self.token, input).await
    }

    /// The test-token balance of `owner`, read from the chain.
    pub async fn token_balance(&self, owner: Address) -> U256 {
        let data = balanceOfCall { owner }.abi_encode();
        let result = self
            .anvil
            .rpc(
                "eth_call",
                json!([{ "to": self.token, "data": Bytes::from(data) }, "latest"]),
            )
            .await;
        let bytes: Bytes = serde_json::from_value(result).expect("eth_call returns bytes");
        U256::from_be_slice(&bytes)
    }

    /// An ERC20 transfer of the test token.
    pub async fn transfer_token(&self, from: Address, to: Address, amount: U256) -> Receipt {
        self.call(
            from,
            self.token,
            transferCall { to, value: amount }.abi_encode(),
        )
        .await
    }

    /// Approves the payment contract and pays through it: `Pay(invoice_id, recipient, amount)`.
    pub async fn pay_through_contract(
        &self,
        from: Address,
        invoice_id: &str,
        recipient: Address,
        amount: U256,
    ) -> Receipt {
        let approve = approveCall {
            spender: self.payment_contract,
            value: amount,
        }
        .abi_encode();
        self.call(from, self.token, approve).await;
        let input = payCall {
            invoice_id: invoice_id.to_string(),
            recipient,
            amount,
        }
        .abi_encode();
        self.call(from, self.payment_contract, input).await
    }

    async fn call(&self, from: Address, to: Address, input: Vec<u8>) -> Receipt {
        let receipt = self
            .anvil
            .send(from, Some(to), U256::ZERO, input.into(), None)
            .await;
        assert!(receipt.success, "call to {to} reverted");
        receipt
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
