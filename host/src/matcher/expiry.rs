//! The expiry scheduler: moves unpaid invoices to `expired` when their deadline passes,
//! and ends the reservations that can no longer be paid.
//!
//! It ticks every [`ExpiryScheduler::tick`] (half a second by default), so an invoice
//! expires at most about that long after its deadline. Each expiry is the invoice
//! service's `expire_due`, which re-reads the invoice under its lock, settles it (a payment
//! that landed meanwhile wins), and writes the status change with its `invoice.expired`
//! outbox event in one transaction. Several instances may run it at once: a second expiry
//! of the same invoice finds it already expired and does nothing. Reservations are
//! released by the service's `release_due_targets`: an indexed scan of the targets due,
//! each released only once its chain has been read past its release time.

use std::future::Future;
use std::time::Duration;

use crate::invoice::{Invoice, InvoiceError, InvoiceService};
use crate::store::{Store, now_ms};

/// Invoices expired per store call; a backlog is worked off in several calls in one tick.
const BATCH: i64 = 500;

/// Expires invoices on time. See the module docs.
#[derive(Debug, Clone)]
pub struct ExpiryScheduler {
    invoices: InvoiceService,
    tick: Duration,
}

impl ExpiryScheduler {
    pub fn new(store: Store) -> ExpiryScheduler {
        ExpiryScheduler {
            invoices: InvoiceService::new(store),
            tick: Duration::from_millis(500),
        }
    }

    /// Sets the pause between passes.
    pub fn tick(mut self, tick: Duration) -> ExpiryScheduler {
        self.tick = tick;
        self
    }

    /// One pass at `now`: expires every invoice due, releases ended reservations, and
    /// returns the invoices expired.
    pub async fn run_once(&self, now: i64) -> Result<Vec<Invoice>, InvoiceError> {
        let mut expired = Vec::new();
        loop {
            let batch = self.invoices.expire_due(now, BATCH).await?;
            let full = batch.len() as i64 >= BATCH;
            expired.extend(batch);
            if !full {
                break;
            }
        }
        self.invoices.release_due_targets(now).await?;
        Ok(expired)
    }

    /// Runs passes until `shutdown` resolves. A failing pass is logged and retried at the
    /// next tick.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            match self.run_once(now_ms()).await {
                Ok(expired) => {
                    for invoice in &expired {
                        tracing::info!(invoice = %invoice.id, status = %invoice.status, "invoice deadline passed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "expiry pass failed; retrying"),
            }
        }
    }
}
