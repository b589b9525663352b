//! The EVM side of a listener: a [`ChainSource`] over JSON-RPC, driven by the
//! chain-neutral [`Follower`] (cursor, reorgs, watch set, settlement; see
//! [`crate::chain::follow`]).
//!
//! What is EVM-specific: the node's chain id is checked against the config before the
//! first step (a listener pointed at another chain reads nothing), addresses are EIP-55,
//! block ids are `0x` hashes, and a node refusing an `eth_getLogs` range makes the
//! follower halve the range.

use std::sync::Arc;

use super::reader::hash_text;
use alloy::primitives::Address;

use super::{BlockReader, BlockRef, Network, ReadError, WatchSet, parse_address};
use crate::chain::follow::{ChainSource, Follower, Head, Scan, ScannedBlock};
use crate::chain::{ChainConfig, ChainConfigError};
use crate::store::Store;

/// Follows one EVM network.
pub type EvmListener = Follower<EvmSource>;

/// A listener of the `index`-th `[[chains]]` entry (of kind `evm`).
pub fn listener(
    config: &ChainConfig,
    index: usize,
    store: Store,
) -> Result<EvmListener, ChainConfigError> {
    let network = Arc::new(Network::from_config(config, index)?);
    let source = BlockReader::new(network).map(|reader| EvmSource {
        reader,
        gas_price: None,
    });
    Follower::for_chain(config, index, store, source)
}

/// Reads an EVM network for a [`Follower`].
#[derive(Debug, Clone)]
pub struct EvmSource {
    reader: BlockReader,
    /// The gas price and the head block it was read at.
    gas_price: Option<(u64, u128)>,
}

impl EvmSource {
    pub fn reader(&self) -> &BlockReader {
        &self.reader
    }
}

fn scanned(block: &BlockRef) -> ScannedBlock {
    ScannedBlock {
        number: block.number,
        id: hash_text(block.hash),
        parent_id: hash_text(block.parent_hash),
        timestamp_ms: Some(block.time_ms),
    }
}

impl ChainSource for EvmSource {
    type Address = Address;
    type Error = ReadError;

    /// The node must report the configured chain id.
    async fn check(&mut self) -> Result<(), ReadError> {
        let network = self.reader.network();
        let actual = self.reader.chain_id().await?;
        if actual != network.chain_id {
            return Err(ReadError::WrongChain {
                chain: network.name.clone(),
                expected: network.chain_id,
                actual,
            });
        }
        Ok(())
    }

    /// The head block, and the gas price read once per new head (one `eth_gasPrice` per
    /// block, not per poll; a node that cannot answer it leaves the last price known).
    async fn head(&mut self) -> Result<Head, ReadError> {
        let number = self.reader.head().await?;
        if self.gas_price.is_none_or(|(at, _)| at != number)
            && let Ok(price) = self.reader.gas_price().await
        {
            self.gas_price = Some((number, price));
        }
        Ok(Head {
            number,
            final_block: None,
            gas_price: self.gas_price.map(|(_, price)| price),
        })
    }

    async fn block(&mut self, number: u64) -> Result<Option<ScannedBlock>, ReadError> {
        Ok(self.reader.block(number).await?.as_ref().map(scanned))
    }

    async fn scan(&mut self, from: u64, to: u64, watch: &WatchSet) -> Result<Scan, ReadError> {
        let scan = self.reader.scan(from, to, watch).await?;
        Ok(Scan {
            blocks: scan.blocks.iter().map(scanned).collect(),
            transfers: scan.transfers,
        })
    }

    fn parse_address(&self, text: &str) -> Option<Address> {
        parse_address(text).ok()
    }

    fn native_symbol(&self) -> Option<&str> {
        self.reader
            .network()
            .native
            .as_ref()
            .map(|n| n.symbol.as_str())
    }

    fn range_refused(&self, error: &ReadError) -> bool {
        error.is_get_logs()
    }
}
