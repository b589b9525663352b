//! The rendering boundary: the webhook worker asks the plugin that owns an event what to
//! send, afresh for every attempt (signatures that include the time stay valid on
//! retries). The plugin runtime implements [`WebhookRenderer`]; the types mirror the WIT
//! records of `polypay:plugin` (`invoice-event`, `webhook-delivery`, `outgoing-request`,
//! `acceptance`) in plain Rust.

use futures::future::BoxFuture;
use serde::Serialize;

use crate::invoice::{Invoice, InvoiceStatus};

pub use crate::invoice::TEST_EVENT_KIND;

/// What an event is about (WIT `event-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookEventKind {
    /// An invoice's status or amount outcome changed (every `invoice.*` outbox event).
    StatusChanged,
    /// A test delivery requested by a plugin for its merchant.
    Test,
}

/// One outbox event as the renderer sees it (WIT `invoice-event`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    /// The outbox event id: stable across attempts and replays, so a plugin can use it
    /// (or derive one from it) as the callback's idempotency key.
    pub id: i64,
    pub kind: WebhookEventKind,
    /// The outbox kind: `invoice.paid`, `invoice.expired`, …, or [`TEST_EVENT_KIND`].
    pub name: String,
    /// The plugin that owns the event (the one that created the invoice).
    pub plugin: String,
    pub merchant_id: String,
    /// `None` for test events.
    pub invoice_id: Option<String>,
    /// The invoice as it was right after the change; for test events a sample invoice
    /// carrying the test URL as its `notify_url`.
    pub invoice: Invoice,
    pub previous_status: Option<InvoiceStatus>,
    /// When the change happened (unix ms).
    pub occurred_at: i64,
    /// Where to deliver: the invoice's notify URL, or the test URL.
    pub url: String,
}

/// Which response counts as delivered (WIT `acceptance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acceptance {
    /// Any 2xx status.
    AnySuccess,
    /// Status 200 exactly.
    ExactlyOk,
    /// A 2xx status and a body that, trimmed of whitespace, equals this text.
    BodyEquals(String),
}

impl Acceptance {
    /// Whether a response is accepted. A truncated body never equals an expected text.
    pub fn accepts(&self, status: u16, body: &[u8], truncated: bool) -> bool {
        match self {
            Acceptance::AnySuccess => (200..300).contains(&status),
            Acceptance::ExactlyOk => status == 200,
            Acceptance::BodyEquals(expected) => {
                (200..300).contains(&status)
                    && !truncated
                    && String::from_utf8_lossy(body).trim() == expected.trim()
            }
        }
    }
}

/// When to try again if this attempt is not accepted.
///
/// How it combines with the host's schedule for the plugin (`webhooks.retry`,
/// `webhooks.plugin_retry.NAME`):
/// - [`RetryAdvice::GiveUp`]: the event is dead-lettered after this attempt (a dialect's
///   own limit, e.g. "gave up after 6 tries").
/// - [`RetryAdvice::After`]: the plugin's delay wins (a dialect's documented timing),
///   without jitter.
/// - [`RetryAdvice::HostSchedule`]: the host's exponential backoff with jitter.
///
/// Either way the host's schedule bounds the number of attempts: after its
/// `max_attempts` (counted from the last replay) the event is dead-lettered, whatever
/// the plugin says, so a plugin cannot retry forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryAdvice {
    HostSchedule,
    After(std::time::Duration),
    GiveUp,
}

impl RetryAdvice {
    /// The WIT field `retry-after-secs: option<u32>`: `none` gives up (as the WIT says),
    /// `some(n)` retries after `n` seconds, and `some(0)` — "retry at once", which the
    /// host never does to a failing receiver — means "on the host's schedule".
    pub fn from_retry_after_secs(retry_after_secs: Option<u32>) -> RetryAdvice {
        match retry_after_secs {
            None => RetryAdvice::GiveUp,
            Some(0) => RetryAdvice::HostSchedule,
            Some(secs) => RetryAdvice::After(std::time::Duration::from_secs(u64::from(secs))),
        }
    }
}

/// The callback a plugin rendered for one attempt (WIT `webhook-delivery`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedWebhook {
    /// Upper-case method, e.g. `POST`.
    pub method: String,
    pub url: String,
    /// Header names and values; `host`, `content-length`, `transfer-encoding` and
    /// `connection` are set by the host and ignored here.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub accept: Acceptance,
    pub retry: RetryAdvice,
}

/// Why an event could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// No plugin of that name is mounted in this process. The event stays pending and is
    /// looked at again later (a plugin removed from config by mistake loses nothing);
    /// no attempt is counted.
    #[error("no plugin named `{0}` is mounted here")]
    PluginNotMounted(String),
    /// The plugin failed (trap, deadline, bad output). Counted as a failed attempt and
    /// retried on the host's schedule.
    #[error("rendering failed: {0}")]
    Failed(String),
    /// The host could not run the plugin now (its rendering slots are all taken, or the
    /// host is overloaded). Nobody failed: the event stays pending and is tried again
    /// after `retry_after`, and no attempt is counted, so capacity never dead-letters a
    /// callback.
    #[error("the plugin cannot render now: {reason}")]
    Busy {
        reason: String,
        retry_after: std::time::Duration,
    },
}

/// Renders callbacks for outbox events. Implemented by the plugin runtime; dyn-compatible
/// so that the server holds an `Arc<dyn WebhookRenderer>`.
///
/// `attempt` starts at 1 and counts the attempts of the current round (an operator
/// replay starts a new round at 1). `Ok(None)` means the plugin sends no callback for
/// this event: it is marked `skipped`.
pub trait WebhookRenderer: Send + Sync {
    fn render<'a>(
        &'a self,
        event: &'a WebhookEvent,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Option<RenderedWebhook>, RenderError>>;

    /// Renders a ledger event (WIT `render-ledger-webhook`). A renderer without plugins
    /// leaves it pending, like [`WebhookRenderer::render`] of [`NoPlugins`].
    fn render_ledger<'a>(
        &'a self,
        event: &'a LedgerWebhookEvent,
        _attempt: u32,
    ) -> BoxFuture<'a, Result<Option<RenderedWebhook>, RenderError>> {
        Box::pin(async move { Err(RenderError::PluginNotMounted(event.plugin.clone())) })
    }
}

/// One ledger outbox event (`ledger.*`) as the renderer sees it (WIT `ledger-event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWebhookEvent {
    /// The outbox event id, stable across attempts.
    pub id: i64,
    pub plugin: String,
    /// The order's merchant; empty when its payee is no merchant's user.
    pub merchant_id: String,
    pub payload: crate::ledger::LedgerEventPayload,
    pub occurred_at: i64,
}

/// The renderer of a server with no plugin runtime: every event waits, pending, for its
/// plugin to be mounted.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPlugins;

impl WebhookRenderer for NoPlugins {
    fn render<'a>(
        &'a self,
        event: &'a WebhookEvent,
        _attempt: u32,
    ) -> BoxFuture<'a, Result<Option<RenderedWebhook>, RenderError>> {
        Box::pin(async move { Err(RenderError::PluginNotMounted(event.plugin.clone())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptance_rules_follow_the_wit_contract() {
        assert!(Acceptance::AnySuccess.accepts(204, b"", false));
        assert!(!Acceptance::AnySuccess.accepts(302, b"", false));
        assert!(Acceptance::ExactlyOk.accepts(200, b"whatever", false));
        assert!(!Acceptance::ExactlyOk.accepts(201, b"", false));
        let ok = Acceptance::BodyEquals("ok".into());
        assert!(ok.accepts(200, b" ok\n", false));
        assert!(!ok.accepts(200, b"OK", false));
        assert!(!ok.accepts(500, b"ok", false));
        assert!(
            !ok.accepts(200, b"ok", true),
            "a truncated body proves nothing"
        );
    }

    #[test]
    fn wit_retry_after_maps_to_advice() {
        assert_eq!(
            RetryAdvice::from_retry_after_secs(None),
            RetryAdvice::GiveUp
        );
        assert_eq!(
            RetryAdvice::from_retry_after_secs(Some(0)),
            RetryAdvice::HostSchedule
        );
        assert_eq!(
            RetryAdvice::from_retry_after_secs(Some(5)),
            RetryAdvice::After(std::time::Duration::from_secs(5))
        );
    }
}
