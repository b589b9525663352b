//! JSON-RPC to a local anvil node: the standard calls a wallet makes, and the development
//! calls only anvil answers (mining on demand, reorgs, snapshots, the next block's time).
//!
//! Transactions are sent with `eth_sendTransaction` from anvil's unlocked development
//! accounts, so anvil signs them; with automine (the default) each is mined in its own
//! block at once, and [`AnvilRpc::send`] returns its receipt.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{Provider, RootProvider};
use serde_json::{Value, json};

/// How long [`AnvilRpc::receipt`] waits for a transaction to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("`{0}` is not a JSON-RPC URL")]
    InvalidUrl(String),
    #[error("{method} to {url}: {message}")]
    Call {
        method: String,
        url: String,
        message: String,
    },
    #[error("{method} to {url} answered unexpectedly: {answer}")]
    Unexpected {
        method: String,
        url: String,
        answer: String,
    },
    #[error("transaction {0} was not mined within {secs} s", secs = RECEIPT_TIMEOUT.as_secs())]
    NotMined(B256),
}

/// A client of one anvil node.
#[derive(Clone)]
pub struct AnvilRpc {
    url: String,
    provider: RootProvider,
}

/// What callers need of a mined transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
    /// False when the transaction reverted.
    pub success: bool,
    pub contract_address: Option<Address>,
}

/// A transaction from an unlocked account.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    pub from: Address,
    /// None deploys `input` as a contract.
    pub to: Option<Address>,
    pub value: U256,
    pub input: Bytes,
    pub gas: Option<u64>,
}

impl AnvilRpc {
    /// A client of the node at `url` (`http://host:port`). Connects lazily.
    pub fn new(url: &str) -> Result<AnvilRpc, RpcError> {
        let parsed = url
            .parse()
            .map_err(|_| RpcError::InvalidUrl(url.to_string()))?;
        Ok(AnvilRpc {
            url: url.to_string(),
            provider: RootProvider::new_http(parsed),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying alloy provider.
    pub fn provider(&self) -> &RootProvider {
        &self.provider
    }

    /// A raw JSON-RPC call.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.provider
            .raw_request::<_, Value>(method.to_string().into(), params)
            .await
            .map_err(|e| RpcError::Call {
                method: method.to_string(),
                url: self.url.clone(),
                message: e.to_string(),
            })
    }

    /// A call whose answer is deserialised into `T`.
    async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, RpcError> {
        let answer = self.call(method, params).await?;
        serde_json::from_value(answer.clone()).map_err(|_| self.unexpected(method, &answer))
    }

    fn unexpected(&self, method: &str, answer: &Value) -> RpcError {
        RpcError::Unexpected {
            method: method.to_string(),
            url: self.url.clone(),
            answer: answer.to_string(),
        }
    }

    pub async fn chain_id(&self) -> Result<u64, RpcError> {
        let id: U256 = self.call_as("eth_chainId", json!([])).await?;
        Ok(id.saturating_to())
    }

    pub async fn block_number(&self) -> Result<u64, RpcError> {
        let number: U256 = self.call_as("eth_blockNumber", json!([])).await?;
        Ok(number.saturating_to())
    }

    /// The unlocked development accounts.
    pub async fn accounts(&self) -> Result<Vec<Address>, RpcError> {
        self.call_as("eth_accounts", json!([])).await
    }

    pub async fn balance(&self, owner: Address) -> Result<U256, RpcError> {
        self.call_as("eth_getBalance", json!([owner, "latest"]))
            .await
    }

    /// `eth_call` against the latest block.
    pub async fn view(&self, to: Address, data: Vec<u8>) -> Result<Bytes, RpcError> {
        self.call_as(
            "eth_call",
            json!([{ "to": to, "data": Bytes::from(data) }, "latest"]),
        )
        .await
    }

    /// The block `number` as JSON (without transaction bodies); None past the head.
    pub async fn block(&self, number: u64) -> Result<Option<Value>, RpcError> {
        let block = self
            .call(
                "eth_getBlockByNumber",
                json!([format!("{number:#x}"), false]),
            )
            .await?;
        Ok((!block.is_null()).then_some(block))
    }

    /// The timestamp (Unix seconds) of block `number`.
    pub async fn block_timestamp(&self, number: u64) -> Result<u64, RpcError> {
        let method = "eth_getBlockByNumber";
        let block = self
            .block(number)
            .await?
            .ok_or_else(|| self.unexpected(method, &Value::Null))?;
        serde_json::from_value::<U256>(block["timestamp"].clone())
            .map(|t| t.saturating_to())
            .map_err(|_| self.unexpected(method, &block))
    }

    /// The hashes of the transactions in block `number`.
    pub async fn block_transactions(&self, number: u64) -> Result<Vec<B256>, RpcError> {
        let Some(block) = self.block(number).await? else {
            return Ok(Vec::new());
        };
        serde_json::from_value(block["transactions"].clone())
            .map_err(|_| self.unexpected("eth_getBlockByNumber", &block))
    }

    /// Mines `blocks` empty blocks (`anvil_mine`).
    pub async fn mine(&self, blocks: u64) -> Result<(), RpcError> {
        self.call("anvil_mine", json!([format!("{blocks:#x}")]))
            .await
            .map(drop)
    }

    /// Replaces the newest `depth` blocks with as many empty ones (`anvil_reorg`): the
    /// chain keeps its height, and the transactions of the replaced blocks are gone.
    pub async fn reorg(&self, depth: u64) -> Result<(), RpcError> {
        self.call("anvil_reorg", json!([depth, []])).await.map(drop)
    }

    /// Turns automine (one block per transaction) on or off.
    pub async fn set_automine(&self, on: bool) -> Result<(), RpcError> {
        self.call("evm_setAutomine", json!([on])).await.map(drop)
    }

    /// The next block gets this timestamp (Unix seconds); later blocks follow on from it.
    pub async fn set_next_block_timestamp(&self, secs: u64) -> Result<(), RpcError> {
        self.call("evm_setNextBlockTimestamp", json!([secs]))
            .await
            .map(drop)
    }

    /// Takes a snapshot of the chain; [`AnvilRpc::revert`] returns to it.
    pub async fn snapshot(&self) -> Result<Value, RpcError> {
        self.call("evm_snapshot", json!([])).await
    }

    /// Reverts the chain to a snapshot: the blocks after it disappear.
    pub async fn revert(&self, snapshot: Value) -> Result<(), RpcError> {
        let method = "evm_revert";
        let answer = self.call(method, json!([snapshot])).await?;
        if answer == json!(true) {
            Ok(())
        } else {
            Err(self.unexpected(method, &answer))
        }
    }

    /// Sends a transaction from an unlocked account and returns its receipt once mined
    /// (a reverted transaction is a receipt with `success: false`).
    pub async fn send(&self, tx: Transaction) -> Result<Receipt, RpcError> {
        let mut request = json!({ "from": tx.from, "value": tx.value, "input": tx.input });
        if let Some(to) = tx.to {
            request["to"] = json!(to);
        }
        if let Some(gas) = tx.gas {
            request["gas"] = json!(format!("{gas:#x}"));
        }
        let hash: B256 = self
            .call_as("eth_sendTransaction", json!([request]))
            .await?;
        self.receipt(hash).await
    }

    /// The receipt of a transaction, waiting for it to be mined.
    pub async fn receipt(&self, hash: B256) -> Result<Receipt, RpcError> {
        let method = "eth_getTransactionReceipt";
        let deadline = Instant::now() + RECEIPT_TIMEOUT;
        loop {
            let receipt = self.call(method, json!([hash])).await?;
            if !receipt.is_null() {
                return Receipt::from_json(hash, &receipt)
                    .ok_or_else(|| self.unexpected(method, &receipt));
            }
            if Instant::now() > deadline {
                return Err(RpcError::NotMined(hash));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Receipt {
    fn from_json(tx_hash: B256, json: &Value) -> Option<Receipt> {
        let number: U256 = serde_json::from_value(json["blockNumber"].clone()).ok()?;
        Some(Receipt {
            tx_hash,
            block_number: number.saturating_to(),
            block_hash: serde_json::from_value(json["blockHash"].clone()).ok()?,
            success: json["status"] == json!("0x1"),
            contract_address: serde_json::from_value(json["contractAddress"].clone())
                .ok()
                .flatten(),
        })
    }
}
