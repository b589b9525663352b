//! The EVM listener loop.
//!
//! One [`EvmListener::step`] does one unit of work and commits it:
//!
//! 1. reads the head; on first start creates the cursor at `start_block - 1` (default: the
//!    head), so a restart never jumps ahead;
//! 2. when caught up, checks that the stored tip is still the node's block (a reorg to a
//!    shorter or different chain shows up here) and sleeps;
//! 3. otherwise scans the next range: blocks within `reorg_window` of the head one at a
//!    time, older ones in ranges of up to `max_block_range` (halved whenever the node
//!    refuses `eth_getLogs`, doubled back after each success, but not beyond the last
//!    size the node accepted after a refusal, for a while);
//! 4. checks that the range's first block's parent is the stored tip; if not, it is a
//!    reorg: walks the stored hashes back to the newest one the node still has (the
//!    common ancestor), marks the transfers above it removed, rewinds the cursor, and
//!    re-settles the invoices they had paid, which moves them back with an
//!    `invoice.reverted` event;
//! 5. in one transaction: stores the transfers (matched by the matcher), the blocks'
//!    hashes, the new cursor, and settles the invoices credited, every `confirming`
//!    invoice of the chain, and those paid in the blocks whose confirmations the range
//!    completes (partial payments included), so confirmations advance with the blocks.
//!
//! Confirmations are counted against the *processed* block, not the node's head: a
//! listener that lags never confirms blocks it has not checked for reorgs.
//!
//! [`EvmListener::run`] repeats steps; a failed step is retried after a pause that doubles
//! from half a second up to `max_retry_interval_ms`, so an outage never skips a block. The
//! state is published on [`EvmListener::status`] and as `polypay_chain_*` metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::reader::hash_text;
use super::{BlockReader, Network, ReadError, WatchSet, parse_address};
use crate::chain::{ChainConfig, ChainConfigError, ChainStatus};
use crate::invoice::{ChainView, InvoiceError, InvoiceService, InvoiceStatus};
use crate::matcher;
use crate::store::chain_queries;
use crate::store::{Store, StoreError, now_ms};

/// The watch set is rebuilt from scratch this often (dropping released targets); in
/// between, each step adds the targets created since the last look.
const WATCH_FULL_RELOAD: Duration = Duration::from_secs(60);
/// How far back an incremental watch refresh looks, to cover invoices whose creation
/// committed a while after their `created_at`.
const WATCH_OVERLAP_MS: i64 = 60_000;
/// Successful ranges after which a refused range size may be tried again.
const CEILING_LIFETIME: u32 = 100;
/// First pause after a failure; it doubles up to the network's `max_retry_interval`.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Why a step failed. The listener retries every one of them.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    #[error(
        "the node reports chain id {actual}, but chain `{chain}` is configured with {expected}"
    )]
    WrongChain {
        chain: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "reorg deeper than the {depth} blocks kept: no stored block from {low} to {high} is on the node's chain; \
         rewind the cursor to re-scan"
    )]
    ReorgTooDeep { depth: u64, low: i64, high: i64 },
}

impl From<sqlx::Error> for ListenerError {
    fn from(e: sqlx::Error) -> Self {
        ListenerError::Store(e.into())
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing to process: the listener is at the head.
    CaughtUp,
    /// Blocks up to `to` were processed.
    Advanced { to: u64 },
    /// A reorg rolled the cursor back to the common ancestor.
    RolledBack { ancestor: i64 },
    /// The node refused a log range; the next step tries a smaller one.
    RangeShrunk { range: u64 },
}

/// Follows one EVM network. See the module docs.
pub struct EvmListener {
    network: Arc<Network>,
    reader: BlockReader,
    store: Store,
    invoices: InvoiceService,
    status: watch::Sender<ChainStatus>,
    watch: WatchSet,
    watch_loaded_at: Option<i64>,
    watch_full_reload: Instant,
    /// Current `eth_getLogs` range while catching up.
    range: u64,
    /// A range the node accepted after refusing a larger one: growth stops there, until
    /// [`CEILING_LIFETIME`] successful ranges later (a node's limit may be temporary).
    range_ceiling: Option<u64>,
    ranges_under_ceiling: u32,
    chain_id_checked: bool,
    /// The head last written to the cursor while idle.
    head_recorded: Option<u64>,
}

impl EvmListener {
    /// A listener of `network` writing to `store`.
    pub fn new(network: Network, store: Store) -> Result<EvmListener, ReadError> {
        let network = Arc::new(network);
        let reader = BlockReader::new(network.clone())?;
        let (status, _) = watch::channel(ChainStatus::new(&network.name));
        Ok(EvmListener {
            range: network.max_block_range,
            range_ceiling: None,
            ranges_under_ceiling: 0,
            network,
            reader,
            invoices: InvoiceService::new(store.clone()),
            store,
            status,
            watch: WatchSet::default(),
            watch_loaded_at: None,
            watch_full_reload: Instant::now(),
            chain_id_checked: false,
            head_recorded: None,
        })
    }

    /// A listener of the `index`-th `[[chains]]` entry (of kind `evm`).
    pub fn from_config(
        config: &ChainConfig,
        index: usize,
        store: Store,
    ) -> Result<EvmListener, ChainConfigError> {
        let network = Network::from_config(config, index)?;
        EvmListener::new(network, store)
            .map_err(|e| ChainConfigError::new(format!("chains[{index}]"), e.to_string()))
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The live state of this listener.
    pub fn status(&self) -> watch::Receiver<ChainStatus> {
        self.status.subscribe()
    }

    /// Steps until `shutdown` resolves; see the module docs. Dropping the future (or
    /// aborting its task) at any point loses at most the uncommitted step.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut retry = FIRST_RETRY;
        tracing::info!(chain = %self.network.name, rpc = %self.network.rpc_url, "listener started");
        loop {
            let outcome = tokio::select! {
                _ = &mut shutdown => return,
                outcome = self.step() => outcome,
            };
            let pause = match outcome {
                Ok(progress) => {
                    retry = FIRST_RETRY;
                    self.mark_healthy();
                    match progress {
                        Progress::CaughtUp => self.network.poll_interval,
                        _ => Duration::ZERO,
                    }
                }
                Err(error) => {
                    self.mark_failed(&error);
                    let pause = retry;
                    retry = (retry * 2).min(self.network.max_retry_interval);
                    pause.min(self.network.max_retry_interval)
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// One unit of work, committed before it returns; see the module docs.
    pub async fn step(&mut self) -> Result<Progress, ListenerError> {
        let chain = self.network.name.clone();
        if !self.chain_id_checked {
            let actual = self.reader.chain_id().await?;
            if actual != self.network.chain_id {
                return Err(ListenerError::WrongChain {
                    chain,
                    expected: self.network.chain_id,
                    actual,
                });
            }
            self.chain_id_checked = true;
        }
        let head = self.reader.head().await?;
        let processed = match self
            .store
            .chain_cursor(&chain)
            .await?
            .and_then(|c| c.processed_block)
        {
            Some(processed) => processed,
            None => {
                let start = self.network.start_block.unwrap_or(head);
                let cursor = self
                    .store
                    .init_chain_cursor(&chain, start as i64 - 1, head as i64)
                    .await?;
                cursor.processed_block.unwrap_or(start as i64 - 1)
            }
        };
        self.publish_position(head, processed);
        self.refresh_watch().await?;

        let next = (processed + 1) as u64;
        let tip_hash = if processed >= 0 {
            self.store.chain_block_hash(&chain, processed).await?
        } else {
            None
        };
        if next > head {
            if let Some(stored) = &tip_hash {
                let still_there = self
                    .reader
                    .block(processed as u64)
                    .await?
                    .is_some_and(|b| hash_text(b.hash) == *stored);
                if !still_there {
                    return self.roll_back(processed, head).await;
                }
            }
            if self.head_recorded != Some(head) {
                self.store.set_chain_head(&chain, head).await?;
                self.head_recorded = Some(head);
            }
            return Ok(Progress::CaughtUp);
        }

        let to = self.range_end(next, head);
        let scan = match self.reader.scan(next, to, &self.watch).await {
            Ok(scan) => scan,
            Err(e) if e.is_get_logs() && to > next => {
                self.range = (to - next).div_ceil(2).max(1);
                self.range_ceiling = Some(self.range);
                self.ranges_under_ceiling = 0;
                self.count_rpc_error();
                tracing::warn!(chain = %chain, from = next, to, range = self.range, error = %e, "log range refused; shrinking");
                return Ok(Progress::RangeShrunk { range: self.range });
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(stored) = &tip_hash
            && hash_text(scan.first().parent_hash) != *stored
        {
            return self.roll_back(processed, head).await;
        }

        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let mut touched = matcher::record_transfers(&mut tx, &scan.transfers, now).await?;
        let hashes: Vec<_> = scan
            .blocks
            .iter()
            .map(|b| (b.number, hash_text(b.hash), hash_text(b.parent_hash)))
            .collect();
        let keep_from = to as i64 - self.network.max_reorg_depth as i64;
        chain_queries::save_block_hashes(&mut tx, &chain, &hashes, keep_from).await?;
        let processed_to = (to as i64, Some(scan.last().time_ms));
        chain_queries::set_processed(&mut tx, &chain, processed_to, head, now).await?;
        // Confirmations advance: every confirming invoice, and every invoice paid (maybe
        // partly) in a block that this range brings to its confirmations.
        touched.extend(
            chain_queries::invoice_ids_in_status(&mut tx, &chain, InvoiceStatus::Confirming)
                .await?,
        );
        let depth = i64::from(self.network.confirmations.max(1));
        touched.extend(
            chain_queries::invoices_paid_in_blocks(
                &mut tx,
                &chain,
                processed - depth + 1,
                to as i64,
            )
            .await?,
        );
        let view = ChainView {
            processed_block: to as i64,
        };
        self.invoices
            .settle_in(&mut tx, &touched, view, now)
            .await?;
        tx.commit().await?;

        if to - next + 1 == self.range {
            self.grow_range();
        }
        self.publish_position(head, to as i64);
        if !scan.transfers.is_empty() {
            tracing::debug!(chain = %chain, from = next, to, transfers = scan.transfers.len(), "range processed");
        }
        Ok(Progress::Advanced { to })
    }

    /// Doubles the log range after a full range succeeded, up to the ceiling a refusal
    /// set (forgotten after a while) and `max_block_range`.
    fn grow_range(&mut self) {
        if self.range_ceiling.is_some() {
            self.ranges_under_ceiling += 1;
            if self.ranges_under_ceiling >= CEILING_LIFETIME {
                self.range_ceiling = None;
            }
        }
        let limit = self.range_ceiling.unwrap_or(self.network.max_block_range);
        self.range = (self.range * 2).min(limit);
    }

    /// The last block of the next range starting at `next`: one block inside the reorg
    /// window, else up to the current range size, stopping before the window.
    fn range_end(&self, next: u64, head: u64) -> u64 {
        let window_start = head
            .saturating_sub(self.network.reorg_window)
            .saturating_add(1);
        if next >= window_start {
            return next;
        }
        next.saturating_add(self.range - 1).min(window_start - 1)
    }

    /// Finds the newest stored block the node still has, and rolls everything above it
    /// back in one transaction.
    async fn roll_back(&mut self, processed: i64, head: u64) -> Result<Progress, ListenerError> {
        let chain = self.network.name.clone();
        let low = (processed - self.network.max_reorg_depth as i64).max(0);
        let mut ancestor = None;
        for (number, stored) in self
            .store
            .chain_block_hashes(&chain, low, processed)
            .await?
        {
            let on_node = self.reader.block(number as u64).await?;
            if let Some(block) = on_node.filter(|b| hash_text(b.hash) == stored) {
                ancestor = Some((number, block.time_ms));
                break;
            }
        }
        let Some((ancestor, ancestor_time)) = ancestor else {
            return Err(ListenerError::ReorgTooDeep {
                depth: self.network.max_reorg_depth,
                low,
                high: processed,
            });
        };
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let mut touched: std::collections::BTreeSet<String> =
            chain_queries::roll_back_above(&mut tx, &chain, ancestor)
                .await?
                .into_iter()
                .collect();
        chain_queries::set_processed(&mut tx, &chain, (ancestor, Some(ancestor_time)), head, now)
            .await?;
        touched.extend(
            chain_queries::invoice_ids_in_status(&mut tx, &chain, InvoiceStatus::Confirming)
                .await?,
        );
        let view = ChainView {
            processed_block: ancestor,
        };
        let changed = self
            .invoices
            .settle_in(&mut tx, &touched, view, now)
            .await?
            .changed;
        tx.commit().await?;

        metrics::counter!("polypay_chain_reorgs_total", "chain" => chain.clone()).increment(1);
        self.status.send_modify(|s| s.reorgs += 1);
        self.publish_position(head, ancestor);
        tracing::warn!(
            chain = %chain, from = processed, ancestor, invoices_changed = changed.len(),
            "reorg: rolled back to the common ancestor"
        );
        Ok(Progress::RolledBack { ancestor })
    }

    /// Brings the watch set up to date with the active payment targets.
    async fn refresh_watch(&mut self) -> Result<(), StoreError> {
        let now = now_ms();
        let full =
            self.watch_loaded_at.is_none() || self.watch_full_reload.elapsed() >= WATCH_FULL_RELOAD;
        let since = if full {
            None
        } else {
            self.watch_loaded_at.map(|t| t - WATCH_OVERLAP_MS)
        };
        let rows = self
            .store
            .watched_targets(&self.network.name, since)
            .await?;
        if full {
            self.watch = WatchSet::default();
            self.watch_full_reload = Instant::now();
        }
        let native = self.network.native.as_ref().map(|n| n.symbol.as_str());
        for (address, asset) in rows {
            let Ok(address) = parse_address(&address) else {
                tracing::warn!(chain = %self.network.name, address, "a payment target holds an invalid address; not watched");
                continue;
            };
            let set = if Some(asset.as_str()) == native {
                &mut self.watch.native_recipients
            } else {
                &mut self.watch.token_recipients
            };
            set.insert(address);
        }
        self.watch_loaded_at = Some(now);
        Ok(())
    }

    fn publish_position(&self, head: u64, processed: i64) {
        let chain = self.network.name.clone();
        let processed = u64::try_from(processed).ok();
        let lag = processed.map(|p| head.saturating_sub(p));
        metrics::gauge!("polypay_chain_head_block", "chain" => chain.clone()).set(head as f64);
        if let Some(p) = processed {
            metrics::gauge!("polypay_chain_processed_block", "chain" => chain.clone())
                .set(p as f64);
        }
        if let Some(lag) = lag {
            metrics::gauge!("polypay_chain_lag_blocks", "chain" => chain).set(lag as f64);
        }
        self.status.send_modify(|s| {
            s.head_block = Some(head);
            s.processed_block = processed;
            s.lag_blocks = lag;
        });
    }

    fn count_rpc_error(&self) {
        metrics::counter!("polypay_chain_rpc_errors_total", "chain" => self.network.name.clone())
            .increment(1);
    }

    fn mark_healthy(&self) {
        metrics::gauge!("polypay_chain_healthy", "chain" => self.network.name.clone()).set(1.0);
        self.status.send_if_modified(|s| {
            let was = (s.healthy, s.consecutive_errors, s.last_error.is_some());
            s.healthy = true;
            s.consecutive_errors = 0;
            s.last_error = None;
            was != (true, 0, false)
        });
    }

    fn mark_failed(&self, error: &ListenerError) {
        if matches!(
            error,
            ListenerError::Read(_) | ListenerError::WrongChain { .. }
        ) {
            self.count_rpc_error();
        }
        metrics::gauge!("polypay_chain_healthy", "chain" => self.network.name.clone()).set(0.0);
        let mut errors = 0;
        self.status.send_modify(|s| {
            s.healthy = false;
            s.consecutive_errors += 1;
            s.last_error = Some(error.to_string());
            errors = s.consecutive_errors;
        });
        // Log the first failure and then every tenth, not every retry of an outage.
        if errors == 1 || errors % 10 == 0 {
            tracing::warn!(chain = %self.network.name, consecutive = errors, error = %error, "listener step failed; retrying");
        }
    }
}
