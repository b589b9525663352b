//! The TRON side of a listener: a [`ChainSource`] over the java-tron HTTP API, driven by
//! the chain-neutral [`Follower`].

use std::sync::Arc;

use super::{BlockReader, Network, ReadError, TronAddress, WatchSet};
use crate::chain::follow::{ChainSource, Follower, Head, Scan, ScannedBlock};
use crate::chain::{ChainConfig, ChainConfigError};
use crate::store::Store;

/// Follows one TRON network.
pub type TronListener = Follower<TronSource>;

/// A listener of the `index`-th `[[chains]]` entry (of kind `tron`).
pub fn listener(
    config: &ChainConfig,
    index: usize,
    store: Store,
) -> Result<TronListener, ChainConfigError> {
    let network = Arc::new(Network::from_config(config, index)?);
    let source = BlockReader::new(network).map(|reader| TronSource { reader });
    Follower::for_chain(config, index, store, source)
}

/// Reads a TRON network for a [`Follower`].
#[derive(Debug, Clone)]
pub struct TronSource {
    reader: BlockReader,
}

impl TronSource {
    pub fn reader(&self) -> &BlockReader {
        &self.reader
    }
}

impl ChainSource for TronSource {
    type Address = TronAddress;
    type Error = ReadError;

    /// The head, and the solidified block minus `solidified_depth` as the final block.
    async fn head(&mut self) -> Result<Head, ReadError> {
        let head = self.reader.head().await?;
        let solidified = self.reader.solidified_head().await?;
        let depth = u64::from(self.reader.network().solidified_depth);
        Ok(Head {
            number: head.number,
            final_block: Some(solidified.min(head.number).saturating_sub(depth)),
            gas_price: None,
        })
    }

    async fn block(&mut self, number: u64) -> Result<Option<ScannedBlock>, ReadError> {
        self.reader.block(number).await
    }

    async fn scan(&mut self, from: u64, to: u64, watch: &WatchSet) -> Result<Scan, ReadError> {
        self.reader.scan(from, to, watch).await
    }

    fn parse_address(&self, text: &str) -> Option<TronAddress> {
        TronAddress::parse(text).ok()
    }

    fn native_symbol(&self) -> Option<&str> {
        self.reader
            .network()
            .native
            .as_ref()
            .map(|n| n.symbol.as_str())
    }
}
