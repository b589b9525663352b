//! The plugin runtime as the webhook worker's renderer (`crate::webhook::WebhookRenderer`).
//!
//! For each attempt the worker hands over an outbox event with the invoice
//! as it was when the change happened; this module turns it into the WIT
//! `invoice-event` (the invoice converted by the one conversion the
//! `invoices` capability uses too), asks the owning plugin's
//! `render-webhook` on a fresh instance authenticated as the event's merchant,
//! and checks what comes back before the worker sends anything.

use super::bindings::polypay::plugin::invoices::{DeliveryState, WebhookSummary};
use super::bindings::polypay::plugin::plugin_types::{
    Acceptance, EventKind, InvoiceEvent, WebhookDelivery,
};
use super::capabilities::{invoice_wit, ledger_event_wit, status_to_wit};
use super::{PluginRuntime, RenderFailure};
use crate::webhook::{
    self, LedgerWebhookEvent, RenderedWebhook, RetryAdvice, WebhookEvent, WebhookEventKind,
    WebhookRenderer,
};
use futures::future::BoxFuture;

impl WebhookRenderer for PluginRuntime {
    fn render<'a>(
        &'a self,
        event: &'a WebhookEvent,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Option<RenderedWebhook>, webhook::RenderError>> {
        Box::pin(async move {
            let base_url = &self.inner.services.inner.public_base_url;
            let wit_event = event_to_wit(event, base_url);
            let max_body = self
                .inner
                .index_of(&event.plugin)
                .map(|i| self.inner.plugins[i].config.max_body_bytes)
                .ok_or_else(|| webhook::RenderError::PluginNotMounted(event.plugin.clone()))?;
            checked(
                self.render_webhook(&event.plugin, wit_event, attempt).await,
                max_body,
            )
        })
    }

    fn render_ledger<'a>(
        &'a self,
        event: &'a LedgerWebhookEvent,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Option<RenderedWebhook>, webhook::RenderError>> {
        Box::pin(async move {
            let max_body = self
                .inner
                .index_of(&event.plugin)
                .map(|i| self.inner.plugins[i].config.max_body_bytes)
                .ok_or_else(|| webhook::RenderError::PluginNotMounted(event.plugin.clone()))?;
            let chains = &self.inner.services.inner.chains;
            let wit_event = ledger_event_wit(
                event.id,
                event.payload.clone(),
                event.occurred_at,
                |chain, asset| {
                    chains
                        .iter()
                        .find(|c| c.name == chain)
                        .and_then(|c| c.asset(asset))
                        .map_or(0, |a| a.decimals)
                },
            );
            let merchant = Some(event.merchant_id.clone()).filter(|m| !m.is_empty());
            checked(
                self.render_ledger_webhook(&event.plugin, merchant, wit_event, attempt)
                    .await,
                max_body,
            )
        })
    }
}

/// A rendering's outcome as the worker sees it: the delivery checked, failures sorted
/// into "not mounted", "busy" (no attempt counted) and "failed".
fn checked(
    rendered: Result<Option<WebhookDelivery>, RenderFailure>,
    max_body: usize,
) -> Result<Option<RenderedWebhook>, webhook::RenderError> {
    match rendered {
        Ok(None) => Ok(None),
        Ok(Some(delivery)) => delivery_from_wit(delivery, max_body)
            .map(Some)
            .map_err(|e| webhook::RenderError::Failed(e.to_string())),
        Err(RenderFailure::UnknownPlugin(p)) => Err(webhook::RenderError::PluginNotMounted(p)),
        Err(failure @ RenderFailure::Overloaded { overload, .. }) => {
            Err(webhook::RenderError::Busy {
                reason: failure.to_string(),
                retry_after: overload.retry_after(),
            })
        }
        Err(failure) => Err(webhook::RenderError::Failed(failure.to_string())),
    }
}

/// Why a rendered callback is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadDelivery {
    #[error("the plugin rendered method `{0}`")]
    Method(String),
    #[error("the plugin rendered a non-http(s) URL")]
    Scheme,
    #[error("the rendered body exceeds the {max_body}-byte cap")]
    BodyTooLarge { max_body: usize },
    #[error("the plugin rendered an invalid header `{0}`")]
    Header(String),
}

/// Checks a rendered callback and converts it for the worker.
fn delivery_from_wit(d: WebhookDelivery, max_body: usize) -> Result<RenderedWebhook, BadDelivery> {
    let method = d.request.method.to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(BadDelivery::Method(method));
    }
    if !(d.request.url.starts_with("http://") || d.request.url.starts_with("https://")) {
        return Err(BadDelivery::Scheme);
    }
    if d.request.body.len() > max_body {
        return Err(BadDelivery::BodyTooLarge { max_body });
    }
    for (name, value) in &d.request.headers {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || axum::http::HeaderValue::from_str(value).is_err()
        {
            return Err(BadDelivery::Header(name.clone()));
        }
    }
    Ok(RenderedWebhook {
        method,
        url: d.request.url,
        headers: d.request.headers,
        body: d.request.body,
        accept: match d.accept {
            Acceptance::AnySuccess => webhook::Acceptance::AnySuccess,
            Acceptance::ExactlyOk => webhook::Acceptance::ExactlyOk,
            Acceptance::BodyEquals(text) => webhook::Acceptance::BodyEquals(text),
        },
        retry: RetryAdvice::from_retry_after_secs(d.retry_after_secs),
    })
}

/// The WIT event for an outbox event; the invoice is as it was after the change.
pub(crate) fn event_to_wit(event: &WebhookEvent, base_url: &str) -> InvoiceEvent {
    // The delivery being rendered is the pending one; its record is not part of the
    // snapshot (the plugin reads live summaries through `invoices.get`).
    let webhook = WebhookSummary {
        state: DeliveryState::Pending,
        attempts: 0,
        last_attempt_at: None,
    };
    InvoiceEvent {
        id: event.id.to_string(),
        kind: match event.kind {
            WebhookEventKind::StatusChanged => EventKind::StatusChanged,
            WebhookEventKind::Test => EventKind::Test,
        },
        invoice: invoice_wit(&event.invoice, base_url, webhook),
        previous_status: event.previous_status.map(status_to_wit),
        occurred_at: event.occurred_at,
        url: event.url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoice::{Allocation, Amount, InvoiceStatus, NewInvoice, Outcome};
    use crate::plugin::bindings::polypay::plugin::invoices::{self as wit, MatchKind};
    use crate::webhook::WebhookEventKind;

    #[test]
    fn an_outbox_event_converts_to_the_wit_event_with_its_invoice() {
        let mut new = NewInvoice::new(
            "m-1",
            "p",
            "ethereum",
            ("USDT", 6),
            Amount::from(1_000_000u64),
            2,
        );
        new.plugin_data = serde_json::json!({ "k": 1 });
        let mut allocation = Allocation::fixed_address(&new, "0xabc", 12);
        allocation.strategy = crate::invoice::MatchStrategy::UniqueAmount;
        let mut invoice = crate::invoice::Invoice::open("inv-1".into(), &new, &allocation, 0);
        invoice.status = InvoiceStatus::Paid;
        invoice.outcome = Outcome {
            overpaid: true,
            ..Outcome::default()
        };
        invoice.amount_paid = Amount::from(1_500_000u64);
        let event = WebhookEvent {
            id: 7,
            kind: WebhookEventKind::StatusChanged,
            name: "invoice.paid".into(),
            plugin: "p".into(),
            merchant_id: "m-1".into(),
            invoice_id: Some("inv-1".into()),
            invoice,
            previous_status: Some(InvoiceStatus::Confirming),
            occurred_at: 5,
            url: "https://merchant.example/cb".into(),
        };
        let e = event_to_wit(&event, "https://pay.example");
        assert_eq!(e.id, "7");
        assert_eq!(e.previous_status, Some(wit::InvoiceStatus::Confirming));
        let i = e.invoice;
        assert_eq!(i.status, wit::InvoiceStatus::Paid);
        assert!(i.overpaid && !i.underpaid);
        assert_eq!(
            (i.amount_due.as_str(), i.amount_paid.as_str()),
            ("1000000", "1500000")
        );
        assert_eq!(i.matching, MatchKind::UniqueAmount);
        assert_eq!(i.payment_page_url, "https://pay.example/pay/inv-1");
        assert_eq!(i.plugin_data, r#"{"k":1}"#);
        assert_eq!(i.confirmations, 12);
    }

    #[test]
    fn rendered_deliveries_are_checked_before_sending() {
        use super::super::bindings::polypay::plugin::plugin_types::OutgoingRequest;
        let good = WebhookDelivery {
            request: OutgoingRequest {
                method: "post".into(),
                url: "https://merchant.example/cb".into(),
                headers: vec![("x-sig".into(), "abc".into())],
                body: b"{}".to_vec(),
            },
            accept: Acceptance::BodyEquals("ok".into()),
            retry_after_secs: Some(5),
        };
        let rendered = delivery_from_wit(good.clone(), 1024).unwrap();
        assert_eq!(rendered.method, "POST");
        assert_eq!(
            rendered.retry,
            RetryAdvice::After(std::time::Duration::from_secs(5))
        );
        let mut bad = good.clone();
        bad.request.url = "file:///etc/passwd".into();
        assert_eq!(delivery_from_wit(bad, 1024), Err(BadDelivery::Scheme));
        let mut bad = good.clone();
        bad.request.headers = vec![("bad header".into(), "x".into())];
        assert_eq!(
            delivery_from_wit(bad, 1024),
            Err(BadDelivery::Header("bad header".into()))
        );
        let mut bad = good.clone();
        bad.request.method = "connect".into();
        assert_eq!(
            delivery_from_wit(bad, 1024)
                .map(drop)
                .unwrap_err()
                .to_string(),
            "the plugin rendered method `CONNECT`"
        );
        assert_eq!(
            delivery_from_wit(good, 1),
            Err(BadDelivery::BodyTooLarge { max_body: 1 }),
            "body over the cap"
        );
    }
}
