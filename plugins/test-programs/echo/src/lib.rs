//! Test plugin `test-echo`: a healthy plugin whose routes each exercise one
//! part of the contract (request echo, settings, clock, sandbox, log, merchants,
//! invoices, credentials, crypto, kv, networks, two-factor, the custodial ledger) so
//! the host's runtime and scoping can be tested end to end. Every route lives under `/echo`.

use polypay_plugin_sdk::invoices::{FiatPrice, Invoice, InvoiceFilter, PageSelector};
use polypay_plugin_sdk::merchants::{CredentialRequest, NewMerchant, SecretEncoding, SecretFormat};
use polypay_plugin_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

pub struct Echo;

impl Plugin for Echo {
    const NAME: &'static str = "test-echo";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    /// Whatever the operator's settings give as `openapi` (a JSON string): lets tests
    /// mount a plugin declaring any document, valid or not.
    fn openapi() -> Option<&'static str> {
        let settings: Value = context::settings().ok()?;
        let document = settings["openapi"].as_str()?.to_owned();
        Some(Box::leak(document.into_boxed_str()))
    }

    fn router() -> Router {
        Router::new()
            .route(&["GET", "POST"], "/echo/request/{*rest}", echo_request)
            .post("/echo/noop", |_: &Request| Response::new(204))
            .get("/echo/residue", residue)
            .get("/echo/settings", |_: &Request| {
                Response::new(200).header("content-type", "application/json").body(context::settings_json().into_bytes())
            })
            .get("/echo/time", |_: &Request| {
                Response::json(200, &json!({ "now": clock::now(), "random": polypay_plugin_sdk::hex(&random::bytes(8)) }))
            })
            .get("/echo/sandbox", sandbox)
            .get("/echo/log", write_logs)
            .post("/echo/merchants", register_merchant)
            .get("/echo/merchants/{id}", get_merchant)
            .get("/echo/credentials", list_credentials)
            .post("/echo/sign/{credential_id}", sign)
            .post("/echo/invoices", create_invoice)
            .get("/echo/invoices", list_invoices)
            .get("/echo/invoices/{id}", get_invoice)
            .post("/echo/invoices/{id}/cancel", cancel_invoice)
            .post("/echo/invoices/{id}/submitted", mark_submitted)
            .post("/echo/invoices/{id}/requote", requote)
            .get("/echo/orders/{order_id}", find_by_order_id)
            .get("/echo/stats", stats)
            .post("/echo/money", money_table)
            .get("/echo/webhook-stats", webhook_stats)
            .post("/echo/webhook-test", webhook_test)
            .put("/echo/kv/{key}", kv_put)
            .get("/echo/kv/{key}", kv_get)
            .post("/echo/2fa/{subject}/enrol", two_factor_enrol)
            .post("/echo/2fa/{subject}/import", two_factor_import)
            .post("/echo/2fa/{subject}/verify-totp", two_factor_verify_totp)
            .post("/echo/2fa/{subject}/send-code", two_factor_send_code)
            .post("/echo/2fa/{subject}/verify-code", two_factor_verify_code)
            .get("/echo/2fa/{subject}/context/{context}", two_factor_context)
            .post("/echo/ledger/users", ledger_create_user)
            .get("/echo/ledger/users/{id}/balances", ledger_balances)
            .get(
                "/echo/ledger/users/{id}/deposit-address/{chain}",
                ledger_deposit_address,
            )
            .post("/echo/ledger/orders", ledger_create_order)
            .get("/echo/ledger/orders/{id}", ledger_get_order)
            .post("/echo/ledger/orders/{id}/pay", ledger_pay)
            .get("/echo/networks", |_: &Request| {
                let names: Vec<String> = chains::networks().into_iter().map(|n| n.name).collect();
                Response::json(200, &json!({ "networks": names }))
            })
    }

    fn render_webhook(event: &InvoiceEvent, attempt: u32) -> Option<WebhookDelivery> {
        let body = json!({
            "invoice_id": event.invoice.id,
            "status": status_name(event.invoice.status),
            "event_id": event.id,
            "attempt": attempt,
        })
        .to_string()
        .into_bytes();
        let headers = signed_headers(Some(&event.invoice.merchant_id), &body);
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url: event.url.clone(),
                headers,
                body,
            },
            accept: Acceptance::ExactlyOk,
            retry_after_secs: (attempt < 3).then_some(attempt * 10),
        })
    }

    /// Ledger callbacks go to the order's notify URL; without one, none is sent. Signed
    /// like invoice callbacks when the order has a merchant.
    fn render_ledger_webhook(event: &ledger::LedgerEvent, attempt: u32) -> Option<WebhookDelivery> {
        let url = event.url.clone()?;
        let order = event.order.as_ref()?;
        let body = json!({
            "order_id": order.id,
            "action": match event.action {
                ledger::LedgerAction::OrderCreated => "order-created",
                ledger::LedgerAction::OrderPaid => "order-paid",
                ledger::LedgerAction::OrderSettled => "order-settled",
                ledger::LedgerAction::OrderUnlocked => "order-unlocked",
                ledger::LedgerAction::OrderRefunded => "order-refunded",
                ledger::LedgerAction::OrderCancelled => "order-cancelled",
                ledger::LedgerAction::OrderExpired => "order-expired",
                ledger::LedgerAction::DepositCredited => "deposit-credited",
                ledger::LedgerAction::DepositReversed => "deposit-reversed",
            },
            "event_id": event.id,
            "attempt": attempt,
            "moved": event.moved.iter().map(|m| m.amount_decimal.clone()).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes();
        let headers = signed_headers(order.merchant_id.as_deref(), &body);
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url,
                headers,
                body,
            },
            accept: Acceptance::ExactlyOk,
            retry_after_secs: Some(10),
        })
    }
}

type Reply = Result<Response, Response>;

/// JSON callback headers, signed with the merchant's bearer token by handle (the secret
/// stays in the host) when there is a merchant with one.
fn signed_headers(merchant_id: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    let bearer = merchant_id
        .and_then(|m| merchants::list_credentials(m).ok())
        .and_then(|creds| creds.into_iter().find(|c| c.kind == "bearer"));
    if let Some(credential) = bearer
        && let Ok(mac) = crypto::hmac_sha256_sign(&credential.id, body)
    {
        let signature = format!("sha256={}", polypay_plugin_sdk::hex(&mac));
        headers.push(("x-echo-signature".to_owned(), signature));
    }
    headers
}

fn host_error(e: HostError) -> Response {
    let body = host_error_json(&e);
    let status = match &e {
        HostError::NotFound => 404,
        HostError::Invalid(_) => 400,
        HostError::Conflict(_) => 409,
        HostError::Unauthorized => 401,
        HostError::Forbidden => 403,
        HostError::RateLimited(_) => 429,
        HostError::Unavailable(_) => 503,
        HostError::Unsupported(_) => 422,
    };
    Response::json(status, &body)
}

fn host_error_json(e: &HostError) -> Value {
    let kind = match e {
        HostError::NotFound => "not-found",
        HostError::Invalid(_) => "invalid",
        HostError::Conflict(_) => "conflict",
        HostError::Unauthorized => "unauthorized",
        HostError::Forbidden => "forbidden",
        HostError::RateLimited(_) => "rate-limited",
        HostError::Unavailable(_) => "unavailable",
        HostError::Unsupported(_) => "unsupported",
    };
    json!({ "error": kind, "detail": format!("{e:?}") })
}

fn bad_request(why: impl std::fmt::Display) -> Response {
    Response::json(
        400,
        &json!({ "error": "invalid", "detail": why.to_string() }),
    )
}

/// Authenticates by `Authorization: Bearer` when the header is present.
fn authenticate_if_presented(req: &Request) -> Result<(), Response> {
    match req.bearer_token() {
        Some(token) => merchants::authenticate("bearer", token)
            .map(|_| ())
            .map_err(host_error),
        None => Ok(()),
    }
}

fn echo_request(req: &Request) -> Response {
    Response::json(
        200,
        &json!({
            "method": req.method,
            "route": req.route,
            "params": req.params,
            "path": req.path,
            "query": req.query,
            "headers": req.headers,
            "body": String::from_utf8_lossy(&req.body),
            "client_ip": req.client_ip,
            "request_id": req.request_id,
        }),
    )
}

/// Calls this instance has served so far (a global of the guest).
static CALLS: AtomicU32 = AtomicU32::new(0);

/// A static buffer (linear memory) marked by every call: one byte per 4 KiB page, so
/// every page of it is written.
static SCRATCH: [AtomicU8; 256 * 1024] = [const { AtomicU8::new(0) }; 256 * 1024];

/// What a previous call left behind in this instance's global and linear memory, then
/// leaves its own marks. `?times=N` probes N times in this
/// instance, so a caller can check the probe does see what survives.
fn residue(req: &Request) -> Response {
    let times: usize = req
        .query_param("times")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let mut seen = Vec::new();
    for _ in 0..times.clamp(1, 8) {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst);
        let marked = SCRATCH
            .iter()
            .step_by(4096)
            .filter(|b| b.swap(0xA5, Ordering::SeqCst) != 0)
            .count();
        seen.push(json!({ "calls": calls, "marked_pages": marked }));
    }
    Response::json(200, &seen)
}

fn sandbox(_: &Request) -> Response {
    Response::json(
        200,
        &json!({
            "env_vars": std::env::vars().count(),
            "args": std::env::args().count(),
            "read_root_dir": std::fs::read_dir("/").is_ok(),
            "read_passwd": std::fs::read("/etc/passwd").is_ok(),
            "cwd": std::env::current_dir().ok().map(|p| p.display().to_string()),
        }),
    )
}

fn write_logs(req: &Request) -> Response {
    println!("echo stdout line {}", req.request_id);
    eprintln!("echo stderr line {}", req.request_id);
    log::log(
        log::Level::Info,
        "echo structured line",
        &[("request".into(), req.request_id.clone())],
    );
    Response::new(204)
}

#[derive(Deserialize)]
struct Registration {
    name: String,
    #[serde(default)]
    profile: Option<Value>,
}

fn register_merchant(req: &Request) -> Reply {
    let reg: Registration = req.json().map_err(bad_request)?;
    let merchant = merchants::create_merchant(&NewMerchant {
        name: reg.name,
        plugin_data: reg.profile.map(|p| p.to_string()),
    })
    .map_err(host_error)?;
    let bearer = merchants::issue_credential(
        &merchant.id,
        &CredentialRequest {
            kind: "bearer".into(),
            public_id: None,
            format: SecretFormat {
                prefix: String::new(),
                encoding: SecretEncoding::UuidV4,
                bytes: 0,
            },
        },
    )
    .map_err(host_error)?;
    let signing = merchants::issue_credential(
        &merchant.id,
        &CredentialRequest {
            kind: "signing".into(),
            public_id: Some(format!("app-{}", random::alphanumeric(12))),
            format: SecretFormat {
                prefix: "sk_".into(),
                encoding: SecretEncoding::Hex,
                bytes: 32,
            },
        },
    )
    .map_err(host_error)?;
    Ok(Response::json(
        201,
        &json!({
            "merchant_id": merchant.id,
            "token": bearer.secret,
            "bearer_credential_id": bearer.credential.id,
            "signing_credential_id": signing.credential.id,
            "signing_public_id": signing.credential.public_id,
            "signing_secret": signing.secret,
        }),
    ))
}

fn get_merchant(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let m = merchants::get_merchant(req.param("id").unwrap_or_default()).map_err(host_error)?;
    Ok(Response::json(
        200,
        &json!({ "id": m.id, "name": m.name, "profile": serde_json::from_str::<Value>(&m.plugin_data).ok() }),
    ))
}

fn list_credentials(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let me = merchants::current().ok_or_else(|| host_error(HostError::Unauthorized))?;
    let creds = merchants::list_credentials(&me.id).map_err(host_error)?;
    let out: Vec<Value> = creds
        .into_iter()
        .map(|c| json!({ "id": c.id, "kind": c.kind, "public_id": c.public_id, "merchant_id": c.merchant_id }))
        .collect();
    Ok(Response::json(200, &out))
}

fn sign(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let mac = crypto::hmac_sha256_sign(req.param("credential_id").unwrap_or_default(), &req.body)
        .map_err(host_error)?;
    Ok(Response::json(
        200,
        &json!({ "mac": polypay_plugin_sdk::hex(&mac) }),
    ))
}

#[derive(Deserialize)]
struct CreateInvoice {
    /// Base units; ignored when `decimal` is given.
    #[serde(default)]
    amount: String,
    /// The price in the asset's own units (`price.decimal`).
    #[serde(default)]
    decimal: Option<String>,
    /// A fiat price (`price.fiat`): `{"amount": "20.00", "currency": "USD"}`; wins over
    /// `decimal` and `amount`.
    #[serde(default)]
    fiat: Option<Value>,
    chain: String,
    asset: String,
    order_id: Option<String>,
    /// Paid to this address; without it, to the settings' `receiving_address`
    /// with a unique amount.
    #[serde(default)]
    fixed_address: Option<String>,
    #[serde(default)]
    expires_in_secs: Option<u32>,
    #[serde(default)]
    notify_url: Option<String>,
    /// When set, the invoice is created with `invoices.create-idempotent`.
    #[serde(default)]
    idempotency_key: Option<String>,
}

fn create_invoice(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let body: CreateInvoice = req.json().map_err(bad_request)?;
    let matching = match body.fixed_address {
        Some(address) => MatchStrategy::FixedAddress(address),
        None => {
            let settings: Value = context::settings().map_err(bad_request)?;
            let address = settings["receiving_address"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            MatchStrategy::UniqueAmount(address)
        }
    };
    let new = NewInvoice {
        merchant_order_id: body.order_id,
        price: match (body.fiat, body.decimal) {
            (Some(fiat), _) => Price::Fiat(FiatPrice {
                amount: fiat["amount"].as_str().unwrap_or_default().to_owned(),
                currency: fiat["currency"].as_str().unwrap_or_default().to_owned(),
            }),
            (None, Some(decimal)) => Price::decimal(decimal),
            (None, None) => Price::base_units(body.amount),
        },
        chain: body.chain,
        asset: body.asset,
        matching,
        expires_in_secs: body.expires_in_secs.unwrap_or(900),
        notify_url: body.notify_url,
        return_url: None,
        plugin_data: Some(json!({ "created_by": "test-echo" }).to_string()),
    };
    let invoice = match &body.idempotency_key {
        Some(key) => invoices::create_idempotent(&new, key),
        None => invoices::create(&new),
    }
    .map_err(host_error)?;
    Ok(Response::json(201, &invoice_json(&invoice)))
}

fn get_invoice(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let invoice = invoices::get(req.param("id").unwrap_or_default()).map_err(host_error)?;
    Ok(Response::json(200, &invoice_json(&invoice)))
}

fn find_by_order_id(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let invoice = invoices::find_by_order_id(req.param("order_id").unwrap_or_default())
        .map_err(host_error)?;
    Ok(Response::json(200, &invoice_json(&invoice)))
}

fn cancel_invoice(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let invoice = invoices::cancel(req.param("id").unwrap_or_default()).map_err(host_error)?;
    Ok(Response::json(200, &invoice_json(&invoice)))
}

fn requote(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let invoice = invoices::requote(req.param("id").unwrap_or_default()).map_err(host_error)?;
    Ok(Response::json(200, &invoice_json(&invoice)))
}

fn mark_submitted(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let invoice =
        invoices::mark_submitted(req.param("id").unwrap_or_default()).map_err(host_error)?;
    Ok(Response::json(200, &invoice_json(&invoice)))
}

fn list_invoices(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let page = match (req.query_param("page"), req.query_param("after")) {
        (Some(n), _) => PageSelector::Number(n.parse().map_err(bad_request)?),
        (None, Some(id)) => PageSelector::After(id),
        (None, None) => PageSelector::First,
    };
    let limit = req
        .query_param("limit")
        .map(|l| l.parse())
        .transpose()
        .map_err(bad_request)?
        .unwrap_or(20);
    let filter = InvoiceFilter {
        asset: req.query_param("asset"),
        ..invoices::any()
    };
    let page = invoices::list(&filter, &page, limit).map_err(host_error)?;
    Ok(Response::json(
        200,
        &json!({
            "items": page.items.iter().map(invoice_json).collect::<Vec<_>>(),
            "total": page.total,
            "pages": page.pages,
            "next": page.next_cursor,
        }),
    ))
}

fn stats(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let s = invoices::stats(&invoices::any()).map_err(host_error)?;
    Ok(Response::json(
        200,
        &json!({ "total": s.total, "pending": s.pending, "cancelled": s.cancelled }),
    ))
}

/// One `money` conversion per item of the JSON list: `{chain, asset, decimal}` →
/// `to-base-units`, `{chain, asset, base_units}` → `to-decimal`. Each answer is
/// `{"ok": value}` or `{"error": kind, "detail": debug text}`.
fn money_table(req: &Request) -> Reply {
    let items: Vec<Value> = req.json().map_err(bad_request)?;
    let answers: Vec<Value> = items
        .iter()
        .map(|item| {
            let text = |k: &str| item[k].as_str().unwrap_or_default();
            let converted = match item.get("decimal") {
                Some(_) => money::to_base_units(text("chain"), text("asset"), text("decimal")),
                None => money::to_decimal(text("chain"), text("asset"), text("base_units")),
            };
            match converted {
                Ok(value) => json!({ "ok": value }),
                Err(e) => host_error_json(&e),
            }
        })
        .collect();
    Ok(Response::json(200, &answers))
}

fn webhook_stats(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let days = req
        .query_param("days")
        .map(|d| d.parse())
        .transpose()
        .map_err(bad_request)?
        .unwrap_or(7);
    let s = webhooks::stats(days).map_err(host_error)?;
    Ok(Response::json(
        200,
        &json!({
            "days": s.days, "total": s.total, "delivered": s.delivered, "failed": s.failed,
            "pending": s.pending, "attempts": s.attempts, "finished_attempts": s.finished_attempts,
            "success_rate": s.success_rate(), "average_attempts": s.average_attempts(),
        }),
    ))
}

fn webhook_test(req: &Request) -> Reply {
    authenticate_if_presented(req)?;
    let url = String::from_utf8_lossy(&req.body).into_owned();
    let id = webhooks::send_test(&url).map_err(host_error)?;
    Ok(Response::json(202, &json!({ "event_id": id })))
}

fn kv_put(req: &Request) -> Reply {
    kv::set(req.param("key").unwrap_or_default(), &req.body, None).map_err(host_error)?;
    Ok(Response::new(204))
}

fn kv_get(req: &Request) -> Reply {
    match kv::get(req.param("key").unwrap_or_default()).map_err(host_error)? {
        Some(value) => Ok(Response::new(200).body(value)),
        None => Err(host_error(HostError::NotFound)),
    }
}

/// The JSON body of a two-factor route: `{context, code, challenge_id, channel,
/// destination, secret}` as the route needs.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TwoFactorBody {
    context: String,
    code: String,
    challenge_id: String,
    channel: String,
    destination: String,
    secret: String,
}

fn two_factor_body(req: &Request) -> Result<TwoFactorBody, Response> {
    if req.body.is_empty() {
        return Ok(TwoFactorBody::default());
    }
    serde_json::from_slice(&req.body).map_err(bad_request)
}

fn verification_json(v: two_factor::Verification) -> Value {
    match v {
        two_factor::Verification::Accepted => json!({ "verdict": "accepted" }),
        two_factor::Verification::Rejected(remaining) => {
            json!({ "verdict": "rejected", "remaining": remaining })
        }
        two_factor::Verification::Exhausted => json!({ "verdict": "exhausted" }),
    }
}

fn two_factor_enrol(req: &Request) -> Reply {
    let subject = req.param("subject").unwrap_or_default();
    let uri = two_factor::enrol_totp(subject, "Echo", subject).map_err(host_error)?;
    Ok(Response::json(200, &json!({ "uri": uri })))
}

fn two_factor_import(req: &Request) -> Reply {
    let body = two_factor_body(req)?;
    two_factor::import_totp(req.param("subject").unwrap_or_default(), &body.secret)
        .map_err(host_error)?;
    Ok(Response::new(204))
}

fn two_factor_verify_totp(req: &Request) -> Reply {
    let body = two_factor_body(req)?;
    let subject = req.param("subject").unwrap_or_default();
    let v = two_factor::verify_totp(subject, &body.context, &body.code).map_err(host_error)?;
    Ok(Response::json(200, &verification_json(v)))
}

fn two_factor_send_code(req: &Request) -> Reply {
    let body = two_factor_body(req)?;
    let channel = match body.channel.as_str() {
        "email" => two_factor::Channel::Email,
        _ => two_factor::Channel::Mobile,
    };
    let subject = req.param("subject").unwrap_or_default();
    let id = two_factor::send_code(subject, &body.context, channel, &body.destination)
        .map_err(host_error)?;
    Ok(Response::json(200, &json!({ "challenge_id": id })))
}

fn two_factor_verify_code(req: &Request) -> Reply {
    let body = two_factor_body(req)?;
    let subject = req.param("subject").unwrap_or_default();
    let v = two_factor::verify_code(subject, &body.context, &body.challenge_id, &body.code)
        .map_err(host_error)?;
    Ok(Response::json(200, &verification_json(v)))
}

fn two_factor_context(req: &Request) -> Reply {
    let subject = req.param("subject").unwrap_or_default();
    let state = two_factor::context_state(subject, req.param("context").unwrap_or_default())
        .map_err(host_error)?;
    Ok(Response::json(
        200,
        &json!({ "failures": state.failures, "exhausted": state.exhausted }),
    ))
}

fn ledger_create_user(_: &Request) -> Reply {
    let user = ledger::create_user(&ledger::NewUser {
        merchant_id: None,
        contact: ledger::Contact {
            national_code: None,
            mobile: None,
            email: None,
        },
        plugin_data: None,
    })
    .map_err(host_error)?;
    Ok(Response::json(200, &json!({ "id": user.id })))
}

fn ledger_balances(req: &Request) -> Reply {
    let balances = ledger::balances(req.param("id").unwrap_or_default()).map_err(host_error)?;
    let list: Vec<Value> = balances
        .iter()
        .map(|b| json!({ "asset": b.asset, "available": b.available_decimal, "locked": b.locked_decimal }))
        .collect();
    Ok(Response::json(200, &json!({ "balances": list })))
}

fn ledger_deposit_address(req: &Request) -> Reply {
    let address = ledger::deposit_address(
        req.param("id").unwrap_or_default(),
        req.param("chain").unwrap_or_default(),
    )
    .map_err(host_error)?;
    Ok(Response::json(200, &json!({ "address": address })))
}

#[derive(Deserialize)]
struct CreateLedgerOrder {
    payer: String,
    payee: String,
    client_order_id: String,
    amount: String,
}

fn ledger_order_json(o: &ledger::Order) -> Value {
    json!({
        "id": o.id,
        "status": match o.status {
            ledger::OrderStatus::Waiting => "waiting",
            ledger::OrderStatus::Processing => "processing",
            ledger::OrderStatus::Completed => "completed",
            ledger::OrderStatus::Expired => "expired",
            ledger::OrderStatus::Cancelled => "cancelled",
        },
        "paid": o.items.iter().map(|i| i.paid_decimal.clone()).collect::<Vec<_>>(),
    })
}

fn ledger_create_order(req: &Request) -> Reply {
    let body: CreateLedgerOrder = req.json().map_err(bad_request)?;
    let order = ledger::create_order(&ledger::NewOrder {
        payer_user_id: body.payer,
        payee_user_id: body.payee,
        client_order_id: body.client_order_id,
        items: vec![ledger::NewOrderItem {
            pay_type: ledger::PayType::Pay,
            chain: "ethereum".into(),
            asset: "USDT".into(),
            amount: body.amount,
        }],
        expires_at: clock::now() + 600_000,
        notify_url: None,
        plugin_data: None,
    })
    .map_err(host_error)?;
    Ok(Response::json(200, &ledger_order_json(&order)))
}

fn ledger_get_order(req: &Request) -> Reply {
    let order = ledger::get_order(req.param("id").unwrap_or_default()).map_err(host_error)?;
    Ok(Response::json(200, &ledger_order_json(&order)))
}

fn ledger_pay(req: &Request) -> Reply {
    let order = ledger::pay(req.param("id").unwrap_or_default()).map_err(host_error)?;
    Ok(Response::json(200, &ledger_order_json(&order)))
}

fn status_name(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Confirming => "confirming",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Expired => "expired",
        InvoiceStatus::Cancelled => "cancelled",
    }
}

fn invoice_json(i: &Invoice) -> Value {
    json!({
        "id": i.id,
        "merchant_id": i.merchant_id,
        "order_id": i.merchant_order_id,
        "status": status_name(i.status),
        "amount_due": i.amount_due,
        "amount_paid": i.amount_paid,
        "decimals": i.decimals,
        "amount_due_decimal": i.amount_due_decimal,
        "amount_paid_decimal": i.amount_paid_decimal,
        "fiat": i.fiat.as_ref().map(|f| json!({ "amount": f.amount, "currency": f.currency })),
        "chain": i.chain,
        "asset": i.asset,
        "pay_to": i.pay_to,
        "submitted": i.submitted_at.is_some(),
        "payment_page_url": i.payment_page_url,
        "plugin_data": serde_json::from_str::<Value>(&i.plugin_data).unwrap_or(Value::Null),
    })
}

polypay_plugin_sdk::export_plugin!(Echo);

#[cfg(test)]
mod tests {
    //! Runs natively against the SDK's fake host: the documented harness.
    use super::*;
    use polypay_plugin_sdk::testing::Harness;

    #[test]
    fn registered_merchant_can_create_and_read_its_invoice() {
        let h = Harness::<Echo>::new();
        let reg: Value = h
            .post("/echo/merchants")
            .json(&json!({ "name": "shop" }))
            .send()
            .body_json()
            .unwrap();
        let token = reg["token"].as_str().unwrap();
        let created = h
            .post("/echo/invoices")
            .header("authorization", &format!("Bearer {token}"))
            .json(&json!({ "amount": "1000", "chain": "ethereum", "asset": "USDT", "order_id": "o-1", "fixed_address": "0xabc" }))
            .send();
        assert_eq!(created.status, 201, "{}", created.body_text());
        let id = created.body_json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let read = h.get(&format!("/echo/invoices/{id}")).send();
        assert_eq!(read.body_json::<Value>().unwrap()["order_id"], "o-1");
    }

    #[test]
    fn creating_an_invoice_without_credentials_is_unauthorized() {
        let h = Harness::<Echo>::new();
        let r = h
            .post("/echo/invoices")
            .json(&json!({ "amount": "1", "chain": "c", "asset": "a" }))
            .send();
        assert_eq!(r.status, 401);
    }
}
