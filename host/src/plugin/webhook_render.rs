//! The plugin runtime as the webhook worker's renderer (`crate::webhook::WebhookRenderer`).
//!
//! For each attempt the worker hands over an outbox event with the invoice
//! snapshot taken when it happened (the stored invoice, serialised); this
//! module turns it into the WIT `invoice-event`, asks the owning plugin's
//! `render-webhook` on a fresh instance authenticated as the event's merchant,
//! and checks what comes back before the worker sends anything.

use super::bindings::polypay::plugin::invoices::{
    DeliveryState, Invoice, InvoiceStatus, MatchKind, WebhookSummary,
};
use super::bindings::polypay::plugin::plugin_types::{
    Acceptance, EventKind, InvoiceEvent, WebhookDelivery,
};
use super::{PluginRuntime, RenderFailure};
use crate::webhook::{
    self, RenderedWebhook, RetryAdvice, WebhookEvent, WebhookEventKind, WebhookRenderer,
};
use futures::future::BoxFuture;
use serde_json::Value;

impl WebhookRenderer for PluginRuntime {
    fn render<'a>(
        &'a self,
        event: &'a WebhookEvent,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Option<RenderedWebhook>, webhook::RenderError>> {
        Box::pin(async move {
            let base_url = &self.inner.services.inner.public_base_url;
            let wit_event = event_to_wit(event, base_url).map_err(webhook::RenderError::Failed)?;
            let max_body = self
                .inner
                .index_of(&event.plugin)
                .map(|i| self.inner.plugins[i].config.max_body_bytes)
                .ok_or_else(|| webhook::RenderError::PluginNotMounted(event.plugin.clone()))?;
            match self.render_webhook(&event.plugin, wit_event, attempt).await {
                Ok(None) => Ok(None),
                Ok(Some(delivery)) => delivery_from_wit(delivery, max_body)
                    .map(Some)
                    .map_err(webhook::RenderError::Failed),
                Err(RenderFailure::UnknownPlugin(p)) => {
                    Err(webhook::RenderError::PluginNotMounted(p))
                }
                Err(failure @ RenderFailure::Overloaded { overload, .. }) => {
                    Err(webhook::RenderError::Busy {
                        reason: failure.to_string(),
                        retry_after: overload.retry_after(),
                    })
                }
                Err(failure) => Err(webhook::RenderError::Failed(failure.to_string())),
            }
        })
    }
}

/// Checks a rendered callback and converts it for the worker.
fn delivery_from_wit(d: WebhookDelivery, max_body: usize) -> Result<RenderedWebhook, String> {
    let method = d.request.method.to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(format!("the plugin rendered method `{method}`"));
    }
    if !(d.request.url.starts_with("http://") || d.request.url.starts_with("https://")) {
        return Err("the plugin rendered a non-http(s) URL".into());
    }
    if d.request.body.len() > max_body {
        return Err(format!("the rendered body exceeds the {max_body}-byte cap"));
    }
    for (name, value) in &d.request.headers {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || axum::http::HeaderValue::from_str(value).is_err()
        {
            return Err(format!("the plugin rendered an invalid header `{name}`"));
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

fn status(text: &str) -> Result<InvoiceStatus, String> {
    Ok(match text {
        "pending" => InvoiceStatus::Pending,
        "confirming" => InvoiceStatus::Confirming,
        "paid" => InvoiceStatus::Paid,
        "expired" => InvoiceStatus::Expired,
        "cancelled" => InvoiceStatus::Cancelled,
        other => return Err(format!("unknown invoice status `{other}`")),
    })
}

fn status_of(s: crate::invoice::InvoiceStatus) -> InvoiceStatus {
    super::capabilities::status_to_wit(s)
}

/// The WIT event for an outbox event; the invoice comes from the event's snapshot.
pub(crate) fn event_to_wit(event: &WebhookEvent, base_url: &str) -> Result<InvoiceEvent, String> {
    Ok(InvoiceEvent {
        id: event.id.to_string(),
        kind: match event.kind {
            WebhookEventKind::StatusChanged => EventKind::StatusChanged,
            WebhookEventKind::Test => EventKind::Test,
        },
        invoice: invoice_from_snapshot(&event.invoice, base_url)?,
        previous_status: event.previous_status.map(status_of),
        occurred_at: event.occurred_at,
        url: event.url.clone(),
    })
}

/// Reads a serialised `store::invoices::Invoice`.
fn invoice_from_snapshot(v: &Value, base_url: &str) -> Result<Invoice, String> {
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(format!("invoice snapshot lacks `{k}`"))
    };
    let opt_text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let int = |k: &str| {
        v.get(k)
            .and_then(Value::as_i64)
            .ok_or(format!("invoice snapshot lacks `{k}`"))
    };
    let opt_int = |k: &str| v.get(k).and_then(Value::as_i64);
    let flag = |k: &str| {
        v.get("outcome")
            .and_then(|o| o.get(k))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let id = text("id")?;
    let status = status(&text("status")?)?;
    let required = u32::try_from(int("confirmations_required")?).map_err(|e| e.to_string())?;
    Ok(Invoice {
        payment_page_url: format!("{base_url}/pay/{id}"),
        id,
        merchant_id: text("merchant_id")?,
        merchant_order_id: opt_text("merchant_order_id"),
        status,
        underpaid: flag("underpaid"),
        overpaid: flag("overpaid"),
        paid_late: flag("paid_late"),
        submitted_at: opt_int("submitted_at"),
        chain: text("chain")?,
        asset: text("asset")?,
        decimals: u8::try_from(int("decimals")?).map_err(|e| e.to_string())?,
        amount_due: text("amount_due")?,
        amount_paid: text("amount_paid")?,
        fiat: None,
        matching: match text("strategy")?.as_str() {
            "contract-reference" => MatchKind::ContractReference,
            "unique-amount" => MatchKind::UniqueAmount,
            "derived-address" => MatchKind::DerivedAddress,
            "fixed-address" => MatchKind::FixedAddress,
            other => return Err(format!("unknown strategy `{other}`")),
        },
        pay_to: text("pay_address")?,
        payment_reference: opt_text("pay_reference"),
        txn_hash: opt_text("txn_hash"),
        confirmations: if status == InvoiceStatus::Paid {
            required
        } else {
            0
        },
        required_confirmations: required,
        created_at: int("created_at")?,
        expires_at: int("expires_at")?,
        paid_at: opt_int("paid_at"),
        updated_at: int("updated_at")?,
        notify_url: opt_text("notify_url"),
        return_url: opt_text("return_url"),
        plugin_data: v
            .get("plugin_data")
            .map_or_else(|| "{}".to_owned(), Value::to_string),
        webhook: WebhookSummary {
            state: DeliveryState::Pending,
            attempts: 0,
            last_attempt_at: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoice::{Amount, MatchStrategy, Outcome};
    use crate::store::invoices::Invoice as Stored;

    fn stored() -> Stored {
        Stored {
            id: "inv-1".into(),
            merchant_id: "m-1".into(),
            plugin: "p".into(),
            merchant_order_id: Some("o-1".into()),
            status: crate::invoice::InvoiceStatus::Paid,
            outcome: Outcome {
                underpaid: false,
                overpaid: true,
                paid_late: false,
            },
            chain: "ethereum".into(),
            asset: "USDT".into(),
            decimals: 6,
            amount_due: Amount::from(1_000_000u64),
            amount_paid: Amount::from(1_500_000u64),
            amount_confirmed: Amount::from(1_500_000u64),
            tolerance: Amount::ZERO,
            confirmations_required: 12,
            strategy: MatchStrategy::UniqueAmount,
            pay_address: "0xabc".into(),
            pay_reference: None,
            txn_hash: Some("0xdead".into()),
            notify_url: Some("https://merchant.example/cb".into()),
            return_url: None,
            plugin_data: serde_json::json!({ "k": 1 }),
            expires_at: 2,
            monitor_until: 3,
            first_paid_at: Some(1),
            paid_at: Some(1),
            submitted_at: None,
            cancelled_at: None,
            created_at: 0,
            updated_at: 1,
            version: 3,
        }
    }

    #[test]
    fn invoice_snapshot_of_an_outbox_event_converts_to_the_wit_invoice() {
        let v = serde_json::to_value(stored()).unwrap();
        let i = invoice_from_snapshot(&v, "https://pay.example").unwrap();
        assert_eq!(i.status, InvoiceStatus::Paid);
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
        assert!(delivery_from_wit(bad, 1024).is_err());
        let mut bad = good.clone();
        bad.request.headers = vec![("bad header".into(), "x".into())];
        assert!(delivery_from_wit(bad, 1024).is_err());
        assert!(delivery_from_wit(good, 1).is_err(), "body over the cap");
    }
}
