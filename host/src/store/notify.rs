//! Wake-ups from the database: PostgreSQL `LISTEN` on the channels the migration's
//! triggers notify (`polypay_outbox` when an outbox event is committed, `polypay_invoice`
//! with the id of an invoice whose status or amounts changed), turned into in-process
//! signals: [`Wakeups::outbox`] for the webhook workers, [`Wakeups::invoices`] for the
//! checkout streams. Whichever instance writes the change, every instance hears it.
//!
//! Notifications are an accelerator, never the only path: the workers and the streams
//! keep polling at their configured intervals (a retry falls due by time, which nothing
//! announces). One connection per process listens. When it fails, the listener
//! reconnects (after a pause that doubles up to [`MAX_RECONNECT`]) and then resynchronises:
//! it wakes every worker and every stream once, because whatever was notified while it
//! was away is lost. `polypay_notify_connected` is 1 while it listens.
//!
//! On SQLite nothing listens (one process, which polls); the signals then never fire.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// The channel an outbox insert notifies.
pub const OUTBOX_CHANNEL: &str = "polypay_outbox";
/// The channel an invoice change notifies (payload: the invoice id).
pub const INVOICE_CHANNEL: &str = "polypay_invoice";
/// Longest pause between reconnection attempts.
pub const MAX_RECONNECT: Duration = Duration::from_secs(10);

/// What changed about invoices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceChange {
    /// This invoice changed.
    One(Arc<str>),
    /// Anything may have changed (the listener reconnected): re-read everything.
    All,
}

/// The signals one process's listener raises. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Wakeups {
    outbox: watch::Sender<u64>,
    invoices: broadcast::Sender<InvoiceChange>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups::new()
    }
}

impl Wakeups {
    pub fn new() -> Wakeups {
        Wakeups {
            outbox: watch::channel(0).0,
            invoices: broadcast::channel(1024).0,
        }
    }

    /// Changes whenever outbox events may have been added.
    pub fn outbox(&self) -> watch::Receiver<u64> {
        self.outbox.subscribe()
    }

    /// Invoice changes from now on. A receiver that lags behind should treat it as
    /// [`InvoiceChange::All`].
    pub fn invoices(&self) -> broadcast::Receiver<InvoiceChange> {
        self.invoices.subscribe()
    }

    fn wake_outbox(&self) {
        self.outbox.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn resync(&self) {
        self.wake_outbox();
        let _ = self.invoices.send(InvoiceChange::All);
    }

    /// Listens on `url` (a PostgreSQL URL) until `shutdown`, reconnecting and
    /// resynchronising after every failure; see the module docs.
    pub async fn listen(self, url: String, shutdown: CancellationToken) {
        let mut pause = Duration::from_millis(500);
        loop {
            match self.listen_once(&url, &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    metrics::gauge!("polypay_notify_connected").set(0.0);
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "database notifications lost; polling only until reconnected");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_RECONNECT);
        }
    }

    /// One connection's life: `Ok` on shutdown, `Err` when it failed.
    async fn listen_once(
        &self,
        url: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect(url).await?;
        listener
            .listen_all([OUTBOX_CHANNEL, INVOICE_CHANNEL])
            .await?;
        metrics::gauge!("polypay_notify_connected").set(1.0);
        tracing::debug!("listening for database notifications");
        // Whatever happened before this connection listened was not heard.
        self.resync();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = listener.try_recv() => next?,
            };
            let Some(notification) = next else {
                // The connection dropped; reconnect explicitly (and resynchronise).
                return Err(sqlx::Error::Protocol("notification connection lost".into()));
            };
            match notification.channel() {
                OUTBOX_CHANNEL => self.wake_outbox(),
                INVOICE_CHANNEL => {
                    let _ = self
                        .invoices
                        .send(InvoiceChange::One(notification.payload().into()));
                }
                _ => {}
            }
        }
    }
}
