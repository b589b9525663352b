//! Following a chain, whatever the chain: the half of a listener that is the same on
//! every network.
//!
//! A [`ChainSource`] knows one kind of node (its protocol, its addresses, what counts as a
//! payment) and answers three questions: where is the head (and, on chains that declare
//! it, the newest final block), what is the id of block *n*, and what do blocks
//! `from..=to` hold for the watched addresses. A [`Follower`] drives a source from the
//! stored cursor and owns everything else:
//!
//! 1. reads the head; on first start creates the cursor at `start_block - 1` (default: the
//!    head), so a restart never jumps ahead;
//! 2. when caught up, checks that the stored tip is still the node's block (a reorg to a
//!    different chain shows up here), settles the chain's invoices again if its final
//!    block moved, and sleeps;
//! 3. otherwise scans the next range: blocks within `reorg_window` of the head one at a
//!    time, older ones in ranges of up to `max_block_range` (halved whenever the source
//!    says the node refused the range, doubled back after each success, but not beyond
//!    the last size the node accepted after a refusal, for a while);
//! 4. checks that the range's first block's parent is the stored tip; if not, it is a
//!    reorg: walks the stored ids back to the newest one the node still has (the common
//!    ancestor), marks the transfers above it removed, rewinds the cursor, and re-settles
//!    the invoices they had paid, which moves them back with an `invoice.reverted` event;
//! 5. in one transaction: stores the transfers (matched by the matcher), the blocks' ids,
//!    the new cursor, and settles the invoices credited, every `confirming` invoice of the
//!    chain, and those paid in blocks whose confirmations the range completes (partial
//!    payments included), so confirmations advance with the blocks; and credits the
//!    ledger deposits the range confirms (a reorg step reverses those it removed; see
//!    `crate::ledger`).
//!
//! Every write of a step is a compare-and-set on the cursor it read (its generation, its
//! processed block and that block's stored hash), made as the first statement of the
//! step's transaction: a listener that lags behind another (two instances following the
//! same chain by mistake, a leader that lost its lock mid-step) finds the cursor moved,
//! drops its transaction, and starts over from the cursor as it is ([`Progress::Superseded`]).
//! It can therefore never move a cursor back, nor store a reorged-out block's transfers
//! again after another listener removed them.
//!
//! Confirmations are counted against the *processed* block, not the node's head: a
//! listener that lags never confirms blocks it has not checked for reorgs. On a chain
//! with a final block (TRON's solidified block), a payment is confirmed only once its
//! block is also at or below that block. The final block only grows: it is kept in the
//! cursor, and a node reporting a lower one (a lagging fallback, after a restart) does not
//! move it back, so a paid invoice is never "un-confirmed" by a slower node.
//!
//! [`Follower::run`] repeats steps; a failed step is retried after a pause that doubles
//! from half a second up to `max_retry_interval_ms`, so an outage never skips a block. The
//! state is published on [`Follower::status`] and as `polypay_chain_*` metrics.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{ChainConfig, ChainConfigError, ChainStatus, ObservedTransfer};
use crate::invoice::{ChainView, InvoiceError, InvoiceService, InvoiceStatus};
use crate::ledger::{DepositWindow, Ledger, LedgerError};
use crate::matcher;
use crate::store::chain_queries::{self, CursorSeen};
use crate::store::{Store, StoreError, now_ms};

/// The watch set is rebuilt from scratch this often (dropping released targets); in
/// between, each step adds the targets created since the last look.
const WATCH_FULL_RELOAD: Duration = Duration::from_secs(60);
/// How far back an incremental watch refresh looks, to cover invoices whose creation
/// committed a while after their `created_at`.
const WATCH_OVERLAP_MS: i64 = 60_000;
/// Successful ranges after which a refused range size may be tried again.
const CEILING_LIFETIME: u32 = 100;
/// First pause after a failure; it doubles up to `max_retry_interval`.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The node's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The latest block number.
    pub number: u64,
    /// The newest block the chain declares irreversible (TRON: the solidified block,
    /// minus the configured extra depth); `None` on chains without one.
    pub final_block: Option<u64>,
    /// The network's gas price in wei, when the source reads one (EVM: once per new
    /// head block); recorded on the chain cursor for the `chains.status` host call.
    pub gas_price: Option<u128>,
}

/// A block a scan read: its id, its parent's id and its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedBlock {
    pub number: u64,
    /// The block's id as the chain writes it (`0x…` on EVM, bare hex on TRON).
    pub id: String,
    pub parent_id: String,
    /// Block time, unix milliseconds, when the scan learnt it.
    pub timestamp_ms: Option<i64>,
}

/// What one block range holds for the watched addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The blocks whose ids the scan learnt, ascending; always the first and the last
    /// block of the range.
    pub blocks: Vec<ScannedBlock>,
    /// Transfers in chain order.
    pub transfers: Vec<ObservedTransfer>,
}

impl Scan {
    pub fn first(&self) -> &ScannedBlock {
        &self.blocks[0]
    }

    pub fn last(&self) -> &ScannedBlock {
        &self.blocks[self.blocks.len() - 1]
    }
}

/// The addresses a scan keeps transfers to, in the chain's own address type: the active
/// payment targets, split by whether they await the native coin or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSet<A: Eq + Hash> {
    /// Recipients of token transfers.
    pub token_recipients: HashSet<A>,
    /// Recipients of native-coin transfers.
    pub native_recipients: HashSet<A>,
}

impl<A: Eq + Hash> Default for WatchSet<A> {
    fn default() -> Self {
        WatchSet {
            token_recipients: HashSet::new(),
            native_recipients: HashSet::new(),
        }
    }
}

/// One kind of node, as a [`Follower`] drives it. Every error is transient to the
/// follower: it retries the same blocks later, never skips them.
pub trait ChainSource: Send + 'static {
    /// An address of this chain, as scans compare them.
    type Address: Eq + Hash + Send + Sync;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Checked once before the first step (an EVM node's chain id).
    fn check(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    fn head(&mut self) -> impl Future<Output = Result<Head, Self::Error>> + Send;

    /// Block `number` (its id, parent id and time), `None` when the node has no such
    /// block any more.
    fn block(
        &mut self,
        number: u64,
    ) -> impl Future<Output = Result<Option<ScannedBlock>, Self::Error>> + Send;

    /// Everything blocks `from..=to` hold for `watch`.
    fn scan(
        &mut self,
        from: u64,
        to: u64,
        watch: &WatchSet<Self::Address>,
    ) -> impl Future<Output = Result<Scan, Self::Error>> + Send;

    /// A stored payment target's address; `None` when it is not one of this chain's (it
    /// is then not watched, and logged).
    fn parse_address(&self, text: &str) -> Option<Self::Address>;

    /// The symbol of the chain's native coin, if it has one configured.
    fn native_symbol(&self) -> Option<&str>;

    /// Whether `error` is the node refusing a range as too large: a smaller one may pass.
    fn range_refused(&self, _error: &Self::Error) -> bool {
        false
    }
}

/// How a chain is followed: the chain-neutral settings of a `[[chains]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub chain: String,
    pub confirmations: u32,
    pub poll_interval: Duration,
    pub max_retry_interval: Duration,
    pub start_block: Option<u64>,
    pub max_block_range: u64,
    pub reorg_window: u64,
    pub max_reorg_depth: u64,
}

impl Settings {
    pub fn from_config(config: &ChainConfig) -> Settings {
        Settings {
            chain: config.name.clone(),
            confirmations: config.confirmations,
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            max_retry_interval: Duration::from_millis(config.max_retry_interval_ms.max(1)),
            start_block: config.start_block,
            max_block_range: config.max_block_range.max(1),
            reorg_window: config.reorg_window,
            max_reorg_depth: config.max_reorg_depth,
        }
    }
}

/// Why a step failed. The follower retries every one of them.
#[derive(Debug, thiserror::Error)]
pub enum FollowError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Source(E),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "reorg deeper than the {depth} blocks kept: no stored block from {low} to {high} is on the node's chain; \
         rewind the cursor to re-scan"
    )]
    ReorgTooDeep { depth: u64, low: i64, high: i64 },
}

impl<E: std::error::Error + 'static> From<sqlx::Error> for FollowError<E> {
    fn from(e: sqlx::Error) -> Self {
        FollowError::Store(e.into())
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
    /// The node refused a range; the next step tries a smaller one.
    RangeShrunk { range: u64 },
    /// Another listener (or an operator's rewind) moved the cursor since this step read
    /// it: nothing was written, the next step starts from the cursor as it is now.
    Superseded,
}

/// Follows one chain through a [`ChainSource`]. See the module docs.
pub struct Follower<S: ChainSource> {
    source: S,
    settings: Settings,
    store: Store,
    invoices: InvoiceService,
    status: watch::Sender<ChainStatus>,
    watch: WatchSet<S::Address>,
    watch_loaded_at: Option<i64>,
    watch_full_reload: Instant,
    /// Current range while catching up.
    range: u64,
    /// A range the node accepted after refusing a larger one: growth stops there, until
    /// [`CEILING_LIFETIME`] successful ranges later (a node's limit may be temporary).
    range_ceiling: Option<u64>,
    ranges_under_ceiling: u32,
    checked: bool,
    /// The head last written to the cursor while idle.
    head_recorded: Option<u64>,
    /// The gas price last written to the cursor.
    gas_price_recorded: Option<u128>,
    /// The final block the chain's invoices were last settled against.
    settled_final: Option<u64>,
}

impl<S: ChainSource> Follower<S> {
    /// A follower of `source` writing to `store`.
    pub fn new(source: S, settings: Settings, store: Store) -> Follower<S> {
        let (status, _) = watch::channel(ChainStatus::new(&settings.chain));
        Follower {
            range: settings.max_block_range,
            range_ceiling: None,
            ranges_under_ceiling: 0,
            source,
            settings,
            invoices: InvoiceService::new(store.clone()),
            store,
            status,
            watch: WatchSet::default(),
            watch_loaded_at: None,
            watch_full_reload: Instant::now(),
            checked: false,
            head_recorded: None,
            gas_price_recorded: None,
            settled_final: None,
        }
    }

    /// A follower of the `index`-th `[[chains]]` entry through `source`, as its chain
    /// module built it; a source that could not be built is an error naming the entry.
    pub fn for_chain<E: std::fmt::Display>(
        config: &ChainConfig,
        index: usize,
        store: Store,
        source: Result<S, E>,
    ) -> Result<Follower<S>, ChainConfigError> {
        let source =
            source.map_err(|e| ChainConfigError::new(format!("chains[{index}]"), e.to_string()))?;
        Ok(Follower::new(source, Settings::from_config(config), store))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn source(&self) -> &S {
        &self.source
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
        tracing::info!(chain = %self.settings.chain, "listener started");
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
                        Progress::CaughtUp => self.settings.poll_interval,
                        _ => Duration::ZERO,
                    }
                }
                Err(error) => {
                    self.mark_failed(&error);
                    let pause = retry;
                    retry = (retry * 2).min(self.settings.max_retry_interval);
                    pause.min(self.settings.max_retry_interval)
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
    pub async fn step(&mut self) -> Result<Progress, FollowError<S::Error>> {
        let chain = self.settings.chain.clone();
        if !self.checked {
            self.source.check().await.map_err(FollowError::Source)?;
            self.checked = true;
        }
        let mut head = self.source.head().await.map_err(FollowError::Source)?;
        let cursor = self.store.chain_cursor(&chain).await?;
        // Irreversible is irreversible: a node whose solidified view lags (another
        // endpoint, a restart) never lowers the final block invoices were settled against.
        let stored_final = cursor.and_then(|c| c.final_block).map(|f| f as u64);
        head.final_block = head.final_block.map(|f| {
            f.max(stored_final.unwrap_or(0))
                .max(self.settled_final.unwrap_or(0))
        });
        let cursor = match cursor.filter(|c| c.processed_block.is_some()) {
            Some(cursor) => cursor,
            None => {
                let start = self.settings.start_block.unwrap_or(head.number);
                self.store
                    .init_chain_cursor(&chain, start as i64 - 1, head.number as i64)
                    .await?
            }
        };
        let processed = cursor.processed_block.ok_or_else(|| {
            StoreError::Corrupt(format!("the cursor of {chain} has no processed block"))
        })?;
        self.publish_position(head, processed);
        if head.gas_price.is_some() && head.gas_price != self.gas_price_recorded {
            if let Some(price) = head.gas_price {
                self.store.set_chain_gas_price(&chain, price).await?;
            }
            self.gas_price_recorded = head.gas_price;
        }
        self.refresh_watch().await?;

        let next = (processed + 1) as u64;
        let tip_id = if processed >= 0 {
            self.store.chain_block_hash(&chain, processed).await?
        } else {
            None
        };
        // Every write of this step is conditional on the cursor still being this one.
        let seen = CursorSeen {
            generation: cursor.generation,
            processed_block: processed,
            tip_hash: tip_id.clone(),
        };
        if next > head.number {
            if let Some(stored) = &tip_id {
                let on_node = self
                    .source
                    .block(processed as u64)
                    .await
                    .map_err(FollowError::Source)?;
                if on_node.map(|b| b.id).as_deref() != Some(stored.as_str()) {
                    return self.roll_back(&seen, head).await;
                }
            }
            if self.head_recorded != Some(head.number) {
                self.store.set_chain_head(&chain, head.number).await?;
                self.head_recorded = Some(head.number);
            }
            if head.final_block.is_some()
                && head.final_block != self.settled_final
                && !self.settle_finality(&seen, head).await?
            {
                return Ok(self.superseded(&seen));
            }
            return Ok(Progress::CaughtUp);
        }

        let to = self.range_end(next, head.number);
        let scan = match self.source.scan(next, to, &self.watch).await {
            Ok(scan) => scan,
            Err(e) if to > next && self.source.range_refused(&e) => {
                self.range = (to - next).div_ceil(2).max(1);
                self.range_ceiling = Some(self.range);
                self.ranges_under_ceiling = 0;
                self.count_rpc_error();
                tracing::warn!(chain = %chain, from = next, to, range = self.range, error = %e, "range refused; shrinking");
                return Ok(Progress::RangeShrunk { range: self.range });
            }
            Err(e) => return Err(FollowError::Source(e)),
        };
        if let Some(stored) = &tip_id
            && scan.first().parent_id != *stored
        {
            return self.roll_back(&seen, head).await;
        }

        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let processed_to = (to as i64, scan.last().timestamp_ms);
        if !chain_queries::advance_cursor(&mut tx, &chain, &seen, processed_to, head.number, now)
            .await?
        {
            return Ok(self.superseded(&seen));
        }
        let mut touched = matcher::record_transfers(&mut tx, &scan.transfers, now).await?;
        let ids: Vec<_> = scan
            .blocks
            .iter()
            .map(|b| (b.number, b.id.clone(), b.parent_id.clone()))
            .collect();
        let keep_from = to as i64 - self.settings.max_reorg_depth as i64;
        chain_queries::save_block_hashes(&mut tx, &chain, &ids, keep_from).await?;
        if let Some(f) = head.final_block {
            chain_queries::raise_final_block(&mut tx, &chain, f).await?;
        }
        // Confirmations advance: every confirming invoice, and every invoice paid (maybe
        // partly) in a block that this range, or the final block's move, confirms.
        touched.extend(
            chain_queries::invoice_ids_in_status(&mut tx, &chain, InvoiceStatus::Confirming)
                .await?,
        );
        let low = self.confirmation_window_low(processed, head);
        touched
            .extend(chain_queries::invoices_paid_in_blocks(&mut tx, &chain, low, to as i64).await?);
        let view = view(to as i64, head.final_block);
        self.invoices
            .settle_in(&mut tx, &touched, view, now)
            .await?;
        self.credit_deposits(&mut tx, view, low, now).await?;
        tx.commit().await?;
        self.settled_final = head.final_block;

        if to - next + 1 == self.range {
            self.grow_range();
        }
        self.publish_position(head, to as i64);
        if !scan.transfers.is_empty() {
            tracing::debug!(chain = %chain, from = next, to, transfers = scan.transfers.len(), "range processed");
        }
        Ok(Progress::Advanced { to })
    }

    /// The lowest block whose payments this step may newly confirm: `confirmations` deep
    /// below the previous processed block, and on a chain with a final block, just above
    /// the final block the invoices were last settled against (after a restart: as far
    /// back as reorgs are followed).
    fn confirmation_window_low(&self, processed: i64, head: Head) -> i64 {
        let by_depth = processed - i64::from(self.settings.confirmations.max(1)) + 1;
        if head.final_block.is_none() {
            return by_depth;
        }
        let by_final = match self.settled_final {
            Some(f) => f as i64 + 1,
            None => processed - self.settings.max_reorg_depth as i64,
        };
        by_depth.min(by_final)
    }

    /// While caught up, the final block moved: settle what it newly confirms. Returns
    /// `false` (nothing written) when another listener moved the cursor since `seen`.
    async fn settle_finality(
        &mut self,
        seen: &CursorSeen,
        head: Head,
    ) -> Result<bool, FollowError<S::Error>> {
        let chain = self.settings.chain.clone();
        let processed = seen.processed_block;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        if !chain_queries::hold_cursor(&mut tx, &chain, seen, now).await? {
            return Ok(false);
        }
        let mut touched: BTreeSet<String> =
            chain_queries::invoice_ids_in_status(&mut tx, &chain, InvoiceStatus::Confirming)
                .await?
                .into_iter()
                .collect();
        let low = self.confirmation_window_low(processed, head);
        touched
            .extend(chain_queries::invoices_paid_in_blocks(&mut tx, &chain, low, processed).await?);
        let view = view(processed, head.final_block);
        self.invoices
            .settle_in(&mut tx, &touched, view, now)
            .await?;
        self.credit_deposits(&mut tx, view, low, now).await?;
        if let Some(f) = head.final_block {
            chain_queries::raise_final_block(&mut tx, &chain, f).await?;
        }
        tx.commit().await?;
        self.settled_final = head.final_block;
        Ok(true)
    }

    /// Credits the ledger deposits `view` newly confirms (blocks from `low`), in the
    /// step's transaction.
    async fn credit_deposits(
        &self,
        tx: &mut crate::store::Tx,
        view: ChainView,
        low: i64,
        now: i64,
    ) -> Result<(), FollowError<S::Error>> {
        let window = DepositWindow {
            confirmations: self.settings.confirmations,
            processed_block: view.processed_block,
            final_block: view.final_block,
            low,
        };
        Ledger::new(self.store.clone())
            .credit_confirmed_deposits(tx, &self.settings.chain, window, now)
            .await?;
        Ok(())
    }

    /// Doubles the range after a full range succeeded, up to the ceiling a refusal set
    /// (forgotten after a while) and `max_block_range`.
    fn grow_range(&mut self) {
        if self.range_ceiling.is_some() {
            self.ranges_under_ceiling += 1;
            if self.ranges_under_ceiling >= CEILING_LIFETIME {
                self.range_ceiling = None;
            }
        }
        let limit = self.range_ceiling.unwrap_or(self.settings.max_block_range);
        self.range = (self.range * 2).min(limit);
    }

    /// The last block of the next range starting at `next`: one block inside the reorg
    /// window, else up to the current range size, stopping before the window.
    fn range_end(&self, next: u64, head: u64) -> u64 {
        let window_start = head
            .saturating_sub(self.settings.reorg_window)
            .saturating_add(1);
        if next >= window_start {
            return next;
        }
        next.saturating_add(self.range - 1).min(window_start - 1)
    }

    /// Finds the newest stored block the node still has, and rolls everything above it
    /// back in one transaction.
    async fn roll_back(
        &mut self,
        seen: &CursorSeen,
        head: Head,
    ) -> Result<Progress, FollowError<S::Error>> {
        let chain = self.settings.chain.clone();
        let processed = seen.processed_block;
        let low = (processed - self.settings.max_reorg_depth as i64).max(0);
        let mut ancestor = None;
        for (number, stored) in self
            .store
            .chain_block_hashes(&chain, low, processed)
            .await?
        {
            let on_node = self
                .source
                .block(number as u64)
                .await
                .map_err(FollowError::Source)?;
            if let Some(block) = on_node.filter(|b| b.id == stored) {
                ancestor = Some((number, block.timestamp_ms));
                break;
            }
        }
        let Some((ancestor, ancestor_time)) = ancestor else {
            return Err(FollowError::ReorgTooDeep {
                depth: self.settings.max_reorg_depth,
                low,
                high: processed,
            });
        };
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let rewound = (ancestor, ancestor_time);
        if !chain_queries::advance_cursor(&mut tx, &chain, seen, rewound, head.number, now).await? {
            return Ok(self.superseded(seen));
        }
        let mut touched: BTreeSet<String> =
            chain_queries::roll_back_above(&mut tx, &chain, ancestor)
                .await?
                .into_iter()
                .collect();
        Ledger::new(self.store.clone())
            .reverse_removed_deposits(&mut tx, &chain, ancestor, now)
            .await?;
        if let Some(f) = head.final_block {
            chain_queries::raise_final_block(&mut tx, &chain, f).await?;
        }
        touched.extend(
            chain_queries::invoice_ids_in_status(&mut tx, &chain, InvoiceStatus::Confirming)
                .await?,
        );
        let view = view(ancestor, head.final_block);
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

    /// Brings the watch set up to date with the active payment targets (every step does;
    /// a caller may do it ahead of the first step).
    pub async fn refresh_watch(&mut self) -> Result<(), StoreError> {
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
            .watched_targets(&self.settings.chain, since)
            .await?;
        if full {
            self.watch = WatchSet::default();
            self.watch_full_reload = Instant::now();
        }
        for (text, asset) in rows {
            let Some(address) = self.source.parse_address(&text) else {
                tracing::warn!(chain = %self.settings.chain, address = text, "a payment target holds an invalid address; not watched");
                continue;
            };
            let set = if self.source.native_symbol() == Some(asset.as_str()) {
                &mut self.watch.native_recipients
            } else {
                &mut self.watch.token_recipients
            };
            set.insert(address);
        }
        // Ledger deposit addresses take every asset of the chain.
        let deposits = Ledger::new(self.store.clone())
            .watched_deposit_addresses(&self.settings.chain, since)
            .await
            .map_err(|e| match e {
                LedgerError::Store(e) => e,
                other => StoreError::Corrupt(other.to_string()),
            })?;
        for text in deposits {
            let Some(address) = self.source.parse_address(&text) else {
                tracing::warn!(chain = %self.settings.chain, address = text, "a deposit address is invalid; not watched");
                continue;
            };
            self.watch.token_recipients.insert(address);
            if self.source.native_symbol().is_some()
                && let Some(address) = self.source.parse_address(&text)
            {
                self.watch.native_recipients.insert(address);
            }
        }
        self.watch_loaded_at = Some(now);
        Ok(())
    }

    fn publish_position(&self, head: Head, processed: i64) {
        let chain = self.settings.chain.clone();
        let processed = u64::try_from(processed).ok();
        let lag = processed.map(|p| head.number.saturating_sub(p));
        metrics::gauge!("polypay_chain_head_block", "chain" => chain.clone())
            .set(head.number as f64);
        if let Some(p) = processed {
            metrics::gauge!("polypay_chain_processed_block", "chain" => chain.clone())
                .set(p as f64);
        }
        if let Some(f) = head.final_block {
            metrics::gauge!("polypay_chain_final_block", "chain" => chain.clone()).set(f as f64);
        }
        if let Some(lag) = lag {
            metrics::gauge!("polypay_chain_lag_blocks", "chain" => chain).set(lag as f64);
        }
        self.status.send_modify(|s| {
            s.head_block = Some(head.number);
            s.final_block = head.final_block;
            s.processed_block = processed;
            s.lag_blocks = lag;
        });
    }

    /// The step's compare-and-set failed: its transaction is dropped (rolled back).
    fn superseded(&self, seen: &CursorSeen) -> Progress {
        metrics::counter!("polypay_chain_cursor_conflicts_total", "chain" => self.settings.chain.clone())
            .increment(1);
        tracing::warn!(
            chain = %self.settings.chain, read_at = seen.processed_block,
            "the cursor moved under this listener (another instance, or a rewind); step discarded"
        );
        Progress::Superseded
    }

    fn count_rpc_error(&self) {
        metrics::counter!("polypay_chain_rpc_errors_total", "chain" => self.settings.chain.clone())
            .increment(1);
    }

    fn mark_healthy(&self) {
        metrics::gauge!("polypay_chain_healthy", "chain" => self.settings.chain.clone()).set(1.0);
        self.status.send_if_modified(|s| {
            let was = (s.healthy, s.consecutive_errors, s.last_error.is_some());
            s.healthy = true;
            s.consecutive_errors = 0;
            s.last_error = None;
            was != (true, 0, false)
        });
    }

    fn mark_failed(&self, error: &FollowError<S::Error>) {
        if matches!(error, FollowError::Source(_)) {
            self.count_rpc_error();
        }
        metrics::gauge!("polypay_chain_healthy", "chain" => self.settings.chain.clone()).set(0.0);
        let mut errors = 0;
        self.status.send_modify(|s| {
            s.healthy = false;
            s.consecutive_errors += 1;
            s.last_error = Some(error.to_string());
            errors = s.consecutive_errors;
        });
        // Log the first failure and then every tenth, not every retry of an outage.
        if errors == 1 || errors % 10 == 0 {
            tracing::warn!(chain = %self.settings.chain, consecutive = errors, error = %error, "listener step failed; retrying");
        }
    }
}

/// The chain as settled against: processed up to `processed`, final up to `final_block`
/// (never beyond what was processed).
fn view(processed: i64, final_block: Option<u64>) -> ChainView {
    ChainView {
        processed_block: processed,
        final_block: final_block.map(|f| (f as i64).min(processed)),
    }
}
