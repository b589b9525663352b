//! Reading blocks, TRX transfers and TRC20 `Transfer` logs from a java-tron node.
//!
//! [`BlockReader::scan`] returns everything blocks `from..=to` hold for the watched
//! addresses, with every block's id, parent id and timestamp:
//!
//! - **TRX**: a transaction whose contract is a `TransferContract` to a watched address,
//!   kept only when its `ret[0].contractRet` is `SUCCESS`; amount in sun. TRX moved by
//!   contract code (internal transactions) and TRC10 tokens are not payments here, as
//!   internal ETH transfers are not on EVM chains.
//! - **TRC20**: `Transfer(address,address,uint256)` logs emitted by a configured token
//!   contract to a watched address, read from `/wallet/gettransactioninfobyblocknum`,
//!   kept only when the transaction succeeded (no `FAILED` result, `receipt.result` and
//!   `contractRet` both `SUCCESS`): a reverted or out-of-energy transaction pays nothing.
//!   Infos are only asked for blocks holding a transaction that runs TVM code, and only
//!   while some token recipient is watched.
//!
//! A transfer's `log_index` is the position of its log within its transaction's logs
//! (TRON has no block-wide log index), [`NATIVE_LOG_INDEX`] for TRX; transfers are in
//! chain order. Ids and hashes are java-tron's bare lowercase hex; addresses base58.
//!
//! Consistency: the blocks of a range must chain (each one's `parentHash` is the previous
//! one's `blockID`), and every info must belong to its block (same number and timestamp,
//! one of the block's transactions, every TVM transaction answered for): the two calls
//! may reach different nodes, or one node across a reorg, and a mixed answer is refused
//! ([`ReadError::Inconsistent`]), never half-used.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use super::Network;
use super::address::TronAddress;
use super::client::{Answered, Api, ClientError, TronClient};
use super::wire::{self, Block, BlockList, DecodeError, TransactionInfos};
use crate::chain::follow::{Scan, ScannedBlock};
use crate::chain::{NATIVE_LOG_INDEX, ObservedTransfer};
use crate::invoice::Amount;

/// Blocks one `/wallet/getblockbylimitnext` call may ask for (java-tron's limit).
pub const BLOCKS_PER_CALL: u64 = 100;
/// Transaction-info lists fetched concurrently while scanning a range.
const INFO_FETCH_CONCURRENCY: usize = 4;

/// A block's identity (`blockID`, 64 lowercase hex digits), its link to its parent and
/// its time (`block_header.raw_data.timestamp`, unix milliseconds).
fn block_ref(block: &Block) -> ScannedBlock {
    ScannedBlock {
        number: block.number(),
        id: block.block_id.to_ascii_lowercase(),
        parent_id: block.parent_id().to_ascii_lowercase(),
        timestamp_ms: Some(block.timestamp_ms()),
    }
}

/// The addresses a scan keeps transfers to.
pub type WatchSet = crate::chain::follow::WatchSet<TronAddress>;

/// A failed read. Every variant is transient from the listener's point of view: it
/// retries the same blocks, never skips them.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Node(#[from] ClientError),
    #[error("the node has no block {0}")]
    MissingBlock(u64),
    #[error("the node answering is behind: its head is {head}, block {wanted} was asked")]
    NodeBehind { head: u64, wanted: u64 },
    #[error("inconsistent answer from the node: {0}")]
    Inconsistent(String),
    #[error("unreadable answer from the node: {0}")]
    Malformed(String),
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> ReadError {
        ReadError::Malformed(e.to_string())
    }
}

/// Reads one TRON network. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlockReader {
    client: Arc<TronClient>,
    network: Arc<Network>,
}

impl BlockReader {
    pub fn new(network: Arc<Network>) -> Result<BlockReader, ClientError> {
        let client = TronClient::new(
            &network.name,
            &network.rpc_urls,
            &network.solidity_rpc_urls,
            network.api_key.as_deref(),
            network.rpc_timeout,
        )?;
        Ok(BlockReader {
            client: Arc::new(client),
            network,
        })
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The node's latest block.
    pub async fn head(&self) -> Result<ScannedBlock, ReadError> {
        let answer: Answered<Option<Block>> = self
            .client
            .call(Api::Full, "/wallet/getnowblock", &json!({}))
            .await?;
        let block = answer
            .value
            .ok_or_else(|| ReadError::Inconsistent("the node has no latest block".into()))?;
        Ok(block_ref(&block))
    }

    /// The newest solidified (irreversible) block number.
    pub async fn solidified_head(&self) -> Result<u64, ReadError> {
        let answer: Answered<Option<Block>> = self
            .client
            .call(Api::Solidity, "/walletsolidity/getnowblock", &json!({}))
            .await?;
        let block = answer
            .value
            .ok_or_else(|| ReadError::Inconsistent("the node has no solidified block".into()))?;
        Ok(block.number())
    }

    /// Block `number`'s identity, or `None` when the node says it has no such block though
    /// its head is past it. A node whose head is below `number` answers
    /// [`ReadError::NodeBehind`]: a fallback endpoint still syncing must never make a
    /// processed block look vanished. A reorg to a shorter chain therefore shows up once
    /// the new branch has grown past the old tip (seconds on TRON), as a different id.
    pub async fn block(&self, number: u64) -> Result<Option<ScannedBlock>, ReadError> {
        let answer: Answered<Option<Block>> = self
            .client
            .call(
                Api::Full,
                "/wallet/getblockbynum",
                &json!({ "num": number }),
            )
            .await?;
        match answer.value {
            Some(block) if block.number() == number => Ok(Some(block_ref(&block))),
            Some(block) => Err(ReadError::Inconsistent(format!(
                "asked for block {number}, got block {}",
                block.number()
            ))),
            None => {
                let head: Option<Block> = self
                    .client
                    .call_at(
                        Api::Full,
                        answer.endpoint,
                        "/wallet/getnowblock",
                        &json!({}),
                    )
                    .await?;
                let head = head.map(|b| b.number()).unwrap_or(0);
                if head < number {
                    Err(ReadError::NodeBehind {
                        head,
                        wanted: number,
                    })
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Blocks `from..=to`, ascending, chained by their parent ids.
    async fn blocks(&self, from: u64, to: u64) -> Result<Vec<Block>, ReadError> {
        let mut blocks = Vec::with_capacity((to - from + 1) as usize);
        if from == to {
            let answer: Answered<Option<Block>> = self
                .client
                .call(Api::Full, "/wallet/getblockbynum", &json!({ "num": from }))
                .await?;
            blocks.push(answer.value.ok_or(ReadError::MissingBlock(from))?);
        } else {
            let mut start = from;
            while start <= to {
                let end = to.min(start + BLOCKS_PER_CALL - 1);
                let answer: Answered<BlockList> = self
                    .client
                    .call(
                        Api::Full,
                        "/wallet/getblockbylimitnext",
                        &json!({ "startNum": start, "endNum": end + 1 }),
                    )
                    .await?;
                let mut list = answer.value.block;
                list.sort_by_key(Block::number);
                blocks.extend(list);
                start = end + 1;
            }
        }
        for (expected, block) in (from..=to).zip(blocks.iter()) {
            if block.number() != expected {
                return Err(ReadError::MissingBlock(expected));
            }
        }
        if blocks.len() as u64 != to - from + 1 {
            return Err(ReadError::MissingBlock(from + blocks.len() as u64));
        }
        for pair in blocks.windows(2) {
            if !pair[1].parent_id().eq_ignore_ascii_case(&pair[0].block_id) {
                return Err(ReadError::Inconsistent(format!(
                    "block {} does not follow block {}",
                    pair[1].number(),
                    pair[0].number()
                )));
            }
        }
        Ok(blocks)
    }

    async fn infos(&self, number: u64) -> Result<TransactionInfos, ReadError> {
        let answer: Answered<TransactionInfos> = self
            .client
            .call(
                Api::Full,
                "/wallet/gettransactioninfobyblocknum",
                &json!({ "num": number }),
            )
            .await?;
        Ok(answer.value)
    }

    /// Everything blocks `from..=to` hold for `watch`; see the module docs.
    pub async fn scan(&self, from: u64, to: u64, watch: &WatchSet) -> Result<Scan, ReadError> {
        assert!(from <= to, "scan range {from}..={to} is empty");
        let blocks = self.blocks(from, to).await?;
        let want_tokens = !self.network.tokens.is_empty() && !watch.token_recipients.is_empty();
        let need_infos: Vec<u64> = if want_tokens {
            blocks
                .iter()
                .filter(|b| b.transactions.iter().any(wire::Transaction::runs_vm))
                .map(Block::number)
                .collect()
        } else {
            Vec::new()
        };
        // Owned futures (a clone of the reader each): a stream of futures borrowing
        // `self` is not provably `Send` to rustc.
        let reader = self.clone();
        let infos: HashMap<u64, TransactionInfos> = futures::stream::iter(need_infos)
            .map(move |n| {
                let reader = reader.clone();
                async move { reader.infos(n).await.map(|i| (n, i)) }
            })
            .buffered(INFO_FETCH_CONCURRENCY)
            .try_collect()
            .await?;

        let mut transfers = Vec::new();
        for block in &blocks {
            let infos = infos.get(&block.number());
            self.block_transfers(block, infos, watch, &mut transfers)?;
        }
        Ok(Scan {
            blocks: blocks.iter().map(block_ref).collect(),
            transfers,
        })
    }

    /// The transfers of one block, in transaction order (a transaction's TRX first, then
    /// its logs).
    fn block_transfers(
        &self,
        block: &Block,
        infos: Option<&TransactionInfos>,
        watch: &WatchSet,
        out: &mut Vec<ObservedTransfer>,
    ) -> Result<(), ReadError> {
        let network = &*self.network;
        let by_id: HashMap<&str, &wire::TransactionInfo> = match infos {
            Some(infos) => self.check_infos(block, infos)?,
            None => HashMap::new(),
        };
        let (number, block_id) = (block.number(), block.block_id.to_ascii_lowercase());
        let transfer = |tx_id: &str,
                        log_index: i64,
                        from: TronAddress,
                        to: TronAddress,
                        asset: &str,
                        amount: Amount| ObservedTransfer {
            chain: network.name.clone(),
            tx_hash: tx_id.to_ascii_lowercase(),
            log_index,
            block_number: number,
            block_hash: block_id.clone(),
            block_time: block.timestamp_ms(),
            from: from.to_string(),
            to: to.to_string(),
            asset: asset.to_string(),
            amount,
            reference: None,
        };
        for tx in &block.transactions {
            let Some(contract) = tx.contract() else {
                continue;
            };
            if let Some(native) = &network.native
                && contract.kind == wire::TRANSFER_CONTRACT
                && !watch.native_recipients.is_empty()
            {
                let value = contract.transfer()?;
                let to = node_address(&value.to_address)?;
                if watch.native_recipients.contains(&to)
                    && value.amount > 0
                    && tx.contract_ret() == Some(wire::SUCCESS)
                {
                    let from = node_address(&value.owner_address)?;
                    out.push(transfer(
                        &tx.tx_id,
                        NATIVE_LOG_INDEX,
                        from,
                        to,
                        &native.symbol,
                        Amount::from(value.amount as u64),
                    ));
                }
            }
            let Some(info) = by_id.get(tx.tx_id.as_str()) else {
                continue;
            };
            if !(info.succeeded() && tx.contract_ret() == Some(wire::SUCCESS)) {
                continue;
            }
            for (index, log) in info.log.iter().enumerate() {
                let Some(token) = log_address(&log.address).and_then(|a| network.token_at(a))
                else {
                    continue;
                };
                if log.topics.len() != 3
                    || !log.topics[0]
                        .trim_start_matches("0x")
                        .eq_ignore_ascii_case(wire::TRANSFER_TOPIC)
                {
                    continue;
                }
                let (Some(from), Some(to), Some(value)) = (
                    wire::word(&log.topics[1]),
                    wire::word(&log.topics[2]),
                    wire::word(&log.data),
                ) else {
                    tracing::warn!(chain = %network.name, tx = %tx.tx_id, "undecodable TRC20 Transfer log skipped");
                    continue;
                };
                let to = word_address(&to);
                if !watch.token_recipients.contains(&to) {
                    continue;
                }
                out.push(transfer(
                    &tx.tx_id,
                    index as i64,
                    word_address(&from),
                    to,
                    &token.symbol,
                    Amount::from(alloy_primitives::U256::from_be_bytes(value)),
                ));
            }
        }
        Ok(())
    }

    /// The infos of `block` by transaction id, after checking they are this block's.
    fn check_infos<'a>(
        &self,
        block: &Block,
        infos: &'a TransactionInfos,
    ) -> Result<HashMap<&'a str, &'a wire::TransactionInfo>, ReadError> {
        let number = block.number();
        let ids: HashSet<&str> = block
            .transactions
            .iter()
            .map(|t| t.tx_id.as_str())
            .collect();
        let mut by_id = HashMap::with_capacity(infos.0.len());
        for info in &infos.0 {
            if info.block_number != number
                || info.block_timestamp != block.timestamp_ms()
                || !ids.contains(info.id.as_str())
            {
                return Err(ReadError::Inconsistent(format!(
                    "transaction info {} is not of block {number} {}",
                    info.id, block.block_id
                )));
            }
            by_id.insert(info.id.as_str(), info);
        }
        if let Some(missing) = block
            .transactions
            .iter()
            .find(|t| t.runs_vm() && !by_id.contains_key(t.tx_id.as_str()))
        {
            return Err(ReadError::Inconsistent(format!(
                "no transaction info for {} of block {number}",
                missing.tx_id
            )));
        }
        Ok(by_id)
    }
}

/// An address as java-tron writes it in blocks: hex with `41`, or base58 (`visible`).
fn node_address(text: &str) -> Result<TronAddress, ReadError> {
    TronAddress::from_hex(text)
        .or_else(|_| TronAddress::parse(text))
        .map_err(|e| ReadError::Malformed(e.to_string()))
}

/// A log's emitting contract: 20-byte hex, or base58 (`visible`).
fn log_address(text: &str) -> Option<TronAddress> {
    let mut evm = [0u8; 20];
    if hex::decode_to_slice(text.trim_start_matches("0x"), &mut evm).is_ok() {
        return Some(TronAddress::from_evm(evm));
    }
    TronAddress::from_hex(text)
        .or_else(|_| TronAddress::parse(text))
        .ok()
}

/// The address in the low 20 bytes of a 32-byte word.
fn word_address(word: &[u8; 32]) -> TronAddress {
    let mut evm = [0u8; 20];
    evm.copy_from_slice(&word[12..]);
    TronAddress::from_evm(evm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{AssetConfig, ChainConfig, ChainKind};
    use wire::Answer as _;

    const TOKEN: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
    const PAYER: &str = "41ce8a0cf0c16d48bcf22825f6053248df653c89ca";
    const MERCHANT_WORD: &str = "000000000000000000000000d0b69631440f0a494bb51f7eee68ff5c593c00f0";
    const MERCHANT: &str = "TUznHJfHe6gdYY7gvWmf6bNZHuPHDZtowf";

    fn reader() -> BlockReader {
        let asset = |symbol: &str, contract: Option<&str>| AssetConfig {
            symbol: symbol.into(),
            decimals: 6,
            native: contract.is_none(),
            contract: contract.map(str::to_string),
            unique_amount_step: None,
            unique_amount_slots: 1,
            unique_amount_reuse_after_secs: 0,
            payment_tolerance: None,
        };
        let config = ChainConfig {
            name: "tron".into(),
            kind: ChainKind::Tron,
            chain_id: None,
            rpc_url: "http://127.0.0.1:9".into(),
            fallback_rpc_urls: Vec::new(),
            solidity_rpc_urls: Vec::new(),
            api_key: None,
            confirmations: 1,
            solidified_depth: 0,
            poll_interval_ms: 1,
            rpc_timeout_ms: 1,
            max_retry_interval_ms: 1,
            start_block: None,
            max_block_range: 1,
            reorg_window: 1,
            max_reorg_depth: 1,
            assets: vec![asset("TRX", None), asset("USDT", Some(TOKEN))],
            payment_contracts: Vec::new(),
        };
        BlockReader::new(Arc::new(Network::from_config(&config, 0).unwrap())).unwrap()
    }

    /// A block with one TRC20 `transfer` call whose execution ended with `ret`, and its
    /// info, which (as the documentation warns may happen) still carries the logs.
    fn token_call(ret: &str, failed: bool) -> (Block, TransactionInfos) {
        let block = format!(
            r#"{{"blockID":"0000000000000005aa","block_header":{{"raw_data":{{"number":5,"parentHash":"00","timestamp":15000}}}},
            "transactions":[{{"ret":[{{"contractRet":"{ret}"}}],"txID":"ab","raw_data":{{"contract":[{{"parameter":{{"value":
            {{"data":"a9059cbb","owner_address":"{PAYER}","contract_address":"41a614f803b6fd780986a42c78ec9c7f77e6ded13c"}},
            "type_url":"type.googleapis.com/protocol.TriggerSmartContract"}},"type":"TriggerSmartContract"}}]}}}}]}}"#
        );
        let result = if failed { r#","result":"FAILED""# } else { "" };
        let infos = format!(
            r#"[{{"id":"ab","blockNumber":5,"blockTimeStamp":15000,"receipt":{{"result":"{ret}"}},"log":[{{
            "address":"a614f803b6fd780986a42c78ec9c7f77e6ded13c","topics":["{}","000000000000000000000000ce8a0cf0c16d48bcf22825f6053248df653c89ca","{MERCHANT_WORD}"],
            "data":"00000000000000000000000000000000000000000000000000000000000f4240"}}]{result}}}]"#,
            wire::TRANSFER_TOPIC
        );
        (
            <Option<Block>>::decode(block.as_bytes()).unwrap().unwrap(),
            TransactionInfos::decode(infos.as_bytes()).unwrap(),
        )
    }

    fn transfers(block: &Block, infos: &TransactionInfos) -> Vec<ObservedTransfer> {
        let watch = WatchSet {
            token_recipients: [TronAddress::parse(MERCHANT).unwrap()].into(),
            ..WatchSet::default()
        };
        let mut out = Vec::new();
        reader()
            .block_transfers(block, Some(infos), &watch, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn logs_of_a_failed_execution_pay_nothing() {
        let (block, infos) = token_call("SUCCESS", false);
        let paid = transfers(&block, &infos);
        assert_eq!(paid.len(), 1);
        assert_eq!(paid[0].amount, Amount::from(1_000_000));
        assert_eq!(paid[0].to, MERCHANT);
        for (ret, failed) in [("REVERT", true), ("OUT_OF_ENERGY", true), ("SUCCESS", true)] {
            let (block, infos) = token_call(ret, failed);
            assert!(
                transfers(&block, &infos).is_empty(),
                "{ret} failed={failed}"
            );
        }
        // The block's own verdict counts too.
        let (block, _) = token_call("REVERT", false);
        let (_, infos) = token_call("SUCCESS", false);
        assert!(transfers(&block, &infos).is_empty());
    }
}
