//! The hosted checkout page as a payer meets it: the real server (`Server::start`) over
//! loopback, invoices created in its store, the page's JSON and event feed over HTTP, and
//! the page itself in headless Chromium (`tests/browser/checkout.mjs`, Playwright driving
//! Debian's `/usr/bin/chromium`; `scripts/install-browser.sh` installs both).
//!
//! No chain node: the chain listener is not part of this; a payment is recorded the way a
//! listener records one (`matcher::record_transfers` + `settle_invoices`).

mod common;

use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use common::browser::{self, repo_root};
use polypay_host::app::Server;
use polypay_host::chain::{ChainConfig, ObservedTransfer};
use polypay_host::config::{Config, ListenConfig};
use polypay_host::invoice::{Amount, MatchStrategy};
use polypay_host::merchant::CredentialSpec;
use polypay_host::store::invoices::{ChainView, Invoice, NewInvoice, NewTarget};
use polypay_host::store::now_ms;
use serde_json::{Value, json};

const MERCHANT_ADDRESS: &str = "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af";
const USDT: &str = "0xdAC17F958D2ee523a2206206994597C13D831ec7";
const CHAIN_ID: u64 = 11_155_111;
const TXN_HASH: &str = "0xa477aae4aa81df7c7b108bcc65450c7fa36b77f671b2768759e6485acd10f507";

/// A running server with one EVM network (`sepolia`, USDT) and a merchant.
struct CheckoutApp {
    server: Server,
    merchant_id: String,
    _dir: tempfile::TempDir,
}

impl CheckoutApp {
    async fn start() -> CheckoutApp {
        let dir = tempfile::tempdir().unwrap();
        let chain: ChainConfig = serde_json::from_value(json!({
            "name": "sepolia",
            "kind": "evm",
            "chain_id": CHAIN_ID,
            // Never contacted: the server does not run chain listeners in this test.
            "rpc_url": "http://127.0.0.1:9",
            "confirmations": 3,
            "assets": [
                { "symbol": "ETH", "decimals": 18, "native": true },
                { "symbol": "USDT", "decimals": 6, "contract": USDT },
            ],
        }))
        .unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            listen: ListenConfig {
                public: "127.0.0.1:0".parse().unwrap(),
                admin: "127.0.0.1:0".parse().unwrap(),
            },
            chains: vec![chain],
            ..Config::default()
        };
        let server = Server::start(config).await.unwrap();
        let merchant_id = server
            .context
            .merchants
            .create(
                "Shop",
                Some("test"),
                json!({}),
                &CredentialSpec::default_set(),
            )
            .await
            .unwrap()
            .merchant
            .id;
        CheckoutApp {
            server,
            merchant_id,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.public_addr)
    }

    /// A 10.5 USDT fixed-address invoice expiring `expires_in_ms` from now.
    async fn invoice(&self, expires_in_ms: i64, return_url: &str) -> Invoice {
        let now = now_ms();
        self.server
            .context
            .store
            .create_invoice(&NewInvoice {
                id: uuid::Uuid::new_v4().to_string(),
                merchant_id: self.merchant_id.clone(),
                plugin: "test".into(),
                merchant_order_id: None,
                chain: "sepolia".into(),
                asset: "USDT".into(),
                decimals: 6,
                amount_due: Amount::from(10_500_000),
                tolerance: Amount::ZERO,
                confirmations_required: 3,
                strategy: MatchStrategy::FixedAddress,
                target: NewTarget {
                    address: MERCHANT_ADDRESS.into(),
                    reserved_amount: None,
                    derivation_index: None,
                },
                pay_reference: None,
                notify_url: Some("https://merchant.example/notify".into()),
                return_url: Some(return_url.into()),
                plugin_data: json!({ "title": "Order NO: 23435435646" }),
                expires_at: now + expires_in_ms,
                monitor_until: now + expires_in_ms + 600_000,
            })
            .await
            .unwrap()
    }

    /// Records a confirmed 10.5 USDT transfer to the invoice's address, the way a chain
    /// listener does, which settles the invoice as paid.
    async fn pay(&self, invoice_id: &str) {
        let store = &self.server.context.store;
        let now = now_ms();
        let mut tx = store.begin().await.unwrap();
        let transfer = ObservedTransfer {
            chain: "sepolia".into(),
            tx_hash: TXN_HASH.into(),
            log_index: 0,
            block_number: 100,
            block_hash: format!("0x{}", "11".repeat(32)),
            from: "0x00000000000000000000000000000000000000bb".into(),
            to: MERCHANT_ADDRESS.into(),
            asset: "USDT".into(),
            amount: Amount::from(10_500_000),
            reference: None,
        };
        let credited = polypay_host::matcher::record_transfers(&mut tx, &[transfer], now)
            .await
            .unwrap();
        assert!(
            credited.contains(invoice_id),
            "the transfer pays {invoice_id}"
        );
        polypay_host::matcher::settle_invoices(
            &mut tx,
            store.backend(),
            &credited,
            ChainView { head_block: 110 },
            now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let paid = store.invoice(invoice_id).await.unwrap().unwrap();
        assert_eq!(paid.status.as_str(), "paid");
    }
}

/// A stand-in for the merchant's site, where the page sends the payer back.
async fn merchant_site() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/orders/{id}/done",
        get(|| async { Html("<!doctype html><link rel=icon href=data:,><title>Shop</title><h1>merchant return page</h1>") }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Reads server-sent events from `response` until one `invoice` event is complete;
/// `None` when the stream ends first.
async fn next_invoice_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
) -> Option<Value> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: invoice") {
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                return Some(serde_json::from_str(data).unwrap());
            }
            continue; // a keep-alive comment
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()?;
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_feed_serves_the_payer_view_assets_and_live_status() {
    let app = CheckoutApp::start().await;
    let invoice = app.invoice(900_000, "https://merchant.example/done").await;
    let http = reqwest::Client::new();

    let response = http
        .get(app.url(&format!("/api/checkout/{}", invoice.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["invoice_id"], invoice.id.as_str());
    assert_eq!(view["title"], "Order NO: 23435435646");
    assert_eq!(view["status"], "pending");
    assert_eq!(view["amount"], "10500000");
    assert_eq!(view["amount_display"], "10.5");
    assert_eq!(view["symbol"], "USDT");
    assert_eq!(view["network"], "sepolia");
    assert_eq!(view["chain_id"], CHAIN_ID);
    assert_eq!(view["token_address"], USDT);
    assert_eq!(
        view["payment_uri"],
        format!("ethereum:{USDT}@{CHAIN_ID}/transfer?address={MERCHANT_ADDRESS}&uint256=10500000")
    );
    assert_eq!(view["return_url"], "https://merchant.example/done");
    assert!(view.get("merchant_id").is_none() && view.get("notify_url").is_none());
    let skew = view["server_time"].as_i64().unwrap() - now_ms();
    assert!(skew.abs() < 5_000, "server_time is the server's clock");

    // Production: no dev wallet on the page, and its endpoint does not exist.
    assert_eq!(view["dev_wallet"], false);
    let dev_pay = http
        .post(app.url(&format!("/api/checkout/{}/dev-pay", invoice.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        dev_pay.status(),
        404,
        "dev-pay is refused outside development"
    );

    let missing = http
        .get(app.url("/api/checkout/no-such-invoice"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({ "error": "not found" })
    );
    let missing_events = http
        .get(app.url("/api/checkout/no-such-invoice/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing_events.status(), 404);

    // The page and its assets.
    let page = http
        .get(app.url(&format!("/pay/{}", invoice.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    let script = html
        .split("src=\"./assets/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html names its script");
    let asset = http
        .get(app.url(&format!("/pay/assets/{script}")))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let unknown_page = http.get(app.url("/pay/nope")).send().await.unwrap();
    assert_eq!(unknown_page.status(), 404, "an unknown invoice is a 404");
    assert!(unknown_page.text().await.unwrap().contains("id=\"app\""));
    let unknown_asset = http
        .get(app.url("/pay/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_asset.status(), 404);

    // The event stream: the view at connect, the change when paid, then the end.
    let mut events = http
        .get(app.url(&format!("/api/checkout/{}/events", invoice.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let first = next_invoice_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(first["status"], "pending");
    assert_eq!(first["amount_paid"], "0");
    app.pay(&invoice.id).await;
    let paid = next_invoice_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["amount_paid"], "10500000");
    assert_eq!(paid["txn_hash"], TXN_HASH);
    assert!(
        next_invoice_event(&mut events, &mut buffer).await.is_none(),
        "the stream ends after a final status"
    );

    app.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_page_shows_invoice_follows_payment_and_returns_payer_in_chromium() {
    let app = CheckoutApp::start().await;
    let shop = merchant_site().await;
    let return_url = format!("{shop}/orders/9/done");
    let pending = app.invoice(15 * 60_000, &return_url).await;
    let expired = app.invoice(-60_000, &return_url).await;
    let store = &app.server.context.store;
    let expired_now = store.expire_due(now_ms(), 10).await.unwrap();
    assert_eq!(expired_now.len(), 1);
    assert_eq!(expired_now[0].id, expired.id);
    // Past its deadline, but the host's expiry job has not run yet.
    let overdue = app.invoice(-1_000, &return_url).await;
    let cancelled = app.invoice(15 * 60_000, &return_url).await;
    store.cancel_invoice(&cancelled.id).await.unwrap();

    let scenario = json!({
        "base": app.url(""),
        "returnUrl": return_url,
        "screenshots": browser::screenshots_dir(),
        "invoices": {
            "pending": pending.id,
            "expired": expired.id,
            "overdue": overdue.id,
            "cancelled": cancelled.id,
            "unknown": "00000000-0000-0000-0000-000000000000",
        },
        "expect": {
            "title": "Order NO: 23435435646",
            "amountDisplay": "10.5",
            "symbol": "USDT",
            "network": "Sepolia",
            "payAddress": MERCHANT_ADDRESS,
            "paymentUri": format!("ethereum:{USDT}@{CHAIN_ID}/transfer?address={MERCHANT_ADDRESS}&uint256=10500000"),
            "txnHash": TXN_HASH,
        },
    });
    let (mut node, mut lines) = browser::start_script("checkout.mjs", &scenario);
    let mut paid = false;
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "READY_FOR_PAYMENT" {
                app.pay(&pending.id).await;
                paid = true;
            } else {
                println!("{line}");
            }
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within 3 minutes");
    assert!(
        status.success(),
        "the browser checks failed (see checkout-browser lines above)"
    );
    assert!(paid, "the browser script asked for the payment");

    app.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn checkout_abi_encoder_matches_solidity_abi_encoding() {
    use alloy::primitives::{Address, U256};
    use alloy::sol_types::SolCall;

    alloy::sol! {
        function pay(string invoice_id, address recipient, uint256 amount);
        function transfer(address to, uint256 amount);
        function approve(address spender, uint256 amount);
    }
    let recipient: Address = MERCHANT_ADDRESS.parse().unwrap();
    // Longer than one word and not ASCII, to exercise the string tail's padding.
    let reference = "7503cd8a-c921-4368-a32d-6c1d01d86da9/支付订单";
    let amount = U256::from(10_500_000u64);
    let expected = [
        payCall {
            invoice_id: reference.into(),
            recipient,
            amount,
        }
        .abi_encode(),
        transferCall {
            to: recipient,
            amount,
        }
        .abi_encode(),
        approveCall {
            spender: recipient,
            amount: U256::MAX,
        }
        .abi_encode(),
    ]
    .map(|bytes| format!("0x{}", hex::encode(bytes)));

    let abi = repo_root().join("host/checkout/src/abi.js");
    let script = format!(
        "import {{ payData, transferData, approveData }} from {abi:?};\n\
         console.log(JSON.stringify([\n\
           payData({reference:?}, {MERCHANT_ADDRESS:?}, '10500000'),\n\
           transferData({MERCHANT_ADDRESS:?}, 10500000n),\n\
           approveData({MERCHANT_ADDRESS:?}, (1n << 256n) - 1n),\n\
         ]))",
        abi = format!("file://{}", abi.display()),
    );
    let output = tokio::process::Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .output()
        .await
        .expect("starting node (install Node.js)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let encoded: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(encoded, expected);
}

#[tokio::test]
async fn checkout_wallet_flow_sends_what_each_invoice_kind_needs_and_explains_failures() {
    let output = tokio::process::Command::new("node")
        .args(["--test", "wallet.test.mjs"])
        .current_dir(repo_root().join("tests/browser"))
        .output()
        .await
        .expect("starting node (install Node.js)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
