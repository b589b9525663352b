//! The TRON side of a listener: a [`ChainSource`] over the java-tron HTTP API, driven by
//! the chain-neutral [`Follower`].

use std::sync::Arc;

use super::{BlockReader, Network, ReadError, TronAddress, WatchSet};
use crate::chain::follow::{ChainSource, Follower, Head, Scan, ScannedBlock, Settings};
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
    let network = Network::from_config(config, index)?;
    let reader = BlockReader::new(Arc::new(network))
        .map_err(|e| ChainConfigError::new(format!("chains[{index}]"), e.to_string()))?;
    Ok(Follower::new(
        TronSource { reader },
        Settings::from_config(config),
        store,
    ))
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
    type Watch = WatchSet;
    type Error = ReadError;

    /// The head, and the solidified block minus `solidified_depth` as the final block.
    async fn head(&mut self) -> Result<Head, ReadError> {
        let head = self.reader.head().await?;
        let solidified = self.reader.solidified_head().await?;
        let depth = u64::from(self.reader.network().solidified_depth);
        Ok(Head {
            number: head.number,
            final_block: Some(solidified.min(head.number).saturating_sub(depth)),
        })
    }

    async fn block(&mut self, number: u64) -> Result<Option<ScannedBlock>, ReadError> {
        self.reader.block(number).await
    }

    async fn scan(&mut self, from: u64, to: u64, watch: &WatchSet) -> Result<Scan, ReadError> {
        self.reader.scan(from, to, watch).await
    }

    fn watch_address(&self, watch: &mut WatchSet, address: &str, asset: &str) -> bool {
        let Ok(address) = TronAddress::parse(address) else {
            return false;
        };
        let native = self.reader.network().native.as_ref();
        if native.is_some_and(|n| n.symbol == asset) {
            watch.native_recipients.insert(address);
        } else {
            watch.token_recipients.insert(address);
        }
        true
    }
}
