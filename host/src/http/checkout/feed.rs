//! The live status behind the checkout event streams: one shared watcher per invoice.
//!
//! A watcher re-reads its invoice once per `checkout.poll_interval_ms` and publishes the
//! view on a `tokio::sync::watch` channel when something the page shows changed; every
//! open stream of that invoice is a receiver of the same channel. N pages open on one
//! invoice therefore cost one query per tick, not N. The registry keeps a watcher only
//! while it has subscribers: the watcher leaves (under the registry's lock, so a new
//! subscriber either joins it before or starts a fresh one after) once its last stream is
//! gone, or once the view is final ([`CheckoutView::is_final`]), or when its invoice can
//! no longer be read (the streams end; browsers reconnect).
//!
//! On PostgreSQL a watcher also re-reads at once when the database notifies that its
//! invoice changed (written by any instance; see [`crate::store::notify`]), and every
//! watcher re-reads after the notification connection was re-established; the tick stays
//! as the fallback.
//!
//! Streams are capped (`checkout.max_streams` at once, across invoices): a stream holds a
//! slot for its whole life, and one more is answered 503 with `Retry-After` (the page
//! falls back to polling the JSON). A stream also ends after [`STREAM_LIFETIME`] and when
//! the server shuts down (the app-wide cancellation token), so no connection holds up a
//! graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::CheckoutView;
use crate::chain::ChainConfig;
use crate::store::Store;
use crate::store::notify::{InvoiceChange, Wakeups};

/// Longest life of one event stream; the browser reconnects after it.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(30);

/// The registry of watchers, shared by every checkout stream of the process.
#[derive(Clone)]
pub struct CheckoutFeed {
    inner: Arc<FeedInner>,
}

struct FeedInner {
    store: Store,
    chains: Arc<Vec<ChainConfig>>,
    /// Development mode with a dev wallet: views offer it on EVM networks.
    dev_wallet: bool,
    poll_interval: Duration,
    streams: Arc<Semaphore>,
    watchers: Mutex<HashMap<String, Arc<watch::Sender<CheckoutView>>>>,
    shutdown: CancellationToken,
    reads: AtomicU64,
    wakeups: Wakeups,
}

/// What the feed is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedStats {
    /// Invoices being watched (one query per tick each).
    pub watchers: usize,
    /// Open streams following a watcher.
    pub subscribers: usize,
    /// Invoice reads made by watchers since start.
    pub reads: u64,
}

/// A reserved place for one stream (`checkout.max_streams`).
pub struct StreamSlot(OwnedSemaphorePermit);

/// One stream's place in the feed: its slot and, unless its first view was already
/// final, its watcher's channel.
pub struct Subscription {
    pub updates: Option<watch::Receiver<CheckoutView>>,
    pub shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl CheckoutFeed {
    /// `dev_wallet`: the process runs in development mode with a dev wallet.
    pub fn new(
        store: Store,
        chains: Vec<ChainConfig>,
        dev_wallet: bool,
        config: &crate::config::CheckoutConfig,
        shutdown: CancellationToken,
    ) -> CheckoutFeed {
        CheckoutFeed {
            inner: Arc::new(FeedInner {
                store,
                chains: Arc::new(chains),
                dev_wallet,
                poll_interval: Duration::from_millis(config.poll_interval_ms),
                streams: Arc::new(Semaphore::new(config.max_streams)),
                watchers: Mutex::new(HashMap::new()),
                shutdown,
                reads: AtomicU64::new(0),
                wakeups: Wakeups::new(),
            }),
        }
    }

    /// Watchers also re-read when `wakeups` reports their invoice changed. Call before
    /// the feed is shared.
    pub fn with_wakeups(mut self, wakeups: Wakeups) -> CheckoutFeed {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.wakeups = wakeups;
        }
        self
    }

    pub fn chains(&self) -> &[ChainConfig] {
        &self.inner.chains
    }

    /// The view of `invoice` now, as every page and stream of this process shows it.
    pub fn view(&self, invoice: &crate::invoice::Invoice) -> CheckoutView {
        let mut view = CheckoutView::of(invoice, &self.inner.chains, crate::store::now_ms());
        view.dev_wallet =
            self.inner.dev_wallet && crate::dev::wallet::can_pay_on(view.chain_kind, &view.network);
        view
    }

    pub fn stats(&self) -> FeedStats {
        let watchers = self.inner.watchers.lock().expect("feed lock");
        FeedStats {
            watchers: watchers.len(),
            subscribers: watchers.values().map(|w| w.receiver_count()).sum(),
            reads: self.inner.reads.load(Ordering::Relaxed),
        }
    }

    /// A stream slot, taken before anything else is done for the stream (so a refused
    /// stream costs no query); `None` when every slot is taken.
    pub fn reserve(&self) -> Option<StreamSlot> {
        self.inner
            .streams
            .clone()
            .try_acquire_owned()
            .ok()
            .map(StreamSlot)
    }

    /// The updates of invoice `id`, whose current view is `first`, for the stream that
    /// holds `slot`.
    pub fn subscribe(&self, slot: StreamSlot, id: &str, first: &CheckoutView) -> Subscription {
        let updates = (!first.is_final()).then(|| self.watch(id, first));
        Subscription {
            updates,
            shutdown: self.inner.shutdown.clone(),
            _slot: slot.0,
        }
    }

    fn watch(&self, id: &str, first: &CheckoutView) -> watch::Receiver<CheckoutView> {
        let mut watchers = self.inner.watchers.lock().expect("feed lock");
        if let Some(sender) = watchers.get(id) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(first.clone());
        let sender = Arc::new(sender);
        watchers.insert(id.to_string(), sender.clone());
        metrics::gauge!("polypay_checkout_watchers").set(watchers.len() as f64);
        tokio::spawn(self.clone().run_watcher(id.to_string(), sender));
        receiver
    }

    /// Leaves the registry if nobody follows `id` any more (or `force`); true when gone.
    fn leave(&self, id: &str, sender: &watch::Sender<CheckoutView>, force: bool) -> bool {
        let mut watchers = self.inner.watchers.lock().expect("feed lock");
        if force || sender.receiver_count() == 0 {
            watchers.remove(id);
            metrics::gauge!("polypay_checkout_watchers").set(watchers.len() as f64);
            return true;
        }
        false
    }

    async fn run_watcher(self, id: String, sender: Arc<watch::Sender<CheckoutView>>) {
        let mut tick = tokio::time::interval(self.inner.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; the subscriber has the view
        let mut changes = self.inner.wakeups.invoices();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = changed(&mut changes, &id) => {}
                _ = self.inner.shutdown.cancelled() => {
                    self.leave(&id, &sender, true);
                    return;
                }
            }
            if self.leave(&id, &sender, false) {
                return;
            }
            self.inner.reads.fetch_add(1, Ordering::Relaxed);
            let view = match self.inner.store.invoice(&id).await {
                Ok(Some(invoice)) => self.view(&invoice),
                Ok(None) => {
                    self.leave(&id, &sender, true);
                    return;
                }
                Err(e) => {
                    // The streams end and the browsers reconnect (or fall back to polling).
                    tracing::warn!(invoice = %id, error = %e, "checkout watcher: reading the invoice failed");
                    self.leave(&id, &sender, true);
                    return;
                }
            };
            let last = view.is_final();
            if last {
                // Leave first: a page that connects from now on reads the final view itself.
                self.leave(&id, &sender, true);
            }
            sender.send_if_modified(|current| {
                let changed = current.change_key() != view.change_key();
                *current = view;
                changed
            });
            if last {
                return;
            }
        }
    }
}

/// Resolves when `changes` says invoice `id` changed (or maybe did: a resync, or this
/// receiver fell behind); never once the sender is gone.
async fn changed(changes: &mut broadcast::Receiver<InvoiceChange>, id: &str) {
    loop {
        match changes.recv().await {
            Ok(InvoiceChange::One(changed)) if &*changed != id => continue,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
