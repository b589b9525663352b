//! `{{name}}`: a polypay API dialect plugin.
//!
//! - `POST /v1/invoices` with `Authorization: Bearer <api key>` (the key
//!   `polypay merchant create --plugin {{name}}` prints) and a JSON body
//!   `{"order_id", "amount", "chain", "asset", "notify_url"?}`: creates an invoice paid to
//!   the operator's `receiving_address` (a plugin setting) and answers
//!   `{"id", "status", "pay_to", "amount", "checkout_url"}`.
//! - Each status change is sent to the invoice's `notify_url`: `POST {"id", "order_id",
//!   "status"}` with `X-Signature: <hex HMAC-SHA256(body)>` keyed with the merchant's API
//!   key. Any 2xx accepts it; otherwise the host retries on its schedule.

use polypay_plugin_sdk::prelude::*;
use serde::Deserialize;
use serde_json::json;

/// The credential merchants authenticate with: the host's default, one API key.
pub const KEY_KIND: &str = "api-key";

pub struct {{type_name}};

impl Plugin for {{type_name}} {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new().post("/v1/invoices", create_invoice)
    }

    fn openapi() -> Option<&'static str> {
        Some(include_str!("../openapi.json"))
    }

    fn settings_schema() -> Option<serde_json::Value> {
        Some(json!({
            "type": "object",
            "required": ["receiving_address"],
            "properties": { "receiving_address": { "type": "string" } }
        }))
    }

    fn render_webhook(event: &InvoiceEvent, _attempt: u32) -> Option<WebhookDelivery> {
        let invoice = &event.invoice;
        let body = serde_json::to_vec(&json!({
            "id": invoice.id,
            "order_id": invoice.merchant_order_id,
            "status": status_name(invoice.status),
        }))
        .ok()?;
        // The secret never enters the plugin: the host signs with it by credential id.
        let key = merchants::list_credentials(&invoice.merchant_id)
            .ok()?
            .into_iter()
            .find(|c| c.kind == KEY_KIND)?;
        let signature = crypto::hmac_sha256_sign(&key.id, &body).ok()?;
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url: event.url.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("x-signature".into(), polypay_plugin_sdk::hex(&signature)),
                ],
                body,
            },
            accept: Acceptance::AnySuccess,
            retry_after_secs: Some(0),
        })
    }
}

polypay_plugin_sdk::export_plugin!({{type_name}});

#[derive(Deserialize)]
struct NewOrder {
    order_id: String,
    amount: String,
    chain: String,
    asset: String,
    notify_url: Option<String>,
}

#[derive(Deserialize)]
struct Settings {
    receiving_address: String,
}

fn create_invoice(req: &Request) -> Result<Response, Response> {
    let key = req
        .bearer_token()
        .ok_or_else(|| error(401, "missing Authorization: Bearer <api key>"))?;
    merchants::authenticate(KEY_KIND, key).map_err(|_| error(401, "unknown API key"))?;
    let order: NewOrder = req.json().map_err(|e| error(400, &e.to_string()))?;
    let settings: Settings = context::settings().map_err(|e| error(500, &e.to_string()))?;
    let invoice = invoices::create(&NewInvoice {
        merchant_order_id: Some(order.order_id),
        price: Price::decimal(order.amount),
        chain: order.chain,
        asset: order.asset,
        matching: MatchStrategy::UniqueAmount(settings.receiving_address),
        expires_in_secs: 3600,
        notify_url: order.notify_url,
        return_url: None,
        plugin_data: None,
    })
    .map_err(|e| match e {
        HostError::Invalid(why) => error(400, &why),
        HostError::Conflict(_) => error(409, "duplicate order_id"),
        other => error(500, &other.to_string()),
    })?;
    Ok(Response::json(
        200,
        &json!({
            "id": invoice.id,
            "status": status_name(invoice.status),
            "pay_to": invoice.pay_to,
            "amount": invoice.amount_due_decimal,
            "checkout_url": invoice.payment_page_url,
        }),
    ))
}

/// This dialect's name of a host status.
pub fn status_name(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Pending => "waiting",
        InvoiceStatus::Confirming => "confirming",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Expired => "expired",
        InvoiceStatus::Cancelled => "cancelled",
    }
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}
