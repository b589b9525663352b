//! `trino`: the Trino Network pay-srv invoice API as a polypay dialect plugin.
//!
//! The specification is `seeds/000_trino_pay_srv.md` (its examples are normative) and the
//! trino section of DIALECTS.md. Three routes:
//!
//! | route | auth | answer |
//! |-------|------|--------|
//! | `POST /api/v1/invoices/create` | bearer token | `{invoice_id, jump_url}`: the invoice and its hosted payment page |
//! | `GET /api/v1/invoices/payment/{id}` | none (feeds the payment page) | `{amount, jump_url, network, recipient, title}` |
//! | `GET /api/v1/invoices/{id}` | bearer token, owner only | `{metadata, status, txn_hash}` |
//!
//! # Merchants and tokens
//!
//! pay-srv issued each merchant an opaque UUID token, presented as
//! `Authorization: Bearer <token>`. Here the operator creates the merchant with
//! `polypay merchant create --name NAME --plugin trino`, which prints the token once
//! (credential kind `bearer`, declared in this plugin's manifest). A token that is not a
//! UUID is `MALFORMED_TOKEN` (400); a missing or unknown one is 401.
//!
//! # Payment
//!
//! Invoices are matched by `contract-reference`: the payer calls the network's payment
//! contract `pay(invoice_id, recipient, amount)`, which moves the network's token from the
//! payer to the merchant's `recipient` and emits `Pay(invoice_id, recipient, amount)`. The
//! host watches the contract configured for the network (`[[chains]]` →
//! `payment_contracts`) and matches id, recipient and amount. `network` must name a
//! configured EVM network with a payment contract; the asset is that contract's (setting
//! `assets` picks one where a network has several).
//!
//! # Statuses
//!
//! pay-srv knows `unpaid`, `paid` and `notified`. Host `pending`, `confirming`, `expired`
//! and `cancelled` are all `unpaid` (pay-srv had no expiry; a payment after the
//! invoice's expiry still counts within the host's monitoring window and is then `paid`);
//! host `paid` is `paid`, and `notified` once the merchant accepted the callback.
//!
//! # Callback
//!
//! When an invoice becomes paid: `POST notify_url` with the body exactly
//! `{"invoice_id":"…","status":"paid"}` and the header
//! `trino-pay-Sig: sha256=<hex HMAC-SHA256(body)>` keyed with the merchant's current token
//! (signed inside the host: the token never enters the plugin). Only HTTP 200 accepts it;
//! anything else is retried on the host's webhook schedule.
//!
//! # Settings
//!
//! ```toml
//! [[plugins]]
//! name = "trino"
//! wasm = "target/wasm-plugins/wasm32-wasip2/release/polypay_trino.wasm"
//! settings = { expires_in_secs = 86400, assets = { goerli = "USDT" } }
//! ```
//!
//! - `expires_in_secs` (default 86400): how long the payment page offers payment.
//! - `assets`: per network, which payment contract's asset to use when there are several
//!   (default: the network's first payment contract).

mod create;
mod errors;

use create::{CreateInvoice, Refusal};
use errors::FieldError;
use polypay_plugin_sdk::invoices::{DeliveryState, Invoice};
use polypay_plugin_sdk::is_uuid;
use polypay_plugin_sdk::merchants::{CredentialTemplate, SecretFormat};
use polypay_plugin_sdk::prelude::*;
use polypay_plugin_sdk::webhooks::EventKind;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The credential kind of merchant tokens.
pub const TOKEN_KIND: &str = "bearer";
/// The callback signature header, spelled as pay-srv sent it.
pub const SIGNATURE_HEADER: &str = "trino-pay-Sig";
/// Default time a payment page offers payment.
pub const DEFAULT_EXPIRES_IN_SECS: u32 = 24 * 3600;

pub struct Trino;

impl Plugin for Trino {
    const NAME: &'static str = "trino";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new()
            .post("/api/v1/invoices/create", create_invoice)
            .get("/api/v1/invoices/payment/{id}", payment_info)
            .get("/api/v1/invoices/{id}", invoice_status)
    }

    fn openapi() -> Option<&'static str> {
        Some(include_str!("../openapi.json"))
    }

    fn settings_schema() -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "expires_in_secs": { "type": "integer", "minimum": 60, "maximum": 2_592_000 },
                "assets": { "type": "object", "additionalProperties": { "type": "string" } }
            }
        }))
    }

    fn credentials() -> Vec<CredentialTemplate> {
        vec![CredentialTemplate {
            kind: TOKEN_KIND.into(),
            secret: SecretFormat::uuid_v4(),
            public_id: None,
        }]
    }

    fn render_webhook(event: &InvoiceEvent, _attempt: u32) -> Option<WebhookDelivery> {
        let invoice = &event.invoice;
        let becomes_paid = invoice.status == InvoiceStatus::Paid
            && event.previous_status != Some(InvoiceStatus::Paid);
        if event.kind == EventKind::StatusChanged && !becomes_paid {
            return None;
        }
        let body = serde_json::to_vec(&Callback {
            invoice_id: &invoice.id,
            status: status_name(invoice),
        })
        .ok()?;
        let signature = match sign(&invoice.merchant_id, &body) {
            Ok(signature) => signature,
            Err(why) => {
                log::log(
                    log::Level::Error,
                    "cannot sign the callback; it is not sent",
                    &[("invoice".into(), invoice.id.clone()), ("why".into(), why)],
                );
                return None;
            }
        };
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url: event.url.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    (SIGNATURE_HEADER.into(), signature),
                ],
                body,
            },
            accept: Acceptance::ExactlyOk,
            // Some(0): retry on the host's schedule until it gives up.
            retry_after_secs: Some(0),
        })
    }
}

polypay_plugin_sdk::export_plugin!(Trino);

#[derive(Serialize)]
struct Callback<'a> {
    invoice_id: &'a str,
    status: &'static str,
}

/// `sha256=<hex HMAC-SHA256(body)>` keyed with the merchant's token, by credential id.
fn sign(merchant_id: &str, body: &[u8]) -> Result<String, String> {
    let token = merchants::list_credentials(merchant_id)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| c.kind == TOKEN_KIND)
        .max_by_key(|c| c.created_at)
        .ok_or("the merchant has no live token")?;
    let mac = crypto::hmac_sha256_sign(&token.id, body).map_err(|e| e.to_string())?;
    Ok(format!("sha256={}", polypay_plugin_sdk::hex(&mac)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_expiry")]
    expires_in_secs: u32,
    #[serde(default)]
    assets: BTreeMap<String, String>,
}

fn default_expiry() -> u32 {
    DEFAULT_EXPIRES_IN_SECS
}

fn settings() -> Result<Settings, Response> {
    context::settings().map_err(|e| {
        log::log(
            log::Level::Error,
            "the plugin's settings are invalid",
            &[("error".into(), e.to_string())],
        );
        errors::host_failure("settings", HostError::Invalid(e.to_string()))
    })
}

/// pay-srv's status name of an invoice.
pub fn status_name(invoice: &Invoice) -> &'static str {
    match invoice.status {
        InvoiceStatus::Paid if invoice.webhook.state == DeliveryState::Delivered => "notified",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Pending
        | InvoiceStatus::Confirming
        | InvoiceStatus::Expired
        | InvoiceStatus::Cancelled => "unpaid",
    }
}

/// Authenticates the request's bearer token as its merchant.
fn authenticate(req: &Request) -> Result<(), Response> {
    if req.header("authorization").is_none() {
        return Err(errors::unauthorized(
            "missing Authorization: Bearer <token>",
        ));
    }
    let token = req
        .bearer_token()
        .ok_or_else(|| errors::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if !is_uuid(token) {
        return Err(errors::malformed_token());
    }
    merchants::authenticate(TOKEN_KIND, token)
        .map(|_| ())
        .map_err(|e| match e {
            HostError::Unauthorized | HostError::NotFound | HostError::Forbidden => {
                errors::unauthorized("unknown or revoked token")
            }
            other => errors::host_failure("authenticate", other),
        })
}

/// The `{id}` path parameter, which must be an invoice id (a UUID).
fn invoice_id(req: &Request) -> Result<&str, Response> {
    let id = req.param("id").unwrap_or_default();
    if is_uuid(id) {
        Ok(id)
    } else {
        Err(errors::validation(&[FieldError::path(
            "id",
            format!("id in path must be of type uuid: \"{id}\""),
        )]))
    }
}

fn load_invoice(id: &str) -> Result<Invoice, Response> {
    invoices::get(id).map_err(|e| match e {
        HostError::NotFound | HostError::Unauthorized | HostError::Forbidden => {
            errors::invoice_not_found()
        }
        other => errors::host_failure("invoices.get", other),
    })
}

/// The EVM networks invoices can be created on, with the asset of their payment contract.
fn payable_networks(settings: &Settings) -> Vec<(String, String)> {
    chains::networks()
        .into_iter()
        .filter(|n| n.family == "evm")
        .filter_map(|n| {
            let asset = match settings.assets.get(&n.name) {
                Some(wanted) => n.payment_contracts.iter().find(|p| &p.asset == wanted),
                None => n.payment_contracts.first(),
            }?;
            Some((n.name.clone(), asset.asset.clone()))
        })
        .collect()
}

#[derive(Serialize)]
struct Created<'a> {
    invoice_id: &'a str,
    jump_url: &'a str,
}

fn create_invoice(req: &Request) -> Result<Response, Response> {
    authenticate(req)?;
    let body: CreateInvoice = create::parse(&req.body).map_err(|refusal| match refusal {
        Refusal::NotAnObject(detail) => errors::bad_request(&detail),
        Refusal::Fields(fields) => errors::validation(&fields),
    })?;
    if !create::is_evm_address(&body.recipient) {
        return Err(errors::invalid_recipient(
            "recipient must be 0x followed by 40 hex digits",
        ));
    }
    let settings = settings()?;
    let networks = payable_networks(&settings);
    let Some((network, asset)) = networks.iter().find(|(name, _)| *name == body.network) else {
        let names: Vec<&str> = networks.iter().map(|(n, _)| n.as_str()).collect();
        let error = if names.is_empty() {
            "network in body is not supported: no network with a payment contract is configured"
                .to_owned()
        } else {
            format!("network in body should be one of [{}]", names.join(" "))
        };
        return Err(errors::validation(&[FieldError::body("network", error)]));
    };
    let plugin_data = serde_json::json!({
        "title": body.title,
        "metadata": body.metadata,
        "jump_url": body.jump_url,
    });
    let invoice = invoices::create(&NewInvoice {
        merchant_order_id: None,
        price: Price::BaseUnits(body.amount),
        chain: network.clone(),
        asset: asset.clone(),
        matching: MatchStrategy::ContractReference(body.recipient),
        expires_in_secs: settings.expires_in_secs,
        notify_url: Some(body.notify_url),
        return_url: Some(body.jump_url),
        plugin_data: Some(plugin_data.to_string()),
    })
    .map_err(|e| match e {
        HostError::Invalid(why) if why.starts_with("invalid address") => {
            errors::invalid_recipient(&why)
        }
        HostError::Invalid(why) => errors::bad_request(&why),
        HostError::Unsupported(why) => errors::validation(&[FieldError::body("network", why)]),
        other => errors::host_failure("invoices.create", other),
    })?;
    Ok(Response::json(
        200,
        &Created {
            invoice_id: &invoice.id,
            jump_url: &invoice.payment_page_url,
        },
    ))
}

#[derive(Serialize)]
struct PaymentInfo<'a> {
    amount: &'a RawValue,
    jump_url: &'a str,
    network: &'a str,
    recipient: &'a str,
    title: &'a str,
}

/// Public: what the payment page needs.
fn payment_info(req: &Request) -> Result<Response, Response> {
    let invoice = load_invoice(invoice_id(req)?)?;
    let data: serde_json::Value = serde_json::from_str(&invoice.plugin_data).unwrap_or_default();
    // The host keeps amounts as decimal digits, which are a valid JSON number as they are.
    let amount = RawValue::from_string(invoice.amount_due.clone())
        .map_err(|e| errors::host_failure("amount", HostError::Invalid(e.to_string())))?;
    Ok(Response::json(
        200,
        &PaymentInfo {
            amount: &amount,
            jump_url: data["jump_url"]
                .as_str()
                .or(invoice.return_url.as_deref())
                .unwrap_or_default(),
            network: &invoice.chain,
            recipient: &invoice.pay_to,
            title: data["title"].as_str().unwrap_or_default(),
        },
    ))
}

#[derive(Serialize)]
struct Status<'a> {
    metadata: &'a str,
    status: &'static str,
    /// The paying transaction; empty until one is seen.
    txn_hash: &'a str,
}

/// The owner's view of an invoice's outcome.
fn invoice_status(req: &Request) -> Result<Response, Response> {
    authenticate(req)?;
    let invoice = load_invoice(invoice_id(req)?)?;
    let data: serde_json::Value = serde_json::from_str(&invoice.plugin_data).unwrap_or_default();
    Ok(Response::json(
        200,
        &Status {
            metadata: data["metadata"].as_str().unwrap_or_default(),
            status: status_name(&invoice),
            txn_hash: invoice.txn_hash.as_deref().unwrap_or_default(),
        },
    ))
}

#[cfg(test)]
mod tests {
    //! The dialect's logic against the SDK's in-memory host. The conformance tests that
    //! replay the seed's examples against the real server are in
    //! `host/tests/trino_api.rs`.
    use super::*;
    use polypay_plugin_sdk::chains::{AssetInfo, NetworkInfo, PaymentContract};
    use polypay_plugin_sdk::testing::Harness;
    use serde_json::{Value, json};

    const TOKEN: &str = "f140004f-1b51-4abe-a0d4-58beef45d70c";

    fn harness() -> (Harness<Trino>, String) {
        let h = Harness::<Trino>::new();
        h.host().add_network(NetworkInfo {
            name: "goerli".into(),
            family: "evm".into(),
            chain_id: Some(5),
            required_confirmations: 1,
            assets: vec![AssetInfo {
                symbol: "USDT".into(),
                decimals: 6,
                contract: Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into()),
            }],
            payment_contracts: vec![PaymentContract {
                asset: "USDT".into(),
                address: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512".into(),
            }],
        });
        let merchant = h.host().add_merchant("shop");
        h.host().add_credential(&merchant, TOKEN_KIND, None, TOKEN);
        (h, merchant)
    }

    /// Creates the seed's invoice as the merchant.
    fn create_seed_invoice(h: &Harness<Trino>) -> Response {
        h.post("/api/v1/invoices/create")
            .header("authorization", &format!("Bearer {TOKEN}"))
            .json(&crate::create::tests::seed_body())
            .send()
    }

    #[test]
    fn operator_merchants_get_a_uuid_bearer_token() {
        let h = Harness::<Trino>::new();
        let manifest = h.manifest();
        assert_eq!(manifest.credentials.len(), 1);
        assert_eq!(manifest.credentials[0].kind, "bearer");
        assert_eq!(
            manifest.credentials[0].secret.encoding,
            polypay_plugin_sdk::merchants::SecretEncoding::UuidV4
        );
    }

    #[test]
    fn created_invoice_uses_the_networks_payment_contract_and_keeps_the_dialect_fields() {
        let (h, merchant) = harness();
        let r = create_seed_invoice(&h);
        assert_eq!(r.status, 200, "{}", r.body_text());
        let invoice = &h.host().invoices()[0];
        assert_eq!(invoice.merchant_id, merchant);
        assert_eq!(
            (invoice.chain.as_str(), invoice.asset.as_str()),
            ("goerli", "USDT")
        );
        assert_eq!(invoice.amount_due, "10000000");
        assert_eq!(
            invoice.return_url.as_deref(),
            Some("https://trino.network/#/order/2022062214060769050")
        );
        let data: Value = serde_json::from_str(&invoice.plugin_data).unwrap();
        assert_eq!(data["title"], "支付订单NO：23435435646");
        assert_eq!(data["metadata"], "e29c1B698F98BdFe6Ca4012dEE6FB350D73E40AE");
    }

    #[test]
    fn a_server_without_payment_networks_says_so() {
        let h = Harness::<Trino>::new();
        let merchant = h.host().add_merchant("shop");
        h.host().add_credential(&merchant, TOKEN_KIND, None, TOKEN);
        let r = create_seed_invoice(&h);
        assert_eq!(r.status, 400);
        assert_eq!(
            r.body_json::<Value>().unwrap()["validationErrors"][0]["error"],
            "network in body is not supported: no network with a payment contract is configured"
        );
    }

    #[test]
    fn statuses_map_to_unpaid_paid_notified() {
        let (h, _) = harness();
        create_seed_invoice(&h);
        let mut invoice = h.host().invoices()[0].clone();
        for (status, webhook, name) in [
            (InvoiceStatus::Pending, DeliveryState::None, "unpaid"),
            (InvoiceStatus::Confirming, DeliveryState::None, "unpaid"),
            (InvoiceStatus::Expired, DeliveryState::None, "unpaid"),
            (InvoiceStatus::Paid, DeliveryState::Pending, "paid"),
            (InvoiceStatus::Paid, DeliveryState::Failed, "paid"),
            (InvoiceStatus::Paid, DeliveryState::Delivered, "notified"),
        ] {
            invoice.status = status;
            invoice.webhook.state = webhook;
            assert_eq!(status_name(&invoice), name, "{status:?} {webhook:?}");
        }
    }

    #[test]
    fn only_the_transition_to_paid_sends_a_callback() {
        let (h, _) = harness();
        create_seed_invoice(&h);
        let mut invoice = h.host().invoices()[0].clone();
        let event = |invoice: &Invoice, previous| InvoiceEvent {
            id: "event-1".into(),
            kind: EventKind::StatusChanged,
            invoice: invoice.clone(),
            previous_status: previous,
            occurred_at: 0,
            url: "https://trino.network/pay/notify".into(),
        };
        invoice.status = InvoiceStatus::Confirming;
        assert!(
            h.render_webhook(event(&invoice, Some(InvoiceStatus::Pending)), 1)
                .is_none()
        );
        invoice.status = InvoiceStatus::Paid;
        let delivery = h
            .render_webhook(event(&invoice, Some(InvoiceStatus::Confirming)), 1)
            .expect("a callback for paid");
        assert_eq!(
            String::from_utf8(delivery.request.body.clone()).unwrap(),
            format!(r#"{{"invoice_id":"{}","status":"paid"}}"#, invoice.id)
        );
        let signature = delivery
            .request
            .headers
            .iter()
            .find(|(k, _)| k == SIGNATURE_HEADER)
            .map(|(_, v)| v.clone())
            .expect("signed");
        assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
        assert_eq!(delivery.accept, Acceptance::ExactlyOk);
    }

    #[test]
    fn tokens_that_are_not_uuids_are_malformed_and_unknown_ones_unauthorized() {
        let (h, _) = harness();
        let status = |auth: Option<&str>| {
            let mut r = h.get("/api/v1/invoices/7503cd8a-c921-4368-a32d-6c1d01d86da9");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let r = r.send();
            (r.status, r.body_json::<Value>().unwrap()["type"].clone())
        };
        assert_eq!(status(None), (401, json!("generic")));
        assert_eq!(
            status(Some("Bearer not-a-uuid")),
            (400, json!("MALFORMED_TOKEN"))
        );
        assert_eq!(
            status(Some("Bearer 00000000-0000-4000-8000-000000000000")),
            (401, json!("generic"))
        );
        assert_eq!(
            status(Some(&format!("Bearer {TOKEN}"))),
            (404, json!("INVOICE_NOT_FOUND"))
        );
    }
}
