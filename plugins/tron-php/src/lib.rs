//! `tron-php`: the TRON payment API with PHP-style endpoints as a polypay dialect plugin.
//!
//! The specification is `seeds/004_tron_php.md` (its examples, and its JavaScript and PHP
//! clients, are normative) and the tron-php section of DIALECTS.md. Two endpoints:
//!
//! | route | methods | answer |
//! |-------|---------|--------|
//! | `/initiate_payment.php` | `POST` (JSON) | `{"status":"success","message":"支付请求已创建","data":{order_id, payment_token, to_address, amount, currency, description, status, created_at}}` |
//! | `/check_payment_status.php` | `GET` (query) or `POST` (JSON or form), by `order_id` or `payment_token` | `{"status":"success","data":{order_id, transaction_hash, from_address, to_address, amount, currency, status, description, created_at, updated_at}}` |
//!
//! Every answer, errors and the `OPTIONS` preflight included, carries
//! `Access-Control-Allow-Origin: *`: the seed's JavaScript client calls the API from
//! browsers on other origins. Errors are `{"error": "<text>"}` with 400 (bad input), 401
//! (unknown `api_key`), 404 (unknown order), 405 (other methods), 409 (duplicate
//! `order_id`), 413 (body over 64 KiB) or 500; texts are in Chinese like the seed's.
//! The plugin claims every method on its two paths so that a wrong one gets this shape
//! (with `Allow`) rather than the host's generic 405.
//!
//! # Amounts and the monitoring address
//!
//! All payments go to one operator-configured monitoring address, so invoices use the
//! host's `unique-amount` matching: the host raises each open invoice's amount by the
//! smallest free step (0.000001) so that a transfer identifies its invoice. The answer's
//! `amount` is that exact amount to pay, a JSON number. `amount` in the request is a JSON
//! number in TRX or USDT; its literal text goes to the host's decimal conversion
//! (`money`, `price.decimal`), never through a float: more than 6 decimals, an exponent, a
//! string, zero or a negative number is a 400. `to_address` in the request is deprecated
//! in the seed and ignored.
//!
//! # Merchants and `api_key`
//!
//! `api_key` identifies the merchant (`polypay merchant create --plugin tron-php` prints
//! it: credential kind `api-key`, 32 hex characters) and enables callbacks to the
//! merchant's `callback_url` (its plugin data, given at creation with
//! `--plugin-data '{"callback_url": "https://…"}'`). Without `api_key` the order belongs to
//! the plugin's `default_merchant` (`[[plugins]]` setting) and sends no callback; without a
//! default merchant such a request is a 401. An unknown `api_key` is a 401, never the
//! default merchant.
//!
//! # Order ids and payment tokens
//!
//! `order_id` is unique over the whole dialect, as in the seed's single-shop server: the
//! status endpoint takes it without credentials. A duplicate is a 409. Uniqueness is
//! checked over the stored orders and, against a concurrent request with the same id, by
//! a short reservation in the plugin's key-value store taken before the invoice is
//! written (and released if writing fails). A missing `order_id` is generated the seed's
//! way: the last 6 digits of the Unix time and 3 random digits, drawn again on collision.
//!
//! `payment_token` is the invoice id's 32 hex digits (the UUID without hyphens): no second
//! secret to store, and it reveals nothing the order id does not (the status endpoint is
//! public by order id, and the invoice id is in the checkout page's URL).
//!
//! # Statuses
//!
//! | host | tron-php |
//! |------|----------|
//! | `pending` | `pending` |
//! | `confirming` (paid, block not yet solidified) | `paid` |
//! | `paid` (final) | `confirmed` |
//! | `expired`, `cancelled` | `failed` |
//!
//! # Callback
//!
//! When an order becomes `paid` and when it becomes `confirmed`: `POST callback_url` with
//! `{event: "payment_status_changed", order_id, status, amount, currency,
//! transaction_hash, timestamp, signature}`, `timestamp` as `YYYY-MM-DD HH:MM:SS` and
//! `signature = hex(sha256(order_id . status . YYYYMMDD))`, both of the sending moment in
//! the configured time zone, computed afresh at every attempt (a retry after midnight
//! carries the new day's signature, which is what a merchant verifying with today's date
//! expects). Any 2xx accepts it; anything else is retried on the host's schedule. The
//! signature involves no secret: it is the seed's scheme, and a merchant that must trust a
//! callback confirms it with `check_payment_status.php`.
//!
//! `from_address` is the paying transfer's sender (`payer-address`, base58), `null` until
//! a payment is seen.
//!
//! # Settings
//!
//! ```toml
//! [[plugins]]
//! name = "tron-php"
//! wasm = "target/wasm-plugins/wasm32-wasip2/release/polypay_tron_php.wasm"
//! default_merchant = "<merchant id>"   # optional: orders without api_key
//! settings = { monitoring_address = "T…", network = "tron", time_zone = "+08:00", expires_in_secs = 1800 }
//! ```
//!
//! - `monitoring_address` (required): the base58 TRON address every order is paid to.
//! - `network` (default: the first TRON network of the server): the `[[chains]]` name.
//! - `time_zone` (default `UTC`): `UTC` or a fixed offset `±HH:MM`, for dates and the
//!   callback signature (see [`time`]).
//! - `expires_in_secs` (default 1800): how long an order waits for payment before `failed`.

mod create;
pub mod time;

use create::{Initiate, Refusal};
use polypay_plugin_sdk::invoices::Invoice;
use polypay_plugin_sdk::merchants::{CredentialTemplate, SecretFormat};
use polypay_plugin_sdk::prelude::*;
use polypay_plugin_sdk::webhooks::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::Zone;

/// The credential kind of `api_key`.
pub const API_KEY_KIND: &str = "api-key";
/// Requests larger than this are refused by the plugin (the host caps them at 1 MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Default time an order waits for payment.
pub const DEFAULT_EXPIRES_IN_SECS: u32 = 30 * 60;
/// How long an order id is reserved while its invoice is written.
const RESERVATION_SECS: u32 = 600;
/// Attempts at drawing a free generated order id.
const ORDER_ID_DRAWS: usize = 10;

const INITIATE: &str = "/initiate_payment.php";
const CHECK: &str = "/check_payment_status.php";
/// Every method the host routes (but HEAD, which it answers with GET): other methods than
/// an endpoint's get the dialect's 405. POST first: the endpoints' main method.
const ALL_METHODS: [&str; 6] = ["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub struct TronPhp;

impl Plugin for TronPhp {
    const NAME: &'static str = "tron-php";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new()
            .route(&ALL_METHODS, INITIATE, |req| {
                with_cors(endpoint(req, &["POST"], initiate_payment))
            })
            .route(&ALL_METHODS, CHECK, |req| {
                with_cors(endpoint(req, &["GET", "POST"], check_payment_status))
            })
    }

    fn openapi() -> Option<&'static str> {
        Some(include_str!("../openapi.json"))
    }

    fn settings_schema() -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["monitoring_address"],
            "properties": {
                "monitoring_address": { "type": "string" },
                "network": { "type": "string" },
                "time_zone": { "type": "string" },
                "expires_in_secs": { "type": "integer", "minimum": 60, "maximum": 2_592_000 }
            }
        }))
    }

    fn credentials() -> Vec<CredentialTemplate> {
        vec![CredentialTemplate {
            kind: API_KEY_KIND.into(),
            secret: SecretFormat::hex("", 16),
            public_id: None,
        }]
    }

    fn render_webhook(event: &InvoiceEvent, _attempt: u32) -> Option<WebhookDelivery> {
        let invoice = &event.invoice;
        let status = status_name(invoice.status);
        if event.kind == EventKind::StatusChanged {
            let entered = event.previous_status.map(status_name) != Some(status);
            if !entered || !matches!(status, "paid" | "confirmed") {
                return None;
            }
        }
        if event.url.is_empty() {
            return None;
        }
        let zone = match settings() {
            Ok(s) => s.zone,
            Err(why) => {
                log::error(&format!("callback not sent: {why}"));
                return None;
            }
        };
        let body = callback_body(invoice, zone, clock::now()).ok()?;
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url: event.url.clone(),
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            },
            accept: Acceptance::AnySuccess,
            // Some(0): retry on the host's schedule until it gives up.
            retry_after_secs: Some(0),
        })
    }
}

polypay_plugin_sdk::export_plugin!(TronPhp);

/// The dialect's status name of a host status.
pub fn status_name(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Confirming => "paid",
        InvoiceStatus::Paid => "confirmed",
        InvoiceStatus::Expired | InvoiceStatus::Cancelled => "failed",
    }
}

/// `hex(sha256(order_id . status . YYYYMMDD))`, the seed's callback signature.
pub fn signature(order_id: &str, status: &str, compact_date: &str) -> String {
    let message = format!("{order_id}{status}{compact_date}");
    polypay_plugin_sdk::hex(&crypto::digest(
        crypto::DigestAlgorithm::Sha256,
        message.as_bytes(),
    ))
}

#[derive(Serialize)]
struct Callback<'a> {
    event: &'static str,
    order_id: &'a str,
    status: &'static str,
    amount: &'a RawValue,
    currency: &'a str,
    transaction_hash: Option<&'a str>,
    timestamp: String,
    signature: String,
}

/// The callback body of `invoice` sent at `now_ms`.
fn callback_body(invoice: &Invoice, zone: Zone, now_ms: i64) -> Result<Vec<u8>, serde_json::Error> {
    let order_id = invoice.merchant_order_id.as_deref().unwrap_or_default();
    let status = status_name(invoice.status);
    let now = zone.civil(now_ms);
    let amount = amount_number(&invoice.amount_due_decimal)?;
    serde_json::to_vec(&Callback {
        event: "payment_status_changed",
        order_id,
        status,
        amount: &amount,
        currency: &invoice.asset,
        transaction_hash: invoice.txn_hash.as_deref(),
        timestamp: now.datetime(),
        signature: signature(order_id, status, &now.compact_date()),
    })
}

/// A host-formatted decimal ("0.100001") as a JSON number, digits unchanged.
fn amount_number(decimal: &str) -> Result<Box<RawValue>, serde_json::Error> {
    RawValue::from_string(decimal.to_owned())
}

// ---------------------------------------------------------------------------------------
// Settings

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    monitoring_address: Option<String>,
    network: Option<String>,
    time_zone: Option<String>,
    expires_in_secs: Option<u32>,
}

struct Settings {
    monitoring_address: String,
    network: String,
    zone: Zone,
    expires_in_secs: u32,
}

/// The plugin's settings, checked; the error says what is wrong (logged, never shown to a
/// client).
fn settings() -> Result<Settings, String> {
    let raw: RawSettings =
        context::settings().map_err(|e| format!("the tron-php settings are invalid: {e}"))?;
    let monitoring_address = raw
        .monitoring_address
        .filter(|a| !a.is_empty())
        .ok_or("the tron-php setting `monitoring_address` is required")?;
    let network = match raw.network {
        Some(network) => network,
        None => chains::networks()
            .into_iter()
            .find(|n| n.family == "tron")
            .map(|n| n.name)
            .ok_or("no TRON network is configured for tron-php")?,
    };
    let zone_text = raw.time_zone.unwrap_or_else(|| "UTC".into());
    let zone = Zone::parse(&zone_text).ok_or_else(|| {
        format!("the tron-php setting `time_zone` must be UTC or ±HH:MM, not `{zone_text}`")
    })?;
    Ok(Settings {
        monitoring_address,
        network,
        zone,
        expires_in_secs: raw.expires_in_secs.unwrap_or(DEFAULT_EXPIRES_IN_SECS),
    })
}

// ---------------------------------------------------------------------------------------
// Responses

/// `{"error": message}` with `status`.
fn error(status: u16, message: &str) -> Response {
    Response::json(status, &serde_json::json!({ "error": message }))
}

/// A host failure the client cannot fix: logged with its detail, answered generically.
fn internal(context: &str, detail: &str) -> Response {
    log::log(
        log::Level::Error,
        "tron-php request failed",
        &[
            ("during".into(), context.into()),
            ("error".into(), detail.into()),
        ],
    );
    error(500, "服务器内部错误")
}

fn host_failure(context: &str, e: HostError) -> Response {
    internal(context, &e.to_string())
}

fn with_cors(response: Response) -> Response {
    response.header("access-control-allow-origin", "*")
}

/// Answers the preflight and refuses other methods than `allowed`, then runs `handler`.
fn endpoint(
    req: &Request,
    allowed: &[&str],
    handler: fn(&Request) -> Result<Response, Response>,
) -> Response {
    let allow = allowed
        .iter()
        .copied()
        .chain(["OPTIONS"])
        .collect::<Vec<_>>()
        .join(", ");
    if req.method == "OPTIONS" {
        return Response::new(204)
            .header("access-control-allow-methods", &allow)
            .header("access-control-allow-headers", "Content-Type")
            .header("access-control-max-age", "86400")
            .header("allow", &allow);
    }
    // The host routes HEAD with GET (and sends no body back).
    let method = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    if !allowed.contains(&method) {
        return error(405, &format!("请求方法错误, 仅支持 {}", allowed.join("/")))
            .header("allow", &allow);
    }
    if req.body.len() > MAX_BODY_BYTES {
        return error(413, "请求数据过大");
    }
    handler(req).into_response()
}

fn created_at_text(zone: Zone, ms: i64) -> String {
    zone.civil(ms).datetime()
}

/// The stored description of an order.
fn description(invoice: &Invoice) -> String {
    serde_json::from_str::<serde_json::Value>(&invoice.plugin_data)
        .ok()
        .and_then(|d| d["description"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The invoice id's 32 hex digits.
fn payment_token(invoice: &Invoice) -> String {
    invoice.id.replace('-', "")
}

/// The invoice id of a payment token (32 hex digits, either case).
fn invoice_id_of_token(token: &str) -> Option<String> {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let t = token.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &t[0..8],
        &t[8..12],
        &t[12..16],
        &t[16..20],
        &t[20..32]
    ))
}

// ---------------------------------------------------------------------------------------
// POST /initiate_payment.php

#[derive(Serialize)]
struct Success<'a, T> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    data: T,
}

#[derive(Serialize)]
struct Created<'a> {
    order_id: &'a str,
    payment_token: String,
    to_address: &'a str,
    amount: &'a RawValue,
    currency: &'a str,
    description: String,
    status: &'static str,
    created_at: String,
}

fn initiate_payment(req: &Request) -> Result<Response, Response> {
    let body = create::parse(&req.body).map_err(|r| error(400, &r.message()))?;
    let settings = settings().map_err(|why| internal("settings", &why))?;
    check_amount(&settings, &body)?;
    let order_id = reserve_order_id(body.order_id.as_deref())?;
    let created = authenticate_and_create(&settings, &body, &order_id);
    let invoice = match created {
        Ok(invoice) => invoice,
        Err(refused) => {
            if let Err(e) = kv::delete(&reservation_key(&order_id)) {
                log::warn(&format!("order id reservation not released: {e}"));
            }
            return Err(refused);
        }
    };
    let amount = amount_number(&invoice.amount_due_decimal)
        .map_err(|e| internal("amount", &e.to_string()))?;
    let data = Created {
        order_id: &order_id,
        payment_token: payment_token(&invoice),
        to_address: &invoice.pay_to,
        amount: &amount,
        currency: &invoice.asset,
        description: description(&invoice),
        status: status_name(invoice.status),
        created_at: created_at_text(settings.zone, invoice.created_at),
    };
    Ok(Response::json(
        200,
        &Success {
            status: "success",
            message: Some("支付请求已创建"),
            data,
        },
    ))
}

/// Refuses an amount the host cannot take for the currency on the network, before any
/// write (the host converts it; the plugin never parses money).
fn check_amount(settings: &Settings, body: &Initiate) -> Result<(), Response> {
    money::to_base_units(&settings.network, body.currency, &body.amount)
        .map(|_| ())
        .map_err(|e| match e {
            HostError::Unsupported(_) => error(400, &Refusal::UnsupportedCurrency.message()),
            HostError::Invalid(why) => error(
                400,
                &format!("金额格式无效, 最多6位小数, 不支持科学计数法 ({why})"),
            ),
            other => host_failure("money.to-base-units", other),
        })
}

fn reservation_key(order_id: &str) -> String {
    format!("order-id:{order_id}")
}

/// The order id of a new order, reserved: the requested one (409 when taken) or a
/// generated one. Runs unauthenticated so that it sees every merchant's orders.
fn reserve_order_id(requested: Option<&str>) -> Result<String, Response> {
    let reserve = |id: &str| -> Result<bool, Response> {
        match invoices::find_by_order_id(id) {
            Ok(_) => return Ok(false),
            Err(HostError::NotFound) => {}
            Err(e) => return Err(host_failure("invoices.find-by-order-id", e)),
        }
        kv::set_if_absent(&reservation_key(id), b"1", Some(RESERVATION_SECS))
            .map_err(|e| host_failure("kv.set-if-absent", e))
    };
    if let Some(id) = requested {
        return if reserve(id)? {
            Ok(id.to_owned())
        } else {
            Err(error(409, "订单ID已存在"))
        };
    }
    for _ in 0..ORDER_ID_DRAWS {
        let id = generated_order_id(clock::now(), random::below(1000));
        if reserve(&id)? {
            return Ok(id);
        }
    }
    Err(internal("order id", "no free generated order id"))
}

/// The last 6 digits of the Unix time and 3 random digits.
pub fn generated_order_id(now_ms: i64, random_below_1000: u64) -> String {
    format!(
        "{:06}{:03}",
        (now_ms / 1000).rem_euclid(1_000_000),
        random_below_1000
    )
}

fn authenticate_and_create(
    settings: &Settings,
    body: &Initiate,
    order_id: &str,
) -> Result<Invoice, Response> {
    let mut callback_url = None;
    if let Some(key) = &body.api_key {
        merchants::authenticate(API_KEY_KIND, key).map_err(|e| match e {
            HostError::Unauthorized | HostError::NotFound | HostError::Forbidden => {
                error(401, "无效的API密钥")
            }
            other => host_failure("merchants.authenticate", other),
        })?;
        callback_url = merchants::current().and_then(|m| {
            serde_json::from_str::<serde_json::Value>(&m.plugin_data)
                .ok()?
                .get("callback_url")?
                .as_str()
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
        });
    }
    let plugin_data = serde_json::json!({ "description": body.description });
    invoices::create(&NewInvoice {
        merchant_order_id: Some(order_id.to_owned()),
        price: Price::decimal(body.amount.clone()),
        chain: settings.network.clone(),
        asset: body.currency.to_owned(),
        matching: MatchStrategy::UniqueAmount(settings.monitoring_address.clone()),
        expires_in_secs: settings.expires_in_secs,
        notify_url: callback_url,
        return_url: None,
        plugin_data: Some(plugin_data.to_string()),
    })
    .map_err(|e| match e {
        HostError::Unauthorized => error(401, "缺少api_key"),
        HostError::Conflict(_) => error(409, "订单ID已存在"),
        HostError::Unsupported(_) => error(400, &Refusal::UnsupportedCurrency.message()),
        HostError::Invalid(why) => error(400, &format!("请求参数错误: {why}")),
        other => host_failure("invoices.create", other),
    })
}

// ---------------------------------------------------------------------------------------
// GET|POST /check_payment_status.php

#[derive(Serialize)]
struct StatusData<'a> {
    order_id: &'a str,
    transaction_hash: Option<&'a str>,
    from_address: Option<&'a str>,
    to_address: &'a str,
    amount: &'a RawValue,
    currency: &'a str,
    status: &'static str,
    description: String,
    created_at: String,
    updated_at: String,
}

/// `order_id` and `payment_token` of a status request: from the query string, or a POST
/// body in JSON or form encoding.
fn lookup_keys(req: &Request) -> Result<(Option<String>, Option<String>), Response> {
    let mut pairs = req.query_pairs();
    if req.method == "POST" && !req.body.iter().all(u8::is_ascii_whitespace) {
        let json: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&req.body).ok();
        match json {
            Some(object) => {
                for key in ["order_id", "payment_token"] {
                    match object.get(key) {
                        Some(serde_json::Value::String(s)) => pairs.push((key.into(), s.clone())),
                        Some(serde_json::Value::Number(n)) if n.is_u64() => {
                            pairs.push((key.into(), n.to_string()))
                        }
                        None | Some(serde_json::Value::Null) => {}
                        Some(_) => {
                            return Err(error(400, &Refusal::NotAString(key).message()));
                        }
                    }
                }
            }
            None if req.body.first() == Some(&b'{') => {
                return Err(error(400, &Refusal::NotJson.message()));
            }
            None => pairs.extend(req.form_pairs()),
        }
    }
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
    };
    Ok((get("order_id"), get("payment_token")))
}

fn check_payment_status(req: &Request) -> Result<Response, Response> {
    let (order_id, token) = lookup_keys(req)?;
    let not_found = || error(404, "订单不存在");
    let found = match (&token, &order_id) {
        (Some(token), _) => {
            let id = invoice_id_of_token(token).ok_or_else(|| error(400, "无效的支付令牌"))?;
            invoices::get(&id)
        }
        // Orders get only visible ASCII ids: anything else names no order.
        (None, Some(order_id)) if !create::is_order_id(order_id) => return Err(not_found()),
        (None, Some(order_id)) => invoices::find_by_order_id(order_id),
        (None, None) => return Err(error(400, "缺少必需字段: order_id 或 payment_token")),
    };
    let invoice = found.map_err(|e| match e {
        HostError::NotFound | HostError::Unauthorized | HostError::Forbidden => not_found(),
        other => host_failure("invoices.get", other),
    })?;
    let settings = settings().map_err(|why| internal("settings", &why))?;
    let amount = amount_number(&invoice.amount_due_decimal)
        .map_err(|e| internal("amount", &e.to_string()))?;
    let data = StatusData {
        order_id: invoice.merchant_order_id.as_deref().unwrap_or_default(),
        transaction_hash: invoice.txn_hash.as_deref(),
        from_address: invoice.payer_address.as_deref(),
        to_address: &invoice.pay_to,
        amount: &amount,
        currency: &invoice.asset,
        status: status_name(invoice.status),
        description: description(&invoice),
        created_at: created_at_text(settings.zone, invoice.created_at),
        updated_at: created_at_text(settings.zone, invoice.updated_at),
    };
    Ok(Response::json(
        200,
        &Success {
            status: "success",
            message: None,
            data,
        },
    ))
}

#[cfg(test)]
mod tests {
    //! The dialect's logic against the SDK's in-memory host. The conformance tests that
    //! replay the seed's examples against the real server are in
    //! `host/tests/tron_php_api.rs`.
    use super::*;
    use polypay_plugin_sdk::testing::Harness;

    #[test]
    fn host_statuses_map_to_the_seeds_four_names() {
        for (host, name) in [
            (InvoiceStatus::Pending, "pending"),
            (InvoiceStatus::Confirming, "paid"),
            (InvoiceStatus::Paid, "confirmed"),
            (InvoiceStatus::Expired, "failed"),
            (InvoiceStatus::Cancelled, "failed"),
        ] {
            assert_eq!(status_name(host), name);
        }
    }

    const MONITORING: &str = "TY72iA3SBtrds3QLYsS7LwYfkzXwAXCRWT";

    /// A harness with a TRON network (TRX and USDT), the monitoring address and a default
    /// merchant, in `zone`.
    fn harness(zone: &str) -> Harness<TronPhp> {
        use polypay_plugin_sdk::chains::{AssetInfo, NetworkInfo};
        let h = Harness::<TronPhp>::new();
        let asset = |symbol: &str| AssetInfo {
            symbol: symbol.into(),
            decimals: 6,
            contract: None,
        };
        h.host().add_network(NetworkInfo {
            name: "tron".into(),
            family: "tron".into(),
            chain_id: None,
            required_confirmations: 1,
            assets: vec![asset("TRX"), asset("USDT")],
            payment_contracts: vec![],
        });
        h.host().set_settings(serde_json::json!({
            "monitoring_address": MONITORING, "time_zone": zone
        }));
        let merchant = h.host().add_merchant("shop");
        h.host().set_default_merchant(&merchant);
        h
    }

    fn event(invoice: &Invoice, previous: Option<InvoiceStatus>) -> InvoiceEvent {
        InvoiceEvent {
            id: "event-1".into(),
            kind: EventKind::StatusChanged,
            invoice: invoice.clone(),
            previous_status: previous,
            occurred_at: 0,
            url: "https://shop.example/callback".into(),
        }
    }

    #[test]
    fn the_callback_is_signed_with_the_sending_day_in_the_configured_zone() {
        let h = harness("+08:00");
        let r = h
            .post(INITIATE)
            .body(r#"{"amount": 0.1, "currency": "TRX", "order_id": "ORD-123456"}"#)
            .send();
        assert_eq!(r.status, 200, "{}", r.body_text());
        let mut invoice = h.host().invoices()[0].clone();
        invoice.status = InvoiceStatus::Confirming;
        // 2023-11-30 20:00:00 UTC: December 1st in the +08:00 zone.
        h.host().set_now(1_701_374_400_000);
        let delivery = h
            .render_webhook(event(&invoice, Some(InvoiceStatus::Pending)), 1)
            .expect("a callback for paid");
        let body: serde_json::Value = serde_json::from_slice(&delivery.request.body).unwrap();
        assert_eq!(body["order_id"], "ORD-123456");
        assert_eq!(body["status"], "paid");
        assert_eq!(body["timestamp"], "2023-12-01 04:00:00");
        // sha256("ORD-123456paid20231201"), the seed's example, by `sha256sum`.
        assert_eq!(
            body["signature"],
            "922b838cc256d6d9c15961b1e4c3b840e0d61d387bf82113dc5190b42307f9ee"
        );
        assert_eq!(delivery.accept, Acceptance::AnySuccess);
    }

    #[test]
    fn callbacks_go_out_on_entering_paid_and_confirmed_only() {
        let h = harness("UTC");
        h.post(INITIATE)
            .body(r#"{"amount": 1, "currency": "USDT"}"#)
            .send();
        let mut invoice = h.host().invoices()[0].clone();
        use InvoiceStatus::*;
        for (now, previous, sends) in [
            (Pending, None, false),
            (Confirming, Some(Pending), true),
            (Paid, Some(Confirming), true),
            (Paid, Some(Pending), true),
            (Expired, Some(Pending), false),
            (Pending, Some(Confirming), false),
        ] {
            invoice.status = now;
            let sent = h.render_webhook(event(&invoice, previous), 1).is_some();
            assert_eq!(sent, sends, "{previous:?} -> {now:?}");
        }
        let mut no_url = event(&invoice, Some(Pending));
        invoice.status = Paid;
        no_url.invoice = invoice;
        no_url.url = String::new();
        assert!(h.render_webhook(no_url, 1).is_none());
    }

    #[test]
    fn generated_order_ids_are_six_time_digits_and_three_random_ones() {
        assert_eq!(generated_order_id(1_701_426_900_123, 7), "426900007");
        assert_eq!(generated_order_id(1_700_000_000_000, 999), "000000999");
    }

    #[test]
    fn payment_tokens_are_the_invoice_ids_hex_digits() {
        assert_eq!(
            invoice_id_of_token("7503CD8AC9214368A32D6C1D01D86DA9").as_deref(),
            Some("7503cd8a-c921-4368-a32d-6c1d01d86da9")
        );
        assert_eq!(
            invoice_id_of_token("a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"),
            None
        );
        assert_eq!(invoice_id_of_token("abc"), None);
    }
}
