//! Test program `test-compat-v0-1`: a plugin generated with `wit-bindgen` straight from
//! the released `plugin-sdk/wit/0.1.0`, not through the SDK, so it stays a
//! `polypay:plugin@0.1.0` component forever. The host must keep loading and serving it
//! (README, "Plugin contract versions"); `host/tests/plugin_compat.rs` drives it.
//!
//! Routes (all under `/compat`): `POST /compat/merchants` self-registers a merchant and
//! issues it a bearer token; `POST /compat/invoices` creates an invoice in base units
//! (bearer-authenticated); `GET /compat/invoices/{id}` reads one; `GET /compat/stats`
//! reads the merchant's webhook delivery statistics; `GET /compat/hello` echoes the
//! request and the plugin's name and settings. `render-webhook` signs a JSON callback
//! with the merchant's bearer credential by handle.

wit_bindgen::generate!({
    path: "../../../plugin-sdk/wit/0.1.0",
    world: "plugin",
});

use polypay::plugin::plugin_types::{Acceptance, OutgoingRequest, Route};
use polypay::plugin::types::HostError;
use polypay::plugin::{context, crypto, invoices, merchants, webhooks};
use serde_json::{Value, json};

struct Compat;

export!(Compat);

fn respond(status: u16, body: &Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

fn host_error(e: HostError) -> HttpResponse {
    let (status, kind) = match &e {
        HostError::NotFound => (404, "not-found"),
        HostError::Invalid(_) => (400, "invalid"),
        HostError::Conflict(_) => (409, "conflict"),
        HostError::Unauthorized => (401, "unauthorized"),
        HostError::Forbidden => (403, "forbidden"),
        HostError::RateLimited(_) => (429, "rate-limited"),
        HostError::Unavailable(_) => (503, "unavailable"),
        HostError::Unsupported(_) => (422, "unsupported"),
    };
    respond(
        status,
        &json!({ "error": kind, "detail": format!("{e:?}") }),
    )
}

fn status_name(s: invoices::InvoiceStatus) -> &'static str {
    match s {
        invoices::InvoiceStatus::Pending => "pending",
        invoices::InvoiceStatus::Confirming => "confirming",
        invoices::InvoiceStatus::Paid => "paid",
        invoices::InvoiceStatus::Expired => "expired",
        invoices::InvoiceStatus::Cancelled => "cancelled",
    }
}

fn invoice_json(i: &invoices::Invoice) -> Value {
    json!({
        "id": i.id, "merchant_id": i.merchant_id, "order_id": i.merchant_order_id,
        "status": status_name(i.status), "chain": i.chain, "asset": i.asset,
        "decimals": i.decimals, "amount_due": i.amount_due, "amount_paid": i.amount_paid,
        "pay_to": i.pay_to, "notify_url": i.notify_url, "webhook_attempts": i.webhook.attempts,
    })
}

fn authenticate(req: &HttpRequest) -> Result<(), HttpResponse> {
    let token = req
        .headers
        .iter()
        .find(|(name, _)| name == "authorization")
        .and_then(|(_, value)| value.strip_prefix("Bearer "))
        .ok_or_else(|| host_error(HostError::Unauthorized))?;
    merchants::authenticate("bearer", token)
        .map(drop)
        .map_err(host_error)
}

fn register(req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let merchant = merchants::create_merchant(&merchants::NewMerchant {
        name: body["name"]
            .as_str()
            .unwrap_or("compat merchant")
            .to_owned(),
        plugin_data: None,
    })
    .map_err(host_error)?;
    let bearer = merchants::issue_credential(
        &merchant.id,
        &merchants::CredentialRequest {
            kind: "bearer".into(),
            public_id: None,
            format: merchants::SecretFormat {
                prefix: "v01_".into(),
                encoding: merchants::SecretEncoding::Hex,
                bytes: 16,
            },
        },
    )
    .map_err(host_error)?;
    Ok(respond(
        201,
        &json!({ "merchant_id": merchant.id, "token": bearer.secret }),
    ))
}

fn create(req: &HttpRequest) -> Result<HttpResponse, HttpResponse> {
    authenticate(req)?;
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let text = |field: &str| body[field].as_str().map(str::to_owned);
    let invoice = invoices::create(&invoices::NewInvoice {
        merchant_order_id: text("order_id"),
        price: invoices::Price::BaseUnits(text("amount").unwrap_or_default()),
        chain: text("chain").unwrap_or_default(),
        asset: text("asset").unwrap_or_default(),
        matching: invoices::MatchStrategy::FixedAddress(text("pay_to").unwrap_or_default()),
        expires_in_secs: 3600,
        notify_url: text("notify_url"),
        return_url: None,
        plugin_data: None,
    })
    .map_err(host_error)?;
    Ok(respond(201, &invoice_json(&invoice)))
}

fn handle(req: HttpRequest) -> Result<HttpResponse, HttpResponse> {
    let id = req
        .params
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone());
    match (req.method.as_str(), req.route.as_str()) {
        ("GET", "/compat/hello") => Ok(respond(
            200,
            &json!({
                "plugin": context::plugin_name(),
                "settings": serde_json::from_str::<Value>(&context::settings()).ok(),
                "path": req.path, "query": req.query, "body": String::from_utf8_lossy(&req.body),
            }),
        )),
        ("POST", "/compat/merchants") => register(&req),
        ("POST", "/compat/invoices") => create(&req),
        ("GET", "/compat/invoices/{id}") => {
            let invoice = invoices::get(&id.unwrap_or_default()).map_err(host_error)?;
            Ok(respond(200, &invoice_json(&invoice)))
        }
        ("GET", "/compat/stats") => {
            authenticate(&req)?;
            let s = webhooks::stats(30).map_err(host_error)?;
            Ok(respond(
                200,
                &json!({ "days": s.days, "total": s.total, "delivered": s.delivered,
                         "failed": s.failed, "pending": s.pending }),
            ))
        }
        _ => Ok(respond(404, &json!({ "error": "no route" }))),
    }
}

impl Guest for Compat {
    fn manifest() -> Manifest {
        let route = |methods: &[&str], path: &str| Route {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path.into(),
        };
        Manifest {
            name: "test-compat-v0-1".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            routes: vec![
                route(&["GET"], "/compat/hello"),
                route(&["POST"], "/compat/merchants"),
                route(&["POST"], "/compat/invoices"),
                route(&["GET"], "/compat/invoices/{id}"),
                route(&["GET"], "/compat/stats"),
            ],
            settings_schema: None,
            credentials: Vec::new(),
        }
    }

    fn handle(request: HttpRequest) -> HttpResponse {
        handle(request).unwrap_or_else(|error| error)
    }

    fn render_webhook(event: InvoiceEvent, attempt: u32) -> Option<WebhookDelivery> {
        let body = json!({
            "event_id": event.id,
            "invoice": invoice_json(&event.invoice),
            "previous_status": event.previous_status.map(status_name),
            "attempt": attempt,
        })
        .to_string()
        .into_bytes();
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let bearer = merchants::list_credentials(&event.invoice.merchant_id)
            .ok()
            .and_then(|creds| creds.into_iter().find(|c| c.kind == "bearer"));
        if let Some(credential) = bearer
            && let Ok(mac) = crypto::hmac_sha256_sign(&credential.id, &body)
        {
            let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
            headers.push(("x-compat-signature".to_owned(), hex));
        }
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url: event.url,
                headers,
                body,
            },
            accept: Acceptance::AnySuccess,
            retry_after_secs: Some(30),
        })
    }
}
