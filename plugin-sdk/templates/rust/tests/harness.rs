//! Unit tests on the SDK's native harness: the plugin runs in-process against an
//! in-memory host (`cargo test`, no server, no wasm).

use polypay_plugin_sdk::chains::{AssetInfo, NetworkInfo};
use polypay_plugin_sdk::prelude::*;
use polypay_plugin_sdk::testing::{Harness, undocumented_routes};
use polypay_plugin_sdk::webhooks::EventKind;
use serde_json::{Value, json};

use {{crate_name}}::KEY_KIND;

/// The plugin under test.
type Dialect = {{crate_name}}::{{type_name}};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn harness() -> Harness<Dialect> {
    let h = Harness::<Dialect>::new();
    h.host()
        .set_settings(json!({ "receiving_address": "0x1111111111111111111111111111111111111111" }));
    h.host().add_network(NetworkInfo {
        name: "ethereum".into(),
        family: "evm".into(),
        chain_id: Some(1),
        required_confirmations: 1,
        assets: vec![AssetInfo {
            symbol: "USDT".into(),
            decimals: 6,
            contract: None,
        }],
        payment_contracts: vec![],
    });
    let merchant = h.host().add_merchant("shop");
    h.host().add_credential(&merchant, KEY_KIND, None, KEY);
    h
}

fn create(h: &Harness<Dialect>, key: Option<&str>) -> Response {
    let mut request = h.post("/v1/invoices").json(&json!({
        "order_id": "order-1", "amount": "10.5", "chain": "ethereum", "asset": "USDT",
        "notify_url": "https://shop.example/notify"
    }));
    if let Some(key) = key {
        request = request.header("authorization", &format!("Bearer {key}"));
    }
    request.send()
}

#[test]
fn creating_an_invoice_needs_a_known_api_key() {
    let h = harness();
    assert_eq!(create(&h, None).status, 401);
    assert_eq!(create(&h, Some("not-a-key")).status, 401);
    assert!(h.host().invoices().is_empty());

    let response = create(&h, Some(KEY));
    assert_eq!(response.status, 200, "{}", response.body_text());
    let body: Value = response.body_json().unwrap();
    let invoice = &h.host().invoices()[0];
    assert_eq!(body["id"], invoice.id.as_str());
    assert_eq!(body["status"], "waiting");
    assert_eq!(invoice.merchant_order_id.as_deref(), Some("order-1"));
}

#[test]
fn a_status_change_is_sent_signed_to_the_notify_url() {
    let h = harness();
    create(&h, Some(KEY));
    let mut invoice = h.host().invoices()[0].clone();
    invoice.status = InvoiceStatus::Paid;
    let event = InvoiceEvent {
        id: "event-1".into(),
        kind: EventKind::StatusChanged,
        invoice,
        previous_status: Some(InvoiceStatus::Pending),
        occurred_at: 0,
        url: "https://shop.example/notify".into(),
    };
    let delivery = h.render_webhook(event, 1).expect("a callback");
    assert_eq!(delivery.request.url, "https://shop.example/notify");
    let body: Value = serde_json::from_slice(&delivery.request.body).unwrap();
    assert_eq!(body["status"], "paid");
    let signature = delivery
        .request
        .headers
        .iter()
        .find(|(name, _)| name == "x-signature");
    assert_eq!(signature.map(|(_, value)| value.len()), Some(64));
}

#[test]
fn the_openapi_document_describes_every_route() {
    assert_eq!(undocumented_routes::<Dialect>(), Vec::<String>::new());
}
