//! `pay-orders`: salted-md5 pay orders, priced in fiat and paid in crypto, as a polypay
//! dialect plugin.
//!
//! The specification is `seeds/001_pay_orders_salted_md5.md` (its examples are
//! normative) and the pay-orders section of DIALECTS.md. Three routes:
//!
//! | route | auth | answer |
//! |-------|------|--------|
//! | `POST /api/web/pay-orders/store` | `app_id` + `salt` + `sign` | the new order |
//! | `GET\|POST /api/web/pay-orders/show?id=` | none (the id is unguessable) | the order |
//! | `GET /api/web/pay-orders/submitted?id=` | none (the payer says it has paid) | the order, `pay_status` 2 |
//!
//! Every answer is `{"code": 200, "message": "ok", "result": {…order…}}`; errors are
//! `{"code": <status>, "message": "…", "result": null}` with the same HTTP status
//! (validation 422, bad signature 401, reused salt 409, unknown order 404, rate source
//! down 503). See [`order`] for the order object and the status mapping.
//!
//! # Applications and signatures
//!
//! A merchant is an application: `polypay merchant create --name NAME --plugin pay-orders`
//! prints its `app_id` (the credential's public id) and `secure_key` (the secret) once.
//! A request carries `sign = md5(md5(salt) . md5(secure_key))`, lower-case hex of hex
//! strings. The plugin never sees the key: it computes `md5(salt)` and asks the host to
//! check the digest proof `md5(<md5(salt) hex> . <md5(secret) hex>)` in constant time
//! (`merchants.authenticate-signed`). An unknown `app_id` and a wrong `sign` get the same
//! answer. A salt is accepted once per application within 24 hours (the original
//! accepted replays; this dialect does not); the salt is recorded only after the
//! signature checked out and the order could be priced, so a failed request never
//! burns it.
//!
//! # Pricing
//!
//! `fee` is in cents of `currency` (1 USD, 2 CNY). The host's rate service quotes it in
//! the pay currency's asset, rounded up to the base unit; the plugin then rounds up to a
//! hundredth of the asset, because `pay_fee` is in hundredths of the pay currency and
//! the payer must be able to pay exactly `pay_fee / 100`. With unique-amount matching
//! the host may raise the amount by its configured step (set the asset's
//! `unique_amount_step` to `"0.01"` so `pay_fee` stays exact); `pay_fee` is always the
//! invoice's amount due in hundredths, rounded up. A rate outage refuses new orders with
//! 503 and leaves existing ones untouched.
//!
//! The invoice is priced in fiat (the host keeps the quote on it and rounds the amount
//! up to the asset's `unique_amount_step`). Showing an unpaid order whose quote is two
//! minutes old re-quotes it at the current rate (`invoices.requote`); `pay_refresh_at` is
//! when that last happened (null until it has). A payer who sends the amount shown
//! before the refresh is still paid in full within the host's grace period.
//!
//! # Settings
//!
//! ```toml
//! [[plugins]]
//! name = "pay-orders"
//! wasm = "target/wasm-plugins/wasm32-wasip2/release/polypay_pay_orders.wasm"
//!
//! [plugins.settings]
//! default_pay_currency = 2          # used when a request names none
//! expires_in_secs = 1800            # orders time out after 30 minutes
//! callback_tries = 6                # then callback_status 3
//!
//! [plugins.settings.pay_currencies.2]   # ERC20 USDT
//! chain = "ethereum"
//! asset = "USDT"
//! receipt_account = "0x…"           # shared address: unique-amount matching
//!
//! [plugins.settings.pay_currencies.5]   # FTM
//! chain = "fantom"
//! asset = "FTM"
//! xpub = "xpub…"                    # or: a fresh derived address per order
//! ```
//!
//! Codes: 2 ERC20 USDT, 3 TRC20 USDT, 4 MATIC (Polygon), 5 FTM; 1 is "unknown" and cannot
//! be offered. A request may name `pay_currency`; it must be one the operator offers.
//!
//! # Callback
//!
//! When an order is paid: `POST callback_url` with the whole order object (the `result`
//! of `show`) as JSON. Only a 2xx answer whose body is `ok` (surrounding whitespace
//! aside) accepts it; anything else is retried on the host's schedule, whose delays grow
//! (`webhooks.retry` / `webhooks.plugin_retry.pay-orders`), and given up after
//! `callback_tries` tries (`callback_status` 3).

pub mod errors;
pub mod order;
pub mod store;

use std::collections::BTreeMap;

use order::{Order, OrderData};
use polypay_plugin_sdk::invoices::{FiatPrice, Invoice};
use polypay_plugin_sdk::merchants::{
    CredentialTemplate, DigestAlgorithm, DigestPart, DigestProof, Proof, SecretFormat,
};
use polypay_plugin_sdk::prelude::*;
use polypay_plugin_sdk::webhooks::EventKind;
use serde::Deserialize;
use store::StoreOrder;

/// The credential kind of an application's secure key (its public id is the `app_id`).
pub const KEY_KIND: &str = "secure-key";
/// How long a salt stays used.
pub const SALT_TTL_SECS: u32 = 24 * 3600;
/// Orders time out after 30 minutes unless configured otherwise.
pub const DEFAULT_EXPIRES_IN_SECS: u32 = 30 * 60;
/// Callback tries before giving up.
pub const DEFAULT_CALLBACK_TRIES: u32 = 6;
/// Length of order ids.
pub const ORDER_ID_LEN: usize = 16;

pub struct PayOrders;

impl Plugin for PayOrders {
    const NAME: &'static str = "pay-orders";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new()
            .post("/api/web/pay-orders/store", store_order)
            .route(&["GET", "POST"], "/api/web/pay-orders/show", show_order)
            .get("/api/web/pay-orders/submitted", submitted)
    }

    fn openapi() -> Option<&'static str> {
        Some(include_str!("../openapi.json"))
    }

    fn settings_schema() -> Option<serde_json::Value> {
        let pay_currency = serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["chain", "asset"],
            "properties": {
                "chain": { "type": "string" },
                "asset": { "type": "string" },
                "receipt_account": { "type": "string" },
                "xpub": { "type": "string" }
            }
        });
        Some(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "pay_currencies": {
                    "type": "object",
                    "propertyNames": { "enum": ["2", "3", "4", "5"] },
                    "additionalProperties": pay_currency
                },
                "default_pay_currency": { "type": "integer", "minimum": 2, "maximum": 5 },
                "expires_in_secs": { "type": "integer", "minimum": 60, "maximum": 2_592_000 },
                "callback_tries": { "type": "integer", "minimum": 1, "maximum": 100 }
            }
        }))
    }

    fn credentials() -> Vec<CredentialTemplate> {
        vec![CredentialTemplate {
            kind: KEY_KIND.into(),
            secret: SecretFormat::alphanumeric("", 32),
            public_id: Some(SecretFormat::alphanumeric("", 16)),
        }]
    }

    fn render_webhook(event: &InvoiceEvent, attempt: u32) -> Option<WebhookDelivery> {
        let invoice = &event.invoice;
        let becomes_paid = invoice.status == InvoiceStatus::Paid
            && event.previous_status != Some(InvoiceStatus::Paid);
        if event.kind == EventKind::StatusChanged && !becomes_paid {
            return None;
        }
        let tries = settings()
            .map(|s| s.callback_tries)
            .unwrap_or(DEFAULT_CALLBACK_TRIES);
        let body = serde_json::to_vec(&Order::of(invoice)).ok()?;
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url: event.url.clone(),
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            },
            accept: Acceptance::BodyEquals("ok".into()),
            // Some(0): the host's growing schedule; none after the last try: give up.
            retry_after_secs: (attempt < tries).then_some(0),
        })
    }
}

polypay_plugin_sdk::export_plugin!(PayOrders);

/// Where one pay currency is paid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayCurrency {
    chain: String,
    asset: String,
    #[serde(default)]
    receipt_account: Option<String>,
    #[serde(default)]
    xpub: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    pay_currencies: BTreeMap<String, PayCurrency>,
    #[serde(default)]
    default_pay_currency: Option<u8>,
    #[serde(default = "default_expiry")]
    expires_in_secs: u32,
    #[serde(default = "default_tries")]
    callback_tries: u32,
}

fn default_expiry() -> u32 {
    DEFAULT_EXPIRES_IN_SECS
}

fn default_tries() -> u32 {
    DEFAULT_CALLBACK_TRIES
}

fn settings() -> Result<Settings, Response> {
    context::settings()
        .map_err(|e| errors::host_failure("settings", HostError::Invalid(e.to_string())))
}

impl Settings {
    /// The pay currency `requested` (or the default) and where it is paid.
    fn pay_currency(&self, requested: Option<u8>) -> Option<(u8, &PayCurrency)> {
        let code = match requested.or(self.default_pay_currency) {
            Some(code) => code,
            None => self
                .pay_currencies
                .keys()
                .filter_map(|k| k.parse().ok())
                .min()?,
        };
        if !(2..=5).contains(&code) {
            return None;
        }
        self.pay_currencies
            .get(&code.to_string())
            .map(|p| (code, p))
    }
}

/// Checks `sign` for `app_id` in the host; on success the request is the application's.
/// Returns the id of the application's credential.
fn authenticate(order: &StoreOrder) -> Result<String, Response> {
    let salt_md5 =
        polypay_plugin_sdk::hex(&crypto::digest(DigestAlgorithm::Md5, order.salt.as_bytes()));
    let proof = Proof::Digest(DigestProof {
        algorithm: DigestAlgorithm::Md5,
        parts: vec![
            DigestPart::Bytes(salt_md5.into_bytes()),
            DigestPart::SecretDigestHex(DigestAlgorithm::Md5),
        ],
        expected: order.sign.clone(),
    });
    merchants::authenticate_signed(KEY_KIND, &order.app_id, &proof)
        .map(|credential| credential.id)
        .map_err(|e| match e {
            HostError::Unauthorized | HostError::NotFound | HostError::Forbidden => {
                errors::bad_sign()
            }
            other => errors::host_failure("authenticate", other),
        })
}

/// `amount` base units rounded up to a multiple of `unit`.
fn round_up_to(amount: &str, unit: &str) -> Option<String> {
    let (amount, unit) = (amount.parse::<u128>().ok()?, unit.parse::<u128>().ok()?);
    if unit == 0 {
        return None;
    }
    amount
        .div_ceil(unit)
        .checked_mul(unit)
        .map(|v| v.to_string())
}

/// A fresh 16-character order id no order of this plugin carries.
fn new_order_id() -> Result<String, Response> {
    for _ in 0..4 {
        let id = random::alphanumeric(ORDER_ID_LEN);
        match invoices::find_by_order_id(&id) {
            Err(HostError::NotFound) => return Ok(id),
            Ok(_) => continue,
            Err(other) => return Err(errors::host_failure("invoices.find-by-order-id", other)),
        }
    }
    Err(errors::error(500, "服务器错误"))
}

fn store_order(req: &Request) -> Result<Response, Response> {
    let order = store::parse(req)?;
    let settings = settings()?;
    let (pay_currency, target) = settings
        .pay_currency(order.pay_currency)
        .ok_or_else(|| errors::invalid("pay_currency 不支持"))?;
    let credential = authenticate(&order)?;
    let matching = match (&target.xpub, &target.receipt_account) {
        (Some(xpub), _) => MatchStrategy::DerivedAddress(xpub.clone()),
        (None, Some(address)) => MatchStrategy::UniqueAmount(address.clone()),
        (None, None) => {
            return Err(errors::host_failure(
                "settings",
                HostError::Invalid(format!(
                    "pay currency {pay_currency} has neither receipt_account nor xpub"
                )),
            ));
        }
    };
    let unit = money::to_base_units(&target.chain, &target.asset, "0.01")
        .map_err(|e| errors::host_failure("money.to-base-units", e))?;
    let fiat = store::fiat_code(order.currency).unwrap_or("USD");
    let quote = rates::quote(
        fiat,
        &store::cents_to_decimal(order.fee),
        &target.chain,
        &target.asset,
    )
    .map_err(|e| match e {
        HostError::Unavailable(_) => errors::rate_unavailable(),
        HostError::Unsupported(_) => errors::invalid(format!("暂不支持 {fiat} 计价")),
        other => errors::host_failure("rates.quote", other),
    })?;
    // The amount the quote comes to, checked here so an absurd fee is refused in the
    // dialect's words; the invoice itself is priced in fiat, so the host keeps the quote
    // on it and can refresh it (`pay_refresh_at`).
    round_up_to(&quote.amount, &unit).ok_or_else(|| errors::invalid("fee 超出范围"))?;
    // Bounded length whatever the salt: the credential id and a digest of the salt.
    let salt_key = format!(
        "salt:{credential}:{}",
        polypay_plugin_sdk::hex(&crypto::digest(
            DigestAlgorithm::Sha256,
            order.salt.as_bytes()
        ))
    );
    if !kv::set_if_absent(&salt_key, b"1", Some(SALT_TTL_SECS))
        .map_err(|e| errors::host_failure("kv.set-if-absent", e))?
    {
        return Err(errors::salt_reused());
    }
    let id = new_order_id()?;
    let data = OrderData {
        title: order.title,
        remark: order.remark,
        fee: order.fee,
        currency: order.currency,
        pay_currency,
        app_id: order.app_id,
        callback_url: order.callback_url.clone(),
        redirect_url: order.redirect_url.clone(),
        pay_unit: unit,
        rate: quote.rate,
        quoted_at: quote.quoted_at,
    };
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let invoice = invoices::create(&NewInvoice {
        merchant_order_id: Some(id),
        price: Price::Fiat(FiatPrice {
            amount: store::cents_to_decimal(order.fee),
            currency: fiat.to_owned(),
        }),
        chain: target.chain.clone(),
        asset: target.asset.clone(),
        matching,
        expires_in_secs: settings.expires_in_secs,
        notify_url: non_empty(order.callback_url),
        return_url: non_empty(order.redirect_url),
        plugin_data: Some(serde_json::to_string(&data).unwrap_or_default()),
    })
    .map_err(|e| match e {
        HostError::Invalid(why) => errors::invalid(why),
        HostError::Unavailable(_) => errors::error(503, "服务暂时不可用，请稍后重试"),
        other => errors::host_failure("invoices.create", other),
    })?;
    Ok(errors::ok(&Order::of(&invoice)))
}

/// The order named by `?id=` (a form body's `id` also counts for POST).
fn load_order(req: &Request) -> Result<Invoice, Response> {
    let id = req
        .query_param("id")
        .or_else(|| {
            req.form_pairs()
                .into_iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v)
        })
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&req.body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
        })
        .unwrap_or_default();
    if id.is_empty() {
        return Err(errors::invalid("id 不能为空"));
    }
    if id.len() != ORDER_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(errors::order_not_found());
    }
    invoices::find_by_order_id(&id).map_err(|e| match e {
        HostError::NotFound | HostError::Unauthorized | HostError::Forbidden => {
            errors::order_not_found()
        }
        other => errors::host_failure("invoices.find-by-order-id", other),
    })
}

/// How old an unpaid order's quote may get before showing the order refreshes it.
const REFRESH_AFTER_MS: i64 = 2 * 60 * 1000;

/// Shows the order; an unpaid one whose quote is [`REFRESH_AFTER_MS`] old is re-quoted at
/// the current rate first (`invoices.requote`: the amount shown before still pays during
/// the host's grace period), and `pay_refresh_at` tells when it last was.
fn show_order(req: &Request) -> Result<Response, Response> {
    let mut invoice = load_order(req)?;
    let stale = invoice.status == InvoiceStatus::Pending
        && invoice.amount_paid == "0"
        && invoice
            .fiat_quote
            .as_ref()
            .is_some_and(|q| clock::now() >= q.quoted_at.saturating_add(REFRESH_AFTER_MS));
    if stale {
        match invoices::requote(&invoice.id) {
            Ok(requoted) => invoice = requoted,
            // A rate outage, or a payment or the deadline just arrived: the order stands
            // as it is.
            Err(HostError::Unavailable(_) | HostError::Conflict(_)) => {}
            Err(other) => return Err(errors::host_failure("invoices.requote", other)),
        }
    }
    Ok(errors::ok(&Order::of(&invoice)))
}

/// The payer says it has paid: `pay_status` 2 until the payment is seen.
fn submitted(req: &Request) -> Result<Response, Response> {
    let invoice = load_order(req)?;
    let invoice = match invoices::mark_submitted(&invoice.id) {
        Ok(updated) => updated,
        // Already paid or already submitted: nothing to change.
        Err(HostError::Conflict(_))
            if matches!(invoice.status, InvoiceStatus::Paid) || invoice.submitted_at.is_some() =>
        {
            invoice
        }
        Err(HostError::Conflict(_)) => return Err(errors::error(409, "订单已超时")),
        Err(other) => return Err(errors::host_failure("invoices.mark-submitted", other)),
    };
    Ok(errors::ok(&Order::of(&invoice)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_up_to_whole_hundredths() {
        assert_eq!(
            round_up_to("19996001", "10000").as_deref(),
            Some("20000000")
        );
        assert_eq!(
            round_up_to("20000000", "10000").as_deref(),
            Some("20000000")
        );
        assert_eq!(
            round_up_to("1", "10000000000000000").as_deref(),
            Some("10000000000000000")
        );
        assert_eq!(round_up_to("x", "1"), None);
    }

    #[test]
    fn applications_get_an_app_id_and_a_secure_key() {
        let h = polypay_plugin_sdk::testing::Harness::<PayOrders>::new();
        let manifest = h.manifest();
        assert_eq!(manifest.credentials.len(), 1);
        assert_eq!(manifest.credentials[0].kind, KEY_KIND);
        assert!(manifest.credentials[0].public_id.is_some());
    }
}
