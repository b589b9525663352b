use serde_json::json;

use super::*;

const USDT: &str = "0xdAC17F958D2ee523a2206206994597C13D831ec7";
const PAY_CONTRACT: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const MERCHANT: &str = "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af";

fn chains() -> Vec<ChainConfig> {
    vec![
        serde_json::from_value(json!({
            "name": "sepolia",
            "kind": "evm",
            "chain_id": 11155111,
            "rpc_url": "http://127.0.0.1:8545",
            "assets": [
                { "symbol": "ETH", "decimals": 18, "native": true },
                // Lowercase in the config: the view shows the EIP-55 form.
                { "symbol": "USDT", "decimals": 6, "contract": USDT.to_lowercase() },
            ],
            "payment_contracts": [{ "address": PAY_CONTRACT, "asset": "USDT" }],
        }))
        .unwrap(),
    ]
}

fn invoice(asset: &str, decimals: u8, amount: u64, strategy: MatchStrategy) -> Invoice {
    let mut new = crate::invoice::NewInvoice::new(
        "merchant-secret-id",
        "trino",
        "sepolia",
        (asset, decimals),
        Amount::from(amount),
        1_700_000_900_000,
    );
    new.merchant_order_id = Some("order-9".into());
    new.notify_url = Some("https://merchant.example/notify".into());
    new.return_url = Some("https://merchant.example/order/9".into());
    new.plugin_data = json!({ "title": "Order NO: 23435435646", "metadata": "secret-ish" });
    new.monitor_until = 1_700_001_800_000;
    let mut allocation = crate::invoice::Allocation::fixed_address(&new, MERCHANT, 3);
    allocation.strategy = strategy;
    Invoice::open("inv_123".into(), &new, &allocation, 1_700_000_000_000)
}

const NOW: i64 = 1_700_000_100_000;

#[test]
fn fiat_priced_invoice_view_shows_the_price_beside_the_amount_with_its_quote_expiry() {
    let mut priced = invoice("USDT", 6, 20_000_000, MatchStrategy::FixedAddress);
    priced.fiat = Some(crate::invoice::FiatQuote {
        amount: "20.00".into(),
        currency: "USD".into(),
        rate: "1".into(),
        source: "peg".into(),
        quoted_at: NOW - 10_000,
        valid_until: NOW + 110_000,
    });
    let view = CheckoutView::of(&priced, &chains(), NOW);
    let fiat = view.fiat.clone().expect("the fiat price is shown");
    assert_eq!(
        (fiat.amount.as_str(), fiat.currency.as_str()),
        ("20.00", "USD")
    );
    assert_eq!(fiat.rate, "1");
    assert_eq!(fiat.quote_valid_until, NOW + 110_000);
    assert_eq!(view.amount_display, "20");
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(
        json["fiat"],
        json!({ "amount": "20.00", "currency": "USD", "rate": "1",
                "quoted_at": NOW - 10_000, "quote_valid_until": NOW + 110_000 })
    );
    assert!(
        json.to_string().find("peg").is_none(),
        "the rate provider is not the payer's business"
    );

    let plain = CheckoutView::of(
        &invoice("USDT", 6, 20_000_000, MatchStrategy::FixedAddress),
        &chains(),
        NOW,
    );
    assert_eq!(plain.fiat, None);
    assert_eq!(
        serde_json::to_value(&plain).unwrap()["fiat"],
        serde_json::Value::Null
    );
}

#[test]
fn eip681_native_transfer_names_the_chain_and_the_wei_value() {
    assert_eq!(
        eip681_uri(1, None, MERCHANT, Amount::parse_decimal("1.5", 18).unwrap()),
        format!("ethereum:{MERCHANT}@1?value=1500000000000000000")
    );
}

#[test]
fn eip681_token_transfer_calls_transfer_on_the_token_with_base_units() {
    assert_eq!(
        eip681_uri(56, Some(USDT), MERCHANT, Amount::from(10_500_000)),
        format!("ethereum:{USDT}@56/transfer?address={MERCHANT}&uint256=10500000")
    );
}

#[test]
fn token_invoice_view_shows_exact_human_amount_token_and_transfer_uri() {
    let view = CheckoutView::of(
        &invoice("USDT", 6, 10_500_000, MatchStrategy::FixedAddress),
        &chains(),
        NOW,
    );
    assert_eq!(view.title.as_deref(), Some("Order NO: 23435435646"));
    assert_eq!(view.amount.to_string(), "10500000");
    assert_eq!(view.amount_display, "10.5");
    assert_eq!(view.amount_remaining_display, "10.5");
    assert_eq!(view.symbol, "USDT");
    assert_eq!(view.network, "sepolia");
    assert_eq!(view.chain_kind, Some(ChainKind::Evm));
    assert_eq!(view.chain_id, Some(11_155_111));
    assert_eq!(view.token_address.as_deref(), Some(USDT));
    assert_eq!(
        view.payment_contract, None,
        "only contract-reference invoices name it"
    );
    assert_eq!(view.pay_reference, "inv_123", "defaults to the invoice id");
    assert_eq!(
        view.payment_uri.as_deref(),
        Some(
            format!("ethereum:{USDT}@11155111/transfer?address={MERCHANT}&uint256=10500000")
                .as_str()
        )
    );
    assert_eq!(view.server_time, NOW);
    assert_eq!(view.expires_at, 1_700_000_900_000);
    assert_eq!(view.confirmations_required, 3);
    assert_eq!(
        view.return_url.as_deref(),
        Some("https://merchant.example/order/9")
    );
    assert!(!view.is_final());
}

#[test]
fn native_invoice_view_has_no_token_and_a_value_uri() {
    let view = CheckoutView::of(
        &invoice(
            "ETH",
            18,
            20_000_000_000_000_000,
            MatchStrategy::UniqueAmount,
        ),
        &chains(),
        NOW,
    );
    assert_eq!(view.amount_display, "0.02");
    assert_eq!(view.token_address, None);
    assert_eq!(
        view.payment_uri.as_deref(),
        Some(format!("ethereum:{MERCHANT}@11155111?value=20000000000000000").as_str())
    );
}

#[test]
fn contract_reference_view_names_contract_and_reference_and_offers_no_transfer_uri() {
    let mut inv = invoice("USDT", 6, 1_000_000, MatchStrategy::ContractReference);
    inv.pay_reference = Some("7503cd8a-c921-4368-a32d-6c1d01d86da9".into());
    let view = CheckoutView::of(&inv, &chains(), NOW);
    assert_eq!(view.payment_contract.as_deref(), Some(PAY_CONTRACT));
    assert_eq!(view.pay_reference, "7503cd8a-c921-4368-a32d-6c1d01d86da9");
    assert_eq!(view.token_address.as_deref(), Some(USDT));
    assert_eq!(
        view.payment_uri, None,
        "a plain transfer would not be credited to a contract-reference invoice"
    );
}

#[test]
fn partly_paid_view_asks_for_the_remaining_amount() {
    let mut inv = invoice("USDT", 6, 10_000_000, MatchStrategy::FixedAddress);
    inv.amount_paid = Amount::from(4_000_000);
    inv.outcome.underpaid = true;
    let view = CheckoutView::of(&inv, &chains(), NOW);
    assert_eq!(view.amount_paid_display, "4");
    assert_eq!(view.amount_remaining.to_string(), "6000000");
    assert_eq!(view.amount_remaining_display, "6");
    assert!(view.payment_uri.unwrap().ends_with("&uint256=6000000"));

    inv.amount_paid = Amount::from(12_000_000);
    assert_eq!(
        CheckoutView::of(&inv, &chains(), NOW).amount_remaining,
        Amount::ZERO
    );
}

#[test]
fn view_json_carries_nothing_merchant_private() {
    let json = serde_json::to_value(CheckoutView::of(
        &invoice("USDT", 6, 10_500_000, MatchStrategy::FixedAddress),
        &chains(),
        NOW,
    ))
    .unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount",
            "amount_display",
            "amount_paid",
            "amount_paid_display",
            "amount_remaining",
            "amount_remaining_display",
            "chain_id",
            "chain_kind",
            "confirmations_required",
            "decimals",
            "dev_wallet",
            "expires_at",
            "fiat",
            "final",
            "invoice_id",
            "network",
            "outcome",
            "pay_address",
            "pay_reference",
            "payment_contract",
            "payment_uri",
            "return_url",
            "server_time",
            "status",
            "strategy",
            "symbol",
            "title",
            "token_address",
            "txn_hash",
        ]
    );
    let text = json.to_string();
    for secret in [
        "merchant-secret-id",
        "order-9",
        "notify",
        "secret-ish",
        "trino",
    ] {
        assert!(!text.contains(secret), "`{secret}` leaked into {text}");
    }
    assert_eq!(json["status"], "pending");
    assert_eq!(
        json["amount"], "10500000",
        "amounts are strings, never JSON numbers"
    );
    assert_eq!(
        json["outcome"],
        json!({ "underpaid": false, "overpaid": false, "paid_late": false })
    );
    assert_eq!(json["strategy"], "fixed-address");
    assert_eq!(json["chain_kind"], "evm");
}

#[test]
fn only_web_return_urls_reach_the_page() {
    let mut inv = invoice("ETH", 18, 1, MatchStrategy::FixedAddress);
    for (url, kept) in [
        ("https://shop.example/done?o=1", true),
        ("HTTP://shop.example/", true),
        ("javascript:alert(1)", false),
        ("data:text/html,hi", false),
        ("//shop.example/", false),
        ("https://", false),
        ("https://shop.example/\nx", false),
        ("https://shop example/", false),
    ] {
        inv.return_url = Some(url.into());
        let view = CheckoutView::of(&inv, &chains(), NOW);
        assert_eq!(view.return_url.is_some(), kept, "{url}");
    }
}

#[test]
fn title_is_taken_only_from_a_string_plugin_data_title() {
    let mut inv = invoice("ETH", 18, 1, MatchStrategy::FixedAddress);
    inv.plugin_data = json!({ "title": 42 });
    assert_eq!(CheckoutView::of(&inv, &chains(), NOW).title, None);
    inv.plugin_data = json!(null);
    assert_eq!(CheckoutView::of(&inv, &chains(), NOW).title, None);
}

#[test]
fn tron_invoice_view_carries_the_address_and_exact_amount_in_its_uri() {
    let shop = "TY72iA3SBtrds3QLYsS7LwYfkzXwAXCRWT";
    let usdt = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
    let tron: ChainConfig = serde_json::from_value(json!({
        "name": "tron", "kind": "tron", "rpc_url": "http://127.0.0.1:8090",
        "assets": [
            { "symbol": "TRX", "decimals": 6, "native": true },
            { "symbol": "USDT", "decimals": 6, "contract": usdt },
        ],
    }))
    .unwrap();
    let on_tron = |asset: &str, amount: u64| {
        let mut inv = invoice(asset, 6, amount, MatchStrategy::UniqueAmount);
        inv.chain = "tron".into();
        inv.pay_address = shop.into();
        CheckoutView::of(&inv, std::slice::from_ref(&tron), NOW)
    };
    let trx = on_tron("TRX", 100_001);
    assert_eq!(trx.chain_kind, Some(ChainKind::Tron));
    assert_eq!(trx.chain_id, None);
    assert_eq!(
        trx.payment_uri.as_deref(),
        Some(format!("tron:{shop}?amount=0.100001").as_str())
    );
    let token = on_tron("USDT", 2_000_000);
    assert_eq!(token.token_address.as_deref(), Some(usdt));
    assert_eq!(
        token.payment_uri.as_deref(),
        Some(format!("tron:{shop}?amount=2&token={usdt}").as_str())
    );
}

#[test]
fn invoice_on_a_network_no_longer_configured_still_has_a_view() {
    let view = CheckoutView::of(
        &invoice("USDT", 6, 10_500_000, MatchStrategy::FixedAddress),
        &[],
        NOW,
    );
    assert_eq!(view.network, "sepolia");
    assert_eq!((view.chain_id, view.chain_kind), (None, None));
    assert_eq!(view.payment_uri, None);
    assert_eq!(view.amount_display, "10.5");
}

#[test]
fn final_statuses_end_the_live_feed_and_expired_only_after_the_monitoring_window() {
    let mut inv = invoice("ETH", 18, 1, MatchStrategy::FixedAddress);
    let after_window = inv.monitor_until;
    for (status, now, fin) in [
        (InvoiceStatus::Pending, NOW, false),
        (InvoiceStatus::Confirming, NOW, false),
        (InvoiceStatus::Paid, NOW, true),
        // A late payment can still arrive and must reach the page.
        (InvoiceStatus::Expired, NOW, false),
        (InvoiceStatus::Expired, after_window - 1, false),
        (InvoiceStatus::Expired, after_window, true),
        (InvoiceStatus::Cancelled, NOW, true),
    ] {
        inv.status = status;
        let view = CheckoutView::of(&inv, &chains(), now);
        assert_eq!(view.is_final(), fin, "{status} at {now}");
        assert_eq!(
            serde_json::to_value(&view).unwrap()["final"],
            fin,
            "the page reads it too"
        );
    }
}

#[test]
fn page_abi_selectors_are_keccak_of_their_signatures() {
    let abi = include_str!("../../../checkout/src/abi.js");
    let start = abi
        .find("export const SELECTORS")
        .expect("SELECTORS in abi.js");
    let block = &abi[start..abi[start..].find("}").unwrap() + start];
    let mut seen = 0;
    for line in block.lines().filter(|l| l.contains("':")) {
        let (sig, selector) = line.trim().trim_end_matches(',').split_once(": ").unwrap();
        let (sig, selector) = (sig.trim_matches('\''), selector.trim_matches('\''));
        let hash = alloy_primitives::keccak256(sig.as_bytes());
        assert_eq!(selector, hex::encode(&hash[..4]), "selector of {sig}");
        seen += 1;
    }
    assert_eq!(seen, 5, "every selector the page uses is checked");
}

#[test]
fn embedded_page_names_only_embedded_assets() {
    let html =
        std::str::from_utf8(embedded_file("index.html").expect("index.html embedded")).unwrap();
    let referenced: Vec<&str> = html
        .split("\"./assets/")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(referenced.iter().any(|a| a.ends_with(".js")), "{html}");
    assert!(referenced.iter().any(|a| a.ends_with(".css")), "{html}");
    for asset in referenced {
        assert!(
            embedded_file(&format!("assets/{asset}")).is_some(),
            "{asset} not embedded"
        );
    }
}

#[test]
fn assets_get_their_content_types() {
    assert_eq!(
        content_type("index-abc.js"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(content_type("index-abc.css"), "text/css; charset=utf-8");
    assert_eq!(content_type("x"), "application/octet-stream");
}
