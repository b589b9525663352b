//! Webhook delivery: the durable outbox, its workers, and operator control. polypay is the
//! party that never loses a callback.
//!
//! # The path of one callback
//!
//! 1. Every invoice change writes its outbox event in the same transaction
//!    (`crate::invoice::service`; the payload is [`crate::invoice::EventPayload`], one
//!    versioned type for writing and reading); a plugin's test callback
//!    ([`queue_test_event`]) is an outbox event too, without an invoice.
//! 2. A [`Dispatcher`] claims due events ([`crate::store::outbox::claim`]): on PostgreSQL
//!    with `FOR UPDATE SKIP LOCKED`, so any number of workers and instances share one
//!    database without sending the same attempt twice; each claim carries a lease
//!    (`webhooks.lease_ms`) after which a crashed worker's events are retaken and its lost
//!    attempt is recorded as `abandoned`.
//! 3. For every attempt the owning plugin renders the callback afresh
//!    ([`WebhookRenderer`]): URL, headers, body, the acceptance rule and retry advice. A
//!    signature that includes the time is therefore fresh on every retry.
//! 4. The [`transport`] sends it (reqwest over rustls; connect and total timeouts; no
//!    redirects, no proxy; response body read up to `webhooks.max_response_bytes`) to a
//!    target the [`target`] policy allows (no loopback, private, link-local, metadata, …
//!    address unless the operator allows it; checked at connection time, so DNS rebinding
//!    cannot get around it).
//! 5. The attempt (time, status, latency, truncated response body, error) and the event's
//!    new state are written in one transaction (shared with the outcomes of other
//!    deliveries that finished meanwhile). An accepted event is `delivered` and is never
//!    sent again, except by an explicit operator replay.
//!
//! Each delivery is an independent task: a slow receiver delays only its own callbacks,
//! and per-receiver limits keep it from taking every slot (see the dispatcher's docs,
//! `dispatcher.rs`, for the limits and the batching of writes).
//!
//! # Guarantees and decisions
//!
//! - **At least once, and once after acceptance is recorded.** A worker that dies after the
//!   receiver accepted but before recording it loses its lease; the event is sent again.
//!   Receivers see the stable event id (the plugin puts it in the callback) to deduplicate.
//! - **Per-invoice order.** Only the oldest open event of an invoice is due: a later event
//!   waits until the earlier one is delivered, skipped or dead. A dead-lettered event does
//!   not block later ones (they carry the newer state, which the merchant needs most).
//! - **Retries.** See [`RetryAdvice`]: the plugin may give up (dead-letter now), name its
//!   own delay (a dialect's documented timing wins), or leave it to the host's schedule
//!   for that plugin ([`RetrySchedule`]: exponential backoff with added jitter; the default
//!   spans about 3.1 days over 23 attempts). The schedule's `max_attempts` bounds every
//!   plugin. A plugin that fails to render counts as a failed attempt on the host's
//!   schedule. A refused target is dead-lettered at once (waiting does not change policy).
//! - **Plugins that are not mounted.** Their events stay pending and are looked at again
//!   every `webhooks.unmounted_plugin_retry_ms`, with a warning; nothing is dropped and no
//!   attempt is counted.
//! - **No callback URL.** An invoice without a notify URL has nothing to deliver: its
//!   events are `skipped` without asking the plugin. A plugin that renders `None` skips
//!   the event too.
//! - **Replay** (operator): a delivered or dead event becomes pending again, due now, in a
//!   new round (the plugin sees attempt 1 and the schedule starts over); history is kept.
//!
//! # Operator control and observability
//!
//! The admin listener serves the operator's webhook routes (`crate::http::admin::webhooks`) (list, show with attempts, replay, stats);
//! the CLI has `polypay webhook list|show|replay` ([`cli`]). Plugins get per-merchant
//! statistics ([`merchant_stats`]) and test callbacks ([`queue_test_event`]).
//! Metrics: `polypay_webhook_attempts_total{outcome}`,
//! `polypay_webhook_deliveries_total{outcome=delivered|dead|skipped}`,
//! `polypay_webhook_attempt_duration_seconds`, `polypay_webhook_queue_depth` and
//! `polypay_webhook_oldest_pending_age_seconds`.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn demo(store: polypay_host::store::Store) -> Result<(), polypay_host::webhook::DispatcherError> {
//! use std::sync::Arc;
//! use polypay_host::webhook::{Dispatcher, NoPlugins, WebhookConfig};
//!
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! // The server passes the plugin runtime as the renderer.
//! let dispatcher = Arc::new(Dispatcher::new(store, WebhookConfig::default(), Arc::new(NoPlugins))?);
//! let workers = tokio::spawn(dispatcher.run(stopped));
//! // … later:
//! stop.send(true).ok();
//! workers.await.ok();
//! # Ok(()) }
//! ```

pub mod cli;
mod config;
mod dispatcher;
pub mod render;
pub mod target;
pub mod transport;

pub use config::{RetrySchedule, WebhookConfig};
pub use dispatcher::{Dispatcher, DispatcherError, Pass, next_after_failure};
pub use render::{
    Acceptance, LedgerWebhookEvent, NoPlugins, RenderError, RenderedWebhook, RetryAdvice,
    TEST_EVENT_KIND, WebhookEvent, WebhookEventKind, WebhookRenderer,
};

use crate::invoice::{Allocation, Amount, EventPayload, Invoice, NewInvoice, PayloadError};
use crate::store::outbox::{self, Claim, DeliveryStats};
use crate::store::{Store, StoreError, now_ms};

/// The event a claim is about, as a renderer sees it. Fails when the stored payload is
/// not one this polypay reads.
pub(crate) fn event_from_claim(claim: &Claim) -> Result<WebhookEvent, PayloadError> {
    let delivery = &claim.delivery;
    let payload = EventPayload::from_json(&claim.payload)?;
    let kind = if payload.is_test() {
        WebhookEventKind::Test
    } else {
        WebhookEventKind::StatusChanged
    };
    Ok(WebhookEvent {
        id: delivery.id,
        kind,
        name: delivery.kind.clone(),
        plugin: delivery.plugin.clone(),
        merchant_id: delivery.merchant_id.clone(),
        invoice_id: delivery.invoice_id.clone(),
        url: payload.callback_url().unwrap_or_default().to_string(),
        invoice: payload.invoice,
        previous_status: payload.previous_status,
        occurred_at: delivery.created_at,
    })
}

/// The ledger event a claim of kind `ledger.*` is about.
pub(crate) fn ledger_event_from_claim(
    claim: &Claim,
) -> Result<LedgerWebhookEvent, serde_json::Error> {
    let delivery = &claim.delivery;
    Ok(LedgerWebhookEvent {
        id: delivery.id,
        plugin: delivery.plugin.clone(),
        merchant_id: delivery.merchant_id.clone(),
        payload: serde_json::from_str(&claim.payload)?,
        occurred_at: delivery.created_at,
    })
}

/// Test callbacks one merchant may queue per [`TEST_EVENT_WINDOW_MS`]: enough to try a
/// receiver a few times, too few to turn polypay into a request cannon aimed at someone
/// else's server.
pub const TEST_EVENT_LIMIT: u32 = 10;
/// The sliding window of [`TEST_EVENT_LIMIT`]: ten minutes.
pub const TEST_EVENT_WINDOW_MS: i64 = 10 * 60_000;

/// Why a test callback could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum TestEventError {
    #[error("invalid callback URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "at most {TEST_EVENT_LIMIT} test callbacks per merchant every 10 minutes; retry after {retry_after_ms} ms"
    )]
    RateLimited { retry_after_ms: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues a test callback of `plugin` for `merchant_id` to `url` (WIT `webhooks.send-test`)
/// and returns its event id. The plugin renders it like any event, with kind
/// [`WebhookEventKind::Test`] and a sample paid invoice (1 USDT on `ethereum`) whose
/// `notify_url` is `url`. The URL's target is checked at delivery, like every callback.
/// A merchant queues at most [`TEST_EVENT_LIMIT`] of them per [`TEST_EVENT_WINDOW_MS`]
/// (over every plugin; counted in the outbox, so the limit holds across instances).
pub async fn queue_test_event(
    store: &Store,
    plugin: &str,
    merchant_id: &str,
    url: &str,
) -> Result<i64, TestEventError> {
    let invalid = |reason: String| TestEventError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("an http(s) URL with a host is required".into()));
    }
    let now = now_ms();
    let amount = Amount::from(1_000_000u64);
    let mut new = NewInvoice::new(
        merchant_id,
        plugin,
        "ethereum",
        ("USDT", 6),
        amount,
        now + 3_600_000,
    );
    new.merchant_order_id = Some("test".into());
    new.notify_url = Some(url.to_string());
    let allocation = Allocation::fixed_address(&new, &format!("0x{}", "0".repeat(40)), 1);
    let mut sample = Invoice::open(
        format!("test-{}", uuid::Uuid::new_v4()),
        &new,
        &allocation,
        now,
    );
    sample.status = crate::invoice::InvoiceStatus::Paid;
    sample.amount_paid = amount;
    sample.amount_confirmed = amount;
    sample.txn_hash = Some(format!("0x{}", "0".repeat(64)));
    sample.first_paid_at = Some(now);
    sample.paid_at = Some(now);
    let payload = EventPayload::test(sample, url);
    let event = outbox::TestEvent {
        plugin,
        merchant_id,
        payload: &payload,
        now,
    };
    let since = now - TEST_EVENT_WINDOW_MS;
    outbox::insert_test_event_limited(store, event, TEST_EVENT_LIMIT, since)
        .await?
        .map_err(|oldest| TestEventError::RateLimited {
            retry_after_ms: (oldest + TEST_EVENT_WINDOW_MS - now).max(1) as u64,
        })
}

/// Delivery statistics of `merchant_id` over the last `days` days (WIT `webhooks.stats`);
/// with `plugin`, only that plugin's events.
pub async fn merchant_stats(
    store: &Store,
    merchant_id: &str,
    plugin: Option<&str>,
    days: u32,
) -> Result<DeliveryStats, StoreError> {
    let mut conn = store.pool().acquire().await?;
    outbox::stats(&mut conn, merchant_id, plugin, days, now_ms()).await
}
