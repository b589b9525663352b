//! Callbacks: rendering (body, signature, webhook id, retry schedule), test deliveries
//! and delivery statistics.

use crate::envelope::{self, ok, rfc3339};
use crate::merchant::{Profile, percent};
use crate::payment::{amount_as_sent, status_name};
use crate::{Body, SECRET_KIND, Settings};
use polypay_plugin_sdk::prelude::*;
use polypay_plugin_sdk::webhooks::EventKind;
use serde_json::{Value, json};

pub const SIGNATURE_HEADER: &str = "X-WoPay-Signature";
pub const WEBHOOK_ID_HEADER: &str = "X-WoPay-Webhook-Id";
/// The event type of status-change callbacks.
pub const STATUS_CHANGED: &str = "payment_status_changed";
/// How long a test delivery's requested `event_type` and `test_data` are kept.
const TEST_EVENT_TTL_SECS: u32 = 7 * 86_400;
/// Largest `test_data`, serialized.
const MAX_TEST_DATA: usize = 16 * 1024;

/// The webhook id of host event `event_id` of `merchant_id`: a UUID (version 5 layout)
/// made from a SHA-256 of both, so every retry of one event carries the same id and no
/// two events (of any merchant, on any server) share one.
pub fn webhook_id(merchant_id: &str, event_id: &str) -> String {
    let digest = crypto::digest(
        crypto::DigestAlgorithm::Sha256,
        format!("wopay-webhook\0{merchant_id}\0{event_id}").as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = polypay_plugin_sdk::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn test_event_key(event_id: &str) -> String {
    format!("test-event:{event_id}")
}

/// The callback of one event, rendered afresh for each attempt (so a retry after
/// `regenerate-keys` is signed with the new secret).
pub fn render(event: &InvoiceEvent, attempt: u32) -> Option<WebhookDelivery> {
    let settings = crate::settings().ok()?;
    let invoice = &event.invoice;
    // Only a change of status is called back: not the creation (the merchant has the
    // answer of its create call) nor an amount recorded without a status change.
    if event.kind == EventKind::StatusChanged
        && event.previous_status.is_none_or(|p| p == invoice.status)
    {
        return None;
    }
    let merchant_id = merchants::current()
        .map(|m| m.id)
        .unwrap_or_else(|| invoice.merchant_id.clone());
    let body = match event.kind {
        EventKind::StatusChanged => json!({
            "event_type": STATUS_CHANGED,
            "timestamp": rfc3339(event.occurred_at),
            "data": {
                "payment_id": invoice.id,
                "order_id": invoice.merchant_order_id,
                "status": status_name(invoice.status),
                "amount": amount_as_sent(invoice),
                "currency": invoice.asset,
                "transaction_hash": invoice.txn_hash,
                "confirmations": invoice.confirmations,
            },
        }),
        EventKind::Test => {
            let asked: Value = kv::get(&test_event_key(&event.id))
                .ok()
                .flatten()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or(Value::Null);
            json!({
                "event_type": asked["event_type"].as_str().unwrap_or("test"),
                "timestamp": rfc3339(event.occurred_at),
                "data": asked.get("test_data").cloned().unwrap_or_else(|| json!({})),
                "test": true,
            })
        }
    };
    let body = serde_json::to_vec(&body).ok()?;
    let signature = match sign(&merchant_id, &body) {
        Ok(signature) => signature,
        Err(e) => {
            log::log(
                log::Level::Error,
                "cannot sign the callback; it is not sent",
                &[
                    ("event".into(), event.id.clone()),
                    ("error".into(), e.to_string()),
                ],
            );
            return None;
        }
    };
    let retry_after_secs = settings
        .retry_delays_secs
        .get(attempt.saturating_sub(1) as usize)
        .copied()
        .map(|s| s.max(1));
    Some(WebhookDelivery {
        request: OutgoingRequest {
            method: "POST".into(),
            url: event.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (SIGNATURE_HEADER.into(), signature),
                (
                    WEBHOOK_ID_HEADER.into(),
                    webhook_id(&merchant_id, &event.id),
                ),
            ],
            body,
        },
        accept: Acceptance::AnySuccess,
        retry_after_secs,
    })
}

/// `sha256=<hex HMAC-SHA256(body)>` keyed with the merchant's current `api_secret`,
/// computed by the host from the credential id.
fn sign(merchant_id: &str, body: &[u8]) -> Result<String, HostError> {
    let secret = merchants::list_credentials(merchant_id)?
        .into_iter()
        .filter(|c| c.kind == SECRET_KIND)
        .max_by_key(|c| c.created_at)
        .ok_or(HostError::NotFound)?;
    let mac = crypto::hmac_sha256_sign(&secret.id, body)?;
    Ok(format!("sha256={}", polypay_plugin_sdk::hex(&mac)))
}

/// The merchant of the request's key, within the webhook endpoints' own rate limit.
fn authenticate(req: &Request, settings: &Settings) -> Result<merchants::Merchant, Response> {
    let merchant = crate::authenticate(req, settings)?;
    crate::limit(
        &format!("webhooks:{}", merchant.id),
        settings.webhook_requests_per_second,
        1000,
    )?;
    Ok(merchant)
}

/// `POST /api/v1/webhooks/test`: a test callback to the merchant's `webhook_url`,
/// through the same outbox, signature and retries as payment callbacks.
pub fn test(req: &Request, settings: &Settings) -> Result<Response, Response> {
    let merchant = authenticate(req, settings)?;
    let body = Body::parse_optional(req)?;
    let event_type = body.string("event_type")?.unwrap_or("test");
    if event_type.is_empty() || event_type.len() > 64 || event_type.chars().any(char::is_control) {
        return Err(envelope::bad_request(
            "event_type must be 1 to 64 printable characters",
        ));
    }
    let test_data = body.value("test_data").cloned();
    if let Some(data) = &test_data
        && (!data.is_object() || data.to_string().len() > MAX_TEST_DATA)
    {
        return Err(envelope::bad_request(&format!(
            "test_data must be a JSON object of at most {MAX_TEST_DATA} bytes"
        )));
    }
    let url = Profile::of(&merchant)
        .webhook_url
        .ok_or_else(|| envelope::bad_request("No webhook_url is configured for this merchant"))?;
    let event_id = webhooks::send_test(&url).map_err(|e| match e {
        HostError::Invalid(why) => envelope::bad_request(&why),
        other => envelope::host_failure("webhooks.send-test", other),
    })?;
    let asked = json!({ "event_type": event_type, "test_data": test_data });
    if let Err(e) = kv::set(
        &test_event_key(&event_id),
        asked.to_string().as_bytes(),
        Some(TEST_EVENT_TTL_SECS),
    ) {
        // The delivery still goes out, as a plain `test` event.
        log::log(
            log::Level::Warn,
            "the test event's type and data were not kept",
            &[("error".into(), e.to_string())],
        );
    }
    Ok(ok(
        200,
        &json!({
            "webhook_id": webhook_id(&merchant.id, &event_id),
            "event_type": event_type,
            "webhook_url": url,
            "status": "queued",
        }),
    ))
}

/// `GET /api/v1/webhooks/stats?days=` (1 to 365, default 30).
pub fn stats(req: &Request, settings: &Settings) -> Result<Response, Response> {
    authenticate(req, settings)?;
    let days = match req.query_param("days") {
        None => 30,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=365).contains(d))
            .ok_or_else(|| envelope::bad_request("days must be an integer from 1 to 365"))?,
    };
    let s = webhooks::stats(days).map_err(|e| match e {
        HostError::Invalid(why) => envelope::bad_request(&why),
        other => envelope::host_failure("webhooks.stats", other),
    })?;
    let average_attempts = s
        .average_attempts()
        .map(|a| (a * 100.0).round() / 100.0)
        .unwrap_or(0.0);
    Ok(ok(
        200,
        &json!({
            "total_webhooks": s.total,
            "successful_webhooks": s.delivered,
            "failed_webhooks": s.failed,
            "pending_webhooks": s.pending,
            "success_rate": percent(s.delivered, s.finished()),
            "average_attempts": average_attempts,
        }),
    ))
}
