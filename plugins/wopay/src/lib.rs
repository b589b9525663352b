//! `wopay`: the WoPay payment API (`X-API-Key`) as a polypay dialect plugin.
//!
//! The specification is `seeds/003_wopay.md` (its examples are normative) and the wopay
//! section of DIALECTS.md.
//!
//! | route | auth | answer |
//! |-------|------|--------|
//! | `POST /api/v1/merchants` | none (self-registration) | 201, the merchant with `api_key` and `api_secret`, shown once |
//! | `GET /api/v1/merchants/{id}` | own key | the merchant |
//! | `PUT /api/v1/merchants/{id}` | own key | the updated merchant |
//! | `POST /api/v1/merchants/{id}/regenerate-keys` | own key | new `api_key` and `api_secret`; the old ones stop at once |
//! | `GET /api/v1/merchants/{id}/stats` | own key | payment counts, volume, success rate |
//! | `POST /api/v1/payments` | key | 201, the payment: its own address, EIP-681 `payment_url`, PNG `qr_code` |
//! | `GET /api/v1/payments` | key | the merchant's payments, filtered and paginated |
//! | `GET /api/v1/payments/{id}` | key | one payment, with live status and confirmations |
//! | `GET /api/v1/payments/{id}/qrcode` | key | the QR code as `image/png` |
//! | `POST /api/v1/webhooks/test` | key | queues a test callback to the merchant's `webhook_url` |
//! | `GET /api/v1/webhooks/stats?days=` | key | delivery statistics |
//! | `GET /health` | none | `{status, version, database, blockchain, timestamp}` (no envelope, as the seed) |
//! | `GET /api/v1/status` | none | the same facts in the envelope |
//! | `GET /api/v1/network/status` | none | chain id, head block, gas price, syncing, confirmation blocks |
//!
//! Every other answer is the envelope `{success, data, error, timestamp}` (RFC 3339 UTC).
//! Creations answer 201 (the seed's status table lists it), everything else 200. A
//! missing or unknown key is 401; a merchant route naming another merchant is 403; a
//! payment of another merchant is 404, like an unknown one (the host makes the two
//! indistinguishable on purpose).
//!
//! # Merchants and keys
//!
//! A merchant registers itself (the operator closes this with
//! `registration_open = false`; operator-created merchants, `polypay merchant create
//! --plugin wopay`, get the same two credentials). The `api_key` (`wopay_live_` + 32 hex)
//! authenticates requests; the `api_secret` (`wopay_secret_` + 64 hex) keys the callback
//! signature. Both are shown once; the host keeps them hashed or encrypted, and the secret
//! never enters this plugin again: callbacks are signed inside the host by credential id.
//! `regenerate-keys` rotates both; the old ones stop working at once, and callbacks
//! rendered afterwards (retries included) are signed with the new secret.
//!
//! # Payments
//!
//! Each payment gets its own address, derived from the operator's extended public key
//! (setting `xpub`: the key at `m/44'/60'/0'/0` of the operator's wallet; payment `n`
//! goes to `m/44'/60'/0'/0/n`). The amount is the merchant's decimal string, kept exactly
//! as sent and converted by the host with the asset's decimals (more decimals than the
//! asset has are refused, never rounded). `currency` is any asset the network configures
//! (ETH and USDT in the seed). `order_id` is unique per merchant (409 on a duplicate).
//!
//! Statuses, from the host lifecycle: `pending` (waiting, also while partly paid),
//! `confirmed` (host `confirming`: paid on chain, fewer confirmations than required),
//! `completed` (host `paid`), `expired`, and `failed` (host `cancelled`).
//!
//! # Callbacks
//!
//! On every change of status (not on creation), `POST` to the payment's `callback_url` (else the merchant's
//! `webhook_url`) with `{event_type: "payment_status_changed", timestamp, data}`, headers
//! `X-WoPay-Signature: sha256=<hex HMAC-SHA256(raw body, api_secret)>` and
//! `X-WoPay-Webhook-Id`: a UUID derived from the host's event id and the merchant, so it
//! is the same on every retry of one event and differs between events. Any 2xx accepts;
//! otherwise retried after 5, 15, 45, 135 and 405 s (setting `retry_delays_secs`), then
//! given up.
//!
//! # Rate limits
//!
//! 10 requests per second per API key, 5 per second per merchant on the webhook
//! endpoints, and 1,000 per hour per client IP (settings `key_requests_per_second`,
//! `webhook_requests_per_second`, `ip_requests_per_hour`) → 429 with `Retry-After`.
//! `/health` is not limited (load balancers poll it).

//! # Settings
//!
//! ```toml
//! [[plugins]]
//! name = "wopay"
//! wasm = "target/wasm-plugins/wasm32-wasip2/release/polypay_wopay.wasm"
//! settings = { network = "ethereum", xpub = "xpub6…" }
//! ```
//!
//! - `network` (default `ethereum`): the EVM `[[chains]]` entry payments are taken on;
//!   its assets are the accepted currencies, its chain id goes into `payment_url`.
//! - `xpub`: the operator's extended public key (above); without it, creating a payment
//!   answers 503.
//! - `registration_open` (default true), `default_expires_in` (3600 s),
//!   `key_requests_per_second` (10), `webhook_requests_per_second` (5),
//!   `ip_requests_per_hour` (1000), `retry_delays_secs` ([5, 15, 45, 135, 405]; the
//!   number of entries is the number of retries), `volume_asset` (USDT: the asset whose
//!   paid volume `total_volume` reports, since volumes of different assets do not add up).

mod envelope;
mod merchant;
mod payment;
mod qr;
mod system;
mod webhook;

use envelope::error;
use polypay_plugin_sdk::merchants::{CredentialTemplate, SecretFormat};
use polypay_plugin_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Credential kind of the key presented in `X-API-Key`.
pub const KEY_KIND: &str = "api-key";
/// Credential kind of the secret that keys callback signatures.
pub const SECRET_KIND: &str = "api-secret";
/// The request header carrying the API key.
pub const KEY_HEADER: &str = "x-api-key";

/// `wopay_live_` + 32 hex digits.
pub fn key_format() -> SecretFormat {
    SecretFormat::hex("wopay_live_", 16)
}

/// `wopay_secret_` + 64 hex digits.
pub fn secret_format() -> SecretFormat {
    SecretFormat::hex("wopay_secret_", 32)
}

pub struct WoPay;

impl Plugin for WoPay {
    const NAME: &'static str = "wopay";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new()
            .post("/api/v1/merchants", guarded(merchant::register))
            .get("/api/v1/merchants/{id}", guarded(merchant::get))
            .put("/api/v1/merchants/{id}", guarded(merchant::update))
            .post(
                "/api/v1/merchants/{id}/regenerate-keys",
                guarded(merchant::regenerate_keys),
            )
            .get("/api/v1/merchants/{id}/stats", guarded(merchant::stats))
            .post("/api/v1/payments", guarded(payment::create))
            .get("/api/v1/payments", guarded(payment::list))
            .get("/api/v1/payments/{id}", guarded(payment::get))
            .get("/api/v1/payments/{id}/qrcode", guarded(payment::qrcode))
            .post("/api/v1/webhooks/test", guarded(webhook::test))
            .get("/api/v1/webhooks/stats", guarded(webhook::stats))
            .get("/health", system::health)
            .get("/api/v1/status", guarded(system::status))
            .get("/api/v1/network/status", guarded(system::network_status))
            .fallback(|_: &Request| envelope::not_found("Endpoint"))
    }

    fn openapi() -> Option<&'static str> {
        Some(include_str!("../openapi.json"))
    }

    fn settings_schema() -> Option<Value> {
        Some(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "network": { "type": "string" },
                "xpub": { "type": "string" },
                "registration_open": { "type": "boolean" },
                "default_expires_in": { "type": "integer", "minimum": 60, "maximum": 2_592_000 },
                "key_requests_per_second": { "type": "integer", "minimum": 1 },
                "ip_requests_per_hour": { "type": "integer", "minimum": 1 },
                "webhook_requests_per_second": { "type": "integer", "minimum": 1 },
                "retry_delays_secs": { "type": "array", "items": { "type": "integer", "minimum": 1 } },
                "volume_asset": { "type": "string" }
            }
        }))
    }

    fn credentials() -> Vec<CredentialTemplate> {
        vec![
            CredentialTemplate {
                kind: KEY_KIND.into(),
                secret: key_format(),
                public_id: None,
            },
            CredentialTemplate {
                kind: SECRET_KIND.into(),
                secret: secret_format(),
                public_id: None,
            },
        ]
    }

    fn render_webhook(event: &InvoiceEvent, attempt: u32) -> Option<WebhookDelivery> {
        webhook::render(event, attempt)
    }
}

polypay_plugin_sdk::export_plugin!(WoPay);

/// The operator's settings of this plugin.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The network payments are taken on (`[[chains]]` name).
    #[serde(default = "default_network")]
    pub network: String,
    /// The extended public key payment addresses are derived from.
    #[serde(default)]
    pub xpub: Option<String>,
    #[serde(default = "yes")]
    pub registration_open: bool,
    #[serde(default = "default_expires_in")]
    pub default_expires_in: u32,
    #[serde(default = "default_key_rate")]
    pub key_requests_per_second: u32,
    #[serde(default = "default_ip_rate")]
    pub ip_requests_per_hour: u32,
    /// The seed's tighter limit on the webhook endpoints, per merchant.
    #[serde(default = "default_webhook_rate")]
    pub webhook_requests_per_second: u32,
    #[serde(default = "default_retry_delays")]
    pub retry_delays_secs: Vec<u32>,
    /// The asset whose paid volume the merchant stats report as `total_volume`.
    #[serde(default = "default_volume_asset")]
    pub volume_asset: String,
}

fn default_network() -> String {
    "ethereum".into()
}
fn yes() -> bool {
    true
}
fn default_expires_in() -> u32 {
    3600
}
fn default_key_rate() -> u32 {
    10
}
fn default_ip_rate() -> u32 {
    1000
}
fn default_webhook_rate() -> u32 {
    5
}
fn default_retry_delays() -> Vec<u32> {
    vec![5, 15, 45, 135, 405]
}
fn default_volume_asset() -> String {
    "USDT".into()
}

pub fn settings() -> Result<Settings, Response> {
    context::settings().map_err(|e| {
        log::log(
            log::Level::Error,
            "the plugin's settings are invalid",
            &[("error".into(), e.to_string())],
        );
        error(500, "Internal server error")
    })
}

type Handler = fn(&Request, &Settings) -> Result<Response, Response>;

/// A handler behind the per-IP rate limit, with the settings loaded.
fn guarded(handler: Handler) -> impl Fn(&Request) -> Response {
    move |req: &Request| {
        let run = || {
            let settings = settings()?;
            if let Some(ip) = &req.client_ip {
                limit(
                    &format!("ip:{ip}"),
                    settings.ip_requests_per_hour,
                    3_600_000,
                )?;
            }
            handler(req, &settings)
        };
        run().into_response()
    }
}

/// One hit on `bucket`: `Err(429)` beyond `limit` per `window_ms`.
pub fn limit(bucket: &str, limit: u32, window_ms: u64) -> Result<(), Response> {
    match rate_limit::check(bucket, limit, window_ms) {
        Ok(d) if d.allowed => Ok(()),
        Ok(d) => Err(envelope::too_many_requests(d.reset_after_ms)),
        Err(e) => Err(envelope::host_failure("rate-limit.check", e)),
    }
}

/// Authenticates the request's `X-API-Key` (after its per-key rate limit) and returns
/// the merchant it belongs to.
pub fn authenticate(req: &Request, settings: &Settings) -> Result<merchants::Merchant, Response> {
    let key = req
        .header(KEY_HEADER)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| envelope::unauthorized("Missing API key (X-API-Key header)"))?;
    // The bucket is named by a digest of the key: the key itself is a secret.
    let digest = crypto::digest(crypto::DigestAlgorithm::Sha256, key.as_bytes());
    limit(
        &format!("key:{}", polypay_plugin_sdk::hex(&digest[..16])),
        settings.key_requests_per_second,
        1000,
    )?;
    merchants::authenticate(KEY_KIND, key).map_err(|e| match e {
        HostError::Unauthorized | HostError::NotFound | HostError::Forbidden => {
            envelope::unauthorized("Invalid API key")
        }
        other => envelope::host_failure("merchants.authenticate", other),
    })?;
    merchants::current().ok_or_else(|| error(500, "Internal server error"))
}

/// A JSON request body that must be an object.
pub struct Body(Map<String, Value>);

impl Body {
    pub fn parse(req: &Request) -> Result<Body, Response> {
        if req.body.is_empty() {
            return Err(envelope::bad_request("Request body is required"));
        }
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(map)) => Ok(Body(map)),
            Ok(_) => Err(envelope::bad_request("Request body must be a JSON object")),
            Err(_) => Err(envelope::bad_request("Invalid JSON body")),
        }
    }

    /// The body of a request that may have none (`{}` then).
    pub fn parse_optional(req: &Request) -> Result<Body, Response> {
        if req.body.iter().all(u8::is_ascii_whitespace) {
            Ok(Body(Map::new()))
        } else {
            Body::parse(req)
        }
    }

    pub fn value(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A string field; `null` counts as absent.
    pub fn string(&self, field: &str) -> Result<Option<&str>, Response> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(envelope::bad_request(&format!("{field} must be a string"))),
        }
    }

    pub fn required_string(&self, field: &str) -> Result<&str, Response> {
        self.string(field)?
            .ok_or_else(|| envelope::bad_request(&format!("{field} is required")))
    }
}

/// `http://` or `https://` with a host, at most 2048 bytes, no whitespace.
pub fn is_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    text.len() <= 2048
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && rest.is_some_and(|r| {
            let host = r.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !host.contains('@')
        })
}

/// `local@domain.tld`: one `@`, a dot in the domain, no whitespace, at most 254 bytes.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && text.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_emails_are_checked() {
        assert!(is_url("https://mystore.com/webhook"));
        assert!(is_url("http://127.0.0.1:8080/cb?x=1"));
        for bad in [
            "",
            "ftp://x",
            "https://",
            "https:// x",
            "https://u@evil",
            "mystore.com",
        ] {
            assert!(!is_url(bad), "{bad}");
        }
        assert!(is_email("store@example.com"));
        for bad in [
            "",
            "store",
            "@example.com",
            "a@b",
            "a@@b.c",
            "a b@c.d",
            "a@.c",
            "a@c.",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
