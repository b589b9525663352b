//! Plugin `bhop-pay`: the user side of a custodial exchange's pay API
//! (`seeds/002_custodial_user_pay.md`) and its org side (DIALECTS.md). Payers are users
//! holding balances in polypay's ledger; an org (a polypay merchant) creates an order for a
//! user, the user loads it, confirms with a second factor and pays it from its balance.
//! The host keeps the money (`ledger`) and the second factor (`two-factor`); this plugin
//! keeps the dialect: routes, signatures, field names, status names, errors, callbacks.
//!
//! # Authentication (not in the seed; decided here)
//!
//! Every request is signed in the exchange's style: header `X-ACCESS-KEY: <access key>`,
//! parameter `timestamp` (unix milliseconds) and parameter `signature` = lower-case hex
//! HMAC-SHA256(secret, every other parameter — query and form-urlencoded body together —
//! sorted by key and joined as `k=v&k=v`, values as decoded). A timestamp more than
//! [`auth::MAX_SKEW_MS`] from the host's clock is refused (`-1021`), and so is a signature
//! seen before within the window (`-1022`; remembered in the plugin's kv store with a
//! TTL). Signatures are checked by the host (`merchants.authenticate-signed`), in constant
//! time; secrets never enter the plugin.
//! - Orgs sign with their `api-key` credential (access key = its public id), issued by the
//!   operator's `polypay merchant create --plugin bhop-pay`.
//! - Users sign with a per-user key issued through the org API
//!   (`POST /api/v2/org/user/create`, an addition: the seed's users already exist in the
//!   exchange). A user key is a credential of kind `user-key` held by the org that
//!   created the user; the plugin remembers which user it names (kv). A user request is
//!   therefore authenticated as that org, and acts only as that user.
//!
//! # Shapes
//!
//! - User API: `{"status":0,"data":…}` as the seed's list example (the other examples show
//!   the `data`). Org API: `{"status":0,"msg":"Success","data":…}`. Errors everywhere:
//!   `{"code":<n>,"msg":"…"}` with HTTP 400/401/404 ([`error::ApiError`]).
//! - Ids (orders, items, users, challenges) are decimal strings of the host's 64-bit ids;
//!   amounts are decimal strings in the token's units, converted by the host exactly
//!   (negative, zero or over-precise amounts are refused, nothing written).
//! - `tokenId` is an asset symbol ("USDT"); settings map it to a network
//!   (`tokens = { USDT = "ethereum" }`), else the first configured network that has it.
//! - Statuses ([`status`]): 0 WAIT_FOR_PAYMENT 待支付, 1 COMPLETED 已完成, 2 PROCESSING
//!   支付中, 3 EXPIRED 已失效, 4 CANCELLED 已撤销. An order whose second factor failed three
//!   times is cancelled in the ledger (its locks released) and reported EXPIRED
//!   ("已失效", invalidated), as the seed says three failures invalidate it.
//! - Second factor: GA (TOTP) when the user has one, else MOBILE, else EMAIL; one-time codes
//!   go through the host's delivery to the user's contact. The context of a verification
//!   is the order id: three failures on one order exhaust it.
//! - Callbacks ([`callback`]): on completion, refund and cancel, to the order's
//!   `notify_url`, form-urlencoded, signed like requests with the org's `api-key`.

use polypay_plugin_sdk::merchants::CredentialTemplate;
use polypay_plugin_sdk::merchants::SecretFormat;
use polypay_plugin_sdk::prelude::*;

mod auth;
mod callback;
mod error;
mod org;
mod render;
mod status;
mod user;

/// The credential kind orgs sign with.
pub const ORG_KEY_KIND: &str = "api-key";
/// The credential kind users sign with.
pub const USER_KEY_KIND: &str = "user-key";

pub struct BhopPay;

impl Plugin for BhopPay {
    const NAME: &'static str = "bhop-pay";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new()
            .route(&["GET", "POST"], "/api/payment/orders", user::orders)
            .route(
                &["GET", "POST"],
                "/api/payment/order/load_pay_data",
                user::load_pay_data,
            )
            .post(
                "/api/payment/order/send_payment_verify_code",
                user::send_payment_verify_code,
            )
            .post("/api/payment/order/pay", user::pay)
            .post("/api/payment/order/quick_pay", user::quick_pay)
            .post("/api/v2/org/payment/order/create", org::create)
            .route(&["GET", "POST"], "/api/v2/org/payment/orders", org::orders)
            .route(
                &["GET", "POST"],
                "/api/v2/org/payment/order/detail",
                org::detail,
            )
            .post("/api/v2/org/payment/order/refund", org::refund)
            .post("/api/v2/org/payment/order/cancel", org::cancel)
            .post("/api/v2/org/user/create", org::create_user)
    }

    fn openapi() -> Option<&'static str> {
        Some(include_str!("../openapi.json"))
    }

    fn credentials() -> Vec<CredentialTemplate> {
        vec![CredentialTemplate {
            kind: ORG_KEY_KIND.into(),
            secret: SecretFormat::alphanumeric("", 48),
            public_id: Some(SecretFormat::alphanumeric("", 32)),
        }]
    }

    fn render_ledger_webhook(event: &ledger::LedgerEvent, attempt: u32) -> Option<WebhookDelivery> {
        callback::render(event, attempt)
    }
}

polypay_plugin_sdk::export_plugin!(BhopPay);

/// The plugin's settings.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(crate) struct Settings {
    /// tokenId → network.
    tokens: std::collections::BTreeMap<String, String>,
    /// Shown by authenticator apps as the issuer of GA seeds.
    issuer: Option<String>,
}

pub(crate) fn settings() -> Settings {
    context::settings().unwrap_or_default()
}

/// The network a token is held on.
pub(crate) fn network_of(token: &str) -> Option<String> {
    if let Some(network) = settings().tokens.get(token) {
        return Some(network.clone());
    }
    chains::networks()
        .into_iter()
        .find(|n| n.assets.iter().any(|a| a.symbol == token))
        .map(|n| n.name)
}
