//! Reading blocks, logs and native transfers from an EVM node.
//!
//! [`BlockReader::scan`] returns everything a block range holds for the watched
//! addresses, with the hashes of the blocks it saw. It checks that the node answered about
//! one chain: every log must carry the hash of its block when that hash is known, and a
//! single-block scan asks for logs *by block hash* (EIP-234), so a block replaced between
//! two calls is noticed ([`ReadError::Inconsistent`]) instead of mixed in.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alloy::consensus::Transaction as _;
use alloy::eips::BlockNumberOrTag;
use alloy::network::{AnyNetwork, AnyRpcBlock, ReceiptResponse as _, TransactionResponse as _};
use alloy::primitives::{Address, B256, TxHash};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::ClientBuilder;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use alloy::transports::TransportError;
use alloy::transports::http::reqwest;
use futures::{StreamExt, TryStreamExt};

use super::{Network, Pay, Transfer, address_text};
use crate::chain::{NATIVE_LOG_INDEX, ObservedTransfer};
use crate::invoice::Amount;

/// Up to this many watched recipients go into the `eth_getLogs` topic filter; with more,
/// the reader asks for every `Transfer` of the configured tokens and filters locally (a
/// node limits how large a filter it accepts).
const MAX_TOPIC_ADDRESSES: usize = 500;

/// Full blocks fetched concurrently while scanning a range for native transfers.
const BLOCK_FETCH_CONCURRENCY: usize = 4;

/// A block's identity, its link to its parent, and its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// The block's timestamp, unix milliseconds.
    pub time_ms: i64,
}

/// The addresses a scan keeps transfers to.
pub type WatchSet = crate::chain::follow::WatchSet<Address>;

/// What one block range holds for the watched addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The blocks whose hashes the scan learnt, ascending; always the first and the last
    /// block of the range, every block when native transfers were scanned.
    pub blocks: Vec<BlockRef>,
    /// Transfers and payment-contract events, by block then log index (natives first).
    pub transfers: Vec<ObservedTransfer>,
}

impl Scan {
    /// The first block of the range.
    pub fn first(&self) -> BlockRef {
        self.blocks[0]
    }

    /// The last block of the range.
    pub fn last(&self) -> BlockRef {
        self.blocks[self.blocks.len() - 1]
    }
}

/// A failed read. Every variant is transient from the listener's point of view: it
/// retries the same blocks, never skips them.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{method} failed: {source}")]
    Rpc {
        method: &'static str,
        #[source]
        source: TransportError,
    },
    #[error("the node has no block {0}")]
    MissingBlock(u64),
    #[error("inconsistent answer from the node: {0}")]
    Inconsistent(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(
        "the node reports chain id {actual}, but chain `{chain}` is configured with {expected}"
    )]
    WrongChain {
        chain: String,
        expected: u64,
        actual: u64,
    },
}

impl ReadError {
    /// True when `eth_getLogs` refused or failed: a smaller range may succeed.
    pub fn is_get_logs(&self) -> bool {
        matches!(
            self,
            ReadError::Rpc {
                method: "eth_getLogs",
                ..
            }
        )
    }
}

fn rpc(method: &'static str) -> impl FnOnce(TransportError) -> ReadError {
    move |source| ReadError::Rpc { method, source }
}

/// Reads one EVM network over JSON-RPC. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlockReader {
    provider: RootProvider<AnyNetwork>,
    network: Arc<Network>,
}

impl BlockReader {
    /// A reader of `network` over HTTP, each request bounded by the network's RPC timeout.
    pub fn new(network: Arc<Network>) -> Result<BlockReader, ReadError> {
        let client = reqwest::Client::builder()
            .timeout(network.rpc_timeout)
            .connect_timeout(network.rpc_timeout)
            .build()
            .map_err(|e| ReadError::Client(e.to_string()))?;
        let rpc = ClientBuilder::default().http_with_client(client, network.rpc_url.clone());
        Ok(BlockReader {
            provider: RootProvider::new(rpc),
            network,
        })
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The chain id the node reports.
    pub async fn chain_id(&self) -> Result<u64, ReadError> {
        self.provider
            .get_chain_id()
            .await
            .map_err(rpc("eth_chainId"))
    }

    /// The node's latest block number.
    pub async fn head(&self) -> Result<u64, ReadError> {
        self.provider
            .get_block_number()
            .await
            .map_err(rpc("eth_blockNumber"))
    }

    /// The node's gas price in wei (`eth_gasPrice`).
    pub async fn gas_price(&self) -> Result<u128, ReadError> {
        self.provider
            .get_gas_price()
            .await
            .map_err(rpc("eth_gasPrice"))
    }

    /// Block `number`'s identity, or `None` when the node has no such block (yet, or any
    /// more after a reorg to a shorter chain).
    pub async fn block(&self, number: u64) -> Result<Option<BlockRef>, ReadError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(rpc("eth_getBlockByNumber"))?;
        Ok(block.as_ref().map(block_ref))
    }

    async fn full_block(&self, number: u64) -> Result<AnyRpcBlock, ReadError> {
        self.provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .full()
            .await
            .map_err(rpc("eth_getBlockByNumber"))?
            .ok_or(ReadError::MissingBlock(number))
    }

    /// Everything blocks `from..=to` hold for `watch`: ERC20 transfers of the configured
    /// tokens to a watched recipient, every `Pay` event of a configured payment contract,
    /// and successful native transfers to a watched recipient. The ERC20 transfer a `Pay`
    /// makes (its inner `transferFrom`) is left out: the `Pay` event is that payment.
    pub async fn scan(&self, from: u64, to: u64, watch: &WatchSet) -> Result<Scan, ReadError> {
        assert!(from <= to, "scan range {from}..={to} is empty");
        let network = &*self.network;
        let scan_native = network.native.is_some() && !watch.native_recipients.is_empty();

        // Block identities (and, for natives, their transactions).
        let mut full_blocks = Vec::new();
        let blocks: Vec<BlockRef> = if scan_native {
            // Owned futures (a clone of the reader each): a stream of futures borrowing
            // `self` is not provably `Send` to rustc.
            let reader = self.clone();
            full_blocks = futures::stream::iter(from..=to)
                .map(move |n| {
                    let reader = reader.clone();
                    async move { reader.full_block(n).await }
                })
                .buffered(BLOCK_FETCH_CONCURRENCY)
                .try_collect()
                .await?;
            full_blocks.iter().map(block_ref).collect()
        } else {
            let first = self
                .block(from)
                .await?
                .ok_or(ReadError::MissingBlock(from))?;
            if from == to {
                vec![first]
            } else {
                let last = self.block(to).await?.ok_or(ReadError::MissingBlock(to))?;
                vec![first, last]
            }
        };
        let known: HashMap<u64, B256> = blocks.iter().map(|b| (b.number, b.hash)).collect();
        for pair in blocks.windows(2) {
            if pair[1].number == pair[0].number + 1 && pair[1].parent_hash != pair[0].hash {
                return Err(ReadError::Inconsistent(format!(
                    "block {} does not follow block {}",
                    pair[1].number, pair[0].number
                )));
            }
        }

        // Logs: token transfers to watched recipients, and payment-contract events.
        let mut logs = Vec::new();
        let range = |filter: Filter| {
            if from == to {
                filter.at_block_hash(blocks[0].hash)
            } else {
                filter.from_block(from).to_block(to)
            }
        };
        if !network.tokens.is_empty() && !watch.token_recipients.is_empty() {
            let contracts: Vec<Address> = network.tokens.iter().map(|t| t.contract).collect();
            let mut filter = Filter::new()
                .address(contracts)
                .event_signature(Transfer::SIGNATURE_HASH);
            if watch.token_recipients.len() <= MAX_TOPIC_ADDRESSES {
                let recipients: Vec<B256> = watch
                    .token_recipients
                    .iter()
                    .map(|a| a.into_word())
                    .collect();
                filter = filter.topic2(recipients);
            }
            logs.extend(
                self.provider
                    .get_logs(&range(filter))
                    .await
                    .map_err(rpc("eth_getLogs"))?,
            );
        }
        if !network.payment_contracts.is_empty() {
            let contracts: Vec<Address> = network
                .payment_contracts
                .iter()
                .map(|p| p.address)
                .collect();
            let filter = Filter::new()
                .address(contracts)
                .event_signature(Pay::SIGNATURE_HASH);
            logs.extend(
                self.provider
                    .get_logs(&range(filter))
                    .await
                    .map_err(rpc("eth_getLogs"))?,
            );
        }

        let mut transfers = Vec::new();
        let mut pays = Vec::new();
        for log in &logs {
            if log.removed {
                continue;
            }
            let at = LogPosition::of(log, from, to, &known)?;
            if let Some(token) = network.token_at(log.address()) {
                let Ok(event) = log.log_decode::<Transfer>() else {
                    tracing::warn!(chain = %network.name, tx = %at.tx_hash, "undecodable Transfer log skipped");
                    continue;
                };
                let event = event.inner.data;
                if !watch.token_recipients.contains(&event.to) {
                    continue;
                }
                transfers.push(at.transfer(
                    network,
                    &event.from,
                    &event.to,
                    &token.symbol,
                    event.value.into(),
                    None,
                ));
            } else if let Some(contract) = network.payment_contract_at(log.address()) {
                let Ok(event) = log.log_decode::<Pay>() else {
                    tracing::warn!(chain = %network.name, tx = %at.tx_hash, "undecodable Pay log skipped");
                    continue;
                };
                let event = event.inner.data;
                pays.push((at.tx_hash, contract.token, transfers.len()));
                let reference = Some(event.invoice_id);
                // The payer is the transaction's sender, filled in below.
                transfers.push(at.transfer(
                    network,
                    &Address::ZERO,
                    &event.recipient,
                    &contract.asset,
                    event.amount.into(),
                    reference,
                ));
            }
        }
        self.attribute_payments(&mut transfers, &pays).await?;
        self.fill_block_times(&mut transfers, &blocks).await?;

        if scan_native {
            transfers.extend(self.native_transfers(&full_blocks, watch).await?);
        }
        transfers.sort_by_key(|t| (t.block_number, t.log_index));
        Ok(Scan { blocks, transfers })
    }

    /// Sets each transfer's block time: from the blocks the scan already read, else from
    /// the header of its block (fetched once per block, checked against the log's hash).
    async fn fill_block_times(
        &self,
        transfers: &mut [ObservedTransfer],
        blocks: &[BlockRef],
    ) -> Result<(), ReadError> {
        let mut times: HashMap<u64, (String, i64)> = blocks
            .iter()
            .map(|b| (b.number, (hash_text(b.hash), b.time_ms)))
            .collect();
        let missing: Vec<u64> = transfers
            .iter()
            .map(|t| t.block_number)
            .filter(|n| !times.contains_key(n))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let reader = self.clone();
        let fetched: Vec<BlockRef> = futures::stream::iter(missing)
            .map(move |n| {
                let reader = reader.clone();
                async move { reader.block(n).await?.ok_or(ReadError::MissingBlock(n)) }
            })
            .buffered(BLOCK_FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        times.extend(
            fetched
                .iter()
                .map(|b| (b.number, (hash_text(b.hash), b.time_ms))),
        );
        for transfer in transfers {
            let (hash, time) = &times[&transfer.block_number];
            if *hash != transfer.block_hash {
                return Err(ReadError::Inconsistent(format!(
                    "block {} changed during the scan",
                    transfer.block_number
                )));
            }
            transfer.block_time = *time;
        }
        Ok(())
    }

    /// Fills in each `Pay`'s payer and drops the ERC20 `Transfer` its `transferFrom` logged
    /// (same transaction and token, same recipient and amount, logged before the `Pay`).
    async fn attribute_payments(
        &self,
        transfers: &mut Vec<ObservedTransfer>,
        pays: &[(TxHash, Address, usize)],
    ) -> Result<(), ReadError> {
        let mut inner_legs = HashSet::new();
        for &(tx_hash, token, index) in pays {
            let tx = self
                .provider
                .get_transaction_by_hash(tx_hash)
                .await
                .map_err(rpc("eth_getTransactionByHash"))?
                .ok_or_else(|| {
                    ReadError::Inconsistent(format!(
                        "transaction {tx_hash} of a Pay log is unknown"
                    ))
                })?;
            let pay = &transfers[index];
            let token_symbol = self.network.token_at(token).map(|t| t.symbol.as_str());
            let leg = transfers
                .iter()
                .enumerate()
                .filter(|(i, t)| {
                    !inner_legs.contains(i)
                        && t.reference.is_none()
                        && t.tx_hash == pay.tx_hash
                        && t.log_index < pay.log_index
                        && Some(t.asset.as_str()) == token_symbol
                        && t.to == pay.to
                        && t.amount == pay.amount
                })
                .map(|(i, _)| i)
                .next_back();
            inner_legs.extend(leg);
            transfers[index].from = address_text(tx.from());
        }
        let mut i = 0;
        transfers.retain(|_| {
            i += 1;
            !inner_legs.contains(&(i - 1))
        });
        Ok(())
    }

    /// Successful top-level native transfers to watched recipients in `blocks`.
    async fn native_transfers(
        &self,
        blocks: &[AnyRpcBlock],
        watch: &WatchSet,
    ) -> Result<Vec<ObservedTransfer>, ReadError> {
        let Some(native) = &self.network.native else {
            return Ok(Vec::new());
        };
        let mut candidates = Vec::new();
        for block in blocks {
            let header = block_ref(block);
            for tx in block.transactions.txns() {
                let Some(to) = tx.to() else { continue };
                if tx.value().is_zero() || !watch.native_recipients.contains(&to) {
                    continue;
                }
                candidates.push(ObservedTransfer {
                    chain: self.network.name.clone(),
                    tx_hash: hash_text(tx.tx_hash()),
                    log_index: NATIVE_LOG_INDEX,
                    block_number: header.number,
                    block_hash: hash_text(header.hash),
                    block_time: header.time_ms,
                    from: address_text(tx.from()),
                    to: address_text(to),
                    asset: native.symbol.clone(),
                    amount: tx.value().into(),
                    reference: None,
                });
            }
        }
        // A reverted transaction is in its block but moved nothing.
        let lookups: Vec<(TxHash, String)> = candidates
            .iter()
            .map(|t| {
                (
                    t.tx_hash.parse().expect("formatted from a TxHash"),
                    t.block_hash.clone(),
                )
            })
            .collect();
        let provider = self.provider.clone();
        let succeeded: Vec<bool> = futures::stream::iter(lookups)
            .map(move |(hash, block_hash)| {
                let provider = provider.clone();
                async move {
                    let receipt = provider
                        .get_transaction_receipt(hash)
                        .await
                        .map_err(rpc("eth_getTransactionReceipt"))?
                        .ok_or_else(|| {
                            ReadError::Inconsistent(format!(
                                "no receipt for mined transaction {hash}"
                            ))
                        })?;
                    if receipt.block_hash().map(hash_text).as_deref() != Some(block_hash.as_str()) {
                        return Err(ReadError::Inconsistent(format!(
                            "receipt of {hash} is from another block"
                        )));
                    }
                    Ok::<_, ReadError>(receipt.status())
                }
            })
            .buffered(BLOCK_FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(candidates
            .into_iter()
            .zip(succeeded)
            .filter_map(|(t, ok)| ok.then_some(t))
            .collect())
    }
}

/// Where a log sits, checked against the blocks the scan knows.
struct LogPosition {
    tx_hash: TxHash,
    log_index: u64,
    block_number: u64,
    block_hash: B256,
}

impl LogPosition {
    fn of(
        log: &Log,
        from: u64,
        to: u64,
        known: &HashMap<u64, B256>,
    ) -> Result<LogPosition, ReadError> {
        let missing = |what: &str| ReadError::Inconsistent(format!("a log without {what}"));
        let position = LogPosition {
            tx_hash: log
                .transaction_hash
                .ok_or_else(|| missing("transaction hash"))?,
            log_index: log.log_index.ok_or_else(|| missing("log index"))?,
            block_number: log.block_number.ok_or_else(|| missing("block number"))?,
            block_hash: log.block_hash.ok_or_else(|| missing("block hash"))?,
        };
        if !(from..=to).contains(&position.block_number) {
            return Err(ReadError::Inconsistent(format!(
                "a log of block {} in the answer for {from}..={to}",
                position.block_number
            )));
        }
        if known
            .get(&position.block_number)
            .is_some_and(|h| *h != position.block_hash)
        {
            return Err(ReadError::Inconsistent(format!(
                "block {} changed during the scan",
                position.block_number
            )));
        }
        Ok(position)
    }

    fn transfer(
        &self,
        network: &Network,
        from: &Address,
        to: &Address,
        asset: &str,
        amount: Amount,
        reference: Option<String>,
    ) -> ObservedTransfer {
        ObservedTransfer {
            chain: network.name.clone(),
            tx_hash: hash_text(self.tx_hash),
            log_index: i64::try_from(self.log_index).unwrap_or(i64::MAX),
            block_number: self.block_number,
            block_hash: hash_text(self.block_hash),
            // Filled in from the block's header once the scan has it.
            block_time: 0,
            from: address_text(*from),
            to: address_text(*to),
            asset: asset.to_string(),
            amount,
            reference,
        }
    }
}

fn block_ref(block: &AnyRpcBlock) -> BlockRef {
    BlockRef {
        number: block.header.inner.number,
        hash: block.header.hash,
        parent_hash: block.header.inner.parent_hash,
        time_ms: i64::try_from(block.header.inner.timestamp)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    }
}

/// The text form of a hash everywhere polypay stores one: `0x` + lowercase hex.
pub(crate) fn hash_text(hash: B256) -> String {
    format!("{hash:#x}")
}
