//! Callbacks to the org on completion, refund and cancel: a form-urlencoded POST to the
//! order's `notify_url`, signed like a request (`X-ACCESS-KEY`, `timestamp`, `signature`
//! = hex HMAC-SHA256 with the org's `api-key`, computed by the host by handle), afresh at
//! every attempt. Any 2xx answer is accepted; others are retried on the host's schedule.

use std::collections::BTreeMap;

use polypay_plugin_sdk::ledger::{LedgerAction, LedgerEvent, OrderStatus};
use polypay_plugin_sdk::prelude::*;

use crate::{ORG_KEY_KIND, auth, render};

pub fn render(event: &LedgerEvent, _attempt: u32) -> Option<WebhookDelivery> {
    let order = event.order.as_ref()?;
    let url = event.url.clone()?;
    let name = match event.action {
        LedgerAction::OrderPaid | LedgerAction::OrderSettled
            if order.status == OrderStatus::Completed =>
        {
            "COMPLETED"
        }
        LedgerAction::OrderRefunded => "REFUNDED",
        LedgerAction::OrderCancelled => "CANCELLED",
        _ => return None,
    };
    let merchant = order.merchant_id.as_deref()?;
    let credential = merchants::list_credentials(merchant)
        .ok()?
        .into_iter()
        .find(|c| c.kind == ORG_KEY_KIND)?;
    let (code, status_name, status_desc) = render::status_of(order);
    let rendered = render::order(order);
    let mut params = BTreeMap::new();
    params.insert("event".to_string(), name.to_string());
    params.insert("eventId".to_string(), event.id.clone());
    params.insert("orderId".to_string(), order.id.clone());
    params.insert("clientOrderId".to_string(), order.client_order_id.clone());
    params.insert("status".to_string(), status_name.to_string());
    params.insert("statusCode".to_string(), code.to_string());
    params.insert("statusDesc".to_string(), status_desc.to_string());
    params.insert("payInfo".to_string(), rendered["payInfo"].to_string());
    params.insert("timestamp".to_string(), clock::now().to_string());
    let mac =
        crypto::hmac_sha256_sign(&credential.id, auth::signing_text(&params).as_bytes()).ok()?;
    params.insert("signature".to_string(), polypay_plugin_sdk::hex(&mac));
    let body = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    if let Some(public_id) = credential.public_id {
        headers.push(("x-access-key".to_string(), public_id));
    }
    Some(WebhookDelivery {
        request: OutgoingRequest {
            method: "POST".into(),
            url,
            headers,
            body: body.into_bytes(),
        },
        accept: Acceptance::AnySuccess,
        retry_after_secs: Some(0),
    })
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
