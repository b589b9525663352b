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
use polypay_host::chain::ChainConfig;
use polypay_host::config::Config;
use polypay_host::http::checkout::FeedStats;
use polypay_host::invoice::{
    Allocation, Amount, ChainView, FiatQuote, Invoice, InvoiceService, NewInvoice, ObservedTransfer,
};
use polypay_host::merchant::CredentialSpec;
use polypay_host::store::now_ms;
use serde_json::{Value, json};

const MERCHANT_ADDRESS: &str = "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af";
const OTHER_ADDRESSES: [&str; 4] = [
    "0x00000000000000000000000000000000000000a1",
    "0x00000000000000000000000000000000000000a2",
    "0x00000000000000000000000000000000000000a3",
    "0x00000000000000000000000000000000000000a4",
];
const USDT: &str = "0xdAC17F958D2ee523a2206206994597C13D831ec7";
const CHAIN_ID: u64 = 11_155_111;
const TXN_HASH: &str = "0xa477aae4aa81df7c7b108bcc65450c7fa36b77f671b2768759e6485acd10f507";

static NEXT_LOG_INDEX: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// A running server with one EVM network (`sepolia`, USDT) and a merchant.
struct CheckoutApp {
    server: Server,
    merchant_id: String,
    _dir: tempfile::TempDir,
}

impl CheckoutApp {
    async fn start() -> CheckoutApp {
        CheckoutApp::start_with(|_| ()).await
    }

    /// [`CheckoutApp::start`] with `adjust` applied to the config first.
    async fn start_with(adjust: impl FnOnce(&mut Config)) -> CheckoutApp {
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
        let mut config = Config {
            chains: vec![chain],
            ..common::polypay::server_config(dir.path())
        };
        adjust(&mut config);
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

    /// A 10.5 USDT fixed-address invoice at [`MERCHANT_ADDRESS`] expiring `expires_in_ms`
    /// from now.
    async fn invoice(&self, expires_in_ms: i64, return_url: &str) -> Invoice {
        self.invoice_at(MERCHANT_ADDRESS, expires_in_ms, return_url)
            .await
    }

    /// The same at another address (one fixed-address invoice may be open per address).
    async fn invoice_at(&self, address: &str, expires_in_ms: i64, return_url: &str) -> Invoice {
        self.invoice_priced(address, expires_in_ms, return_url, None)
            .await
    }

    /// The same, priced in fiat with `fiat` when given.
    async fn invoice_priced(
        &self,
        address: &str,
        expires_in_ms: i64,
        return_url: &str,
        fiat: Option<FiatQuote>,
    ) -> Invoice {
        let now = now_ms();
        let mut new = NewInvoice::new(
            &self.merchant_id,
            "test",
            "sepolia",
            ("USDT", 6),
            Amount::from(10_500_000),
            now + expires_in_ms,
        );
        new.notify_url = Some("https://merchant.example/notify".into());
        new.return_url = Some(return_url.into());
        new.plugin_data = json!({ "title": "Order NO: 23435435646" });
        new.monitor_until = now + expires_in_ms + 600_000;
        new.fiat = fiat;
        InvoiceService::new(self.server.context.store.clone())
            .create(&new, &Allocation::fixed_address(&new, address, 3))
            .await
            .unwrap()
    }

    /// Records a confirmed 10.5 USDT transfer to the invoice's address, the way a chain
    /// listener does, which settles the invoice as paid.
    async fn pay(&self, invoice_id: &str) {
        let store = &self.server.context.store;
        let to = store
            .invoice(invoice_id)
            .await
            .unwrap()
            .unwrap()
            .pay_address;
        let now = now_ms();
        let mut tx = store.begin().await.unwrap();
        let transfer = ObservedTransfer {
            chain: "sepolia".into(),
            tx_hash: TXN_HASH.into(),
            // Each payment its own log of the same transaction.
            log_index: NEXT_LOG_INDEX.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            block_number: 100,
            block_hash: format!("0x{}", "11".repeat(32)),
            block_time: now,
            from: "0x00000000000000000000000000000000000000bb".into(),
            to,
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
        InvoiceService::new(store.clone())
            .settle_in(
                &mut tx,
                &credited,
                ChainView {
                    processed_block: 110,
                    final_block: None,
                },
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
    assert_eq!(view["fiat"], Value::Null, "priced in USDT itself");

    // Priced in fiat: the price and its quote's expiry are shown beside the amount.
    let now = now_ms();
    let mut new = NewInvoice::new(
        &app.merchant_id,
        "test",
        "sepolia",
        ("USDT", 6),
        Amount::from(20_000_000),
        now + 900_000,
    );
    new.fiat = Some(FiatQuote {
        amount: "20.00".into(),
        currency: "USD".into(),
        rate: "1".into(),
        source: "peg".into(),
        quoted_at: now,
        valid_until: now + 120_000,
    });
    let priced = InvoiceService::new(app.server.context.store.clone())
        .create(
            &new,
            &Allocation::fixed_address(&new, OTHER_ADDRESSES[3], 3),
        )
        .await
        .unwrap();
    let priced_view: Value = http
        .get(app.url(&format!("/api/checkout/{}", priced.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(priced_view["amount_display"], "20");
    assert_eq!(priced_view["fiat"]["amount"], "20.00");
    assert_eq!(priced_view["fiat"]["currency"], "USD");
    assert_eq!(priced_view["fiat"]["quote_valid_until"], now + 120_000);

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

/// Opens the event stream of `invoice_id` and reads its first event.
async fn open_stream(app: &CheckoutApp, invoice_id: &str) -> (reqwest::Response, String, Value) {
    let mut response = reqwest::get(app.url(&format!("/api/checkout/{invoice_id}/events")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut buffer = String::new();
    let first = next_invoice_event(&mut response, &mut buffer)
        .await
        .expect("a first event");
    (response, buffer, first)
}

/// Polls `condition` on the checkout feed's statistics (up to 30 s).
async fn wait_for_feed(app: &CheckoutApp, what: &str, condition: impl Fn(FeedStats) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = app.server.context.checkout.stats();
        if condition(stats) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the feed never had {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_feed_shows_a_late_payment_until_the_monitoring_window_ends() {
    let app = CheckoutApp::start().await;
    // Past its deadline, inside the 10-minute monitoring window.
    let late = app.invoice(-60_000, "https://merchant.example/done").await;
    let store = &app.server.context.store;
    // Expired here, or already by the server's own expiry scheduler.
    InvoiceService::new(store.clone())
        .expire_due(now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(
        store.invoice(&late.id).await.unwrap().unwrap().status,
        polypay_host::invoice::InvoiceStatus::Expired
    );

    let (mut events, mut buffer, first) = open_stream(&app, &late.id).await;
    assert_eq!(first["status"], "expired");
    assert_eq!(first["final"], false, "a late payment can still arrive");
    app.pay(&late.id).await;
    let paid = next_invoice_event(&mut events, &mut buffer)
        .await
        .expect("the late payment is shown");
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["outcome"]["paid_late"], true);
    assert_eq!(paid["final"], true);
    assert!(next_invoice_event(&mut events, &mut buffer).await.is_none());

    // Once the window is over, expired is final: the stream says so and ends.
    let over = app
        .invoice_at(
            OTHER_ADDRESSES[0],
            -700_000,
            "https://merchant.example/done",
        )
        .await;
    InvoiceService::new(store.clone())
        .expire_due(now_ms(), 10)
        .await
        .unwrap();
    let (mut events, mut buffer, first) = open_stream(&app, &over.id).await;
    assert_eq!(
        (first["status"].as_str(), first["final"].as_bool()),
        (Some("expired"), Some(true))
    );
    assert!(next_invoice_event(&mut events, &mut buffer).await.is_none());
    app.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_pages_of_one_invoice_share_one_watcher() {
    const PAGES: usize = 20;
    let app = CheckoutApp::start_with(|c| c.checkout.poll_interval_ms = 50).await;
    let popular = app.invoice(900_000, "https://merchant.example/done").await;
    let other = app
        .invoice_at(OTHER_ADDRESSES[0], 900_000, "https://merchant.example/done")
        .await;
    let mut streams = Vec::new();
    for _ in 0..PAGES {
        streams.push(open_stream(&app, &popular.id).await);
    }
    let _other = open_stream(&app, &other.id).await;
    let stats = app.server.context.checkout.stats();
    assert_eq!(
        (stats.watchers, stats.subscribers),
        (2, PAGES + 1),
        "one watcher per invoice, whatever the number of pages"
    );
    // The watchers keep reading (one query per invoice per tick) and nobody else does.
    let before = stats.reads;
    wait_for_feed(&app, "more reads", |s| s.reads >= before + 4).await;

    app.pay(&popular.id).await;
    for (events, buffer, _) in &mut streams {
        let paid = next_invoice_event(events, buffer).await.unwrap();
        assert_eq!(paid["status"], "paid");
        assert!(next_invoice_event(events, buffer).await.is_none());
    }
    wait_for_feed(&app, "only the other invoice's watcher", |s| {
        (s.watchers, s.subscribers) == (1, 1)
    })
    .await;
    app.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_streams_beyond_the_cap_are_refused_until_one_ends() {
    let app = CheckoutApp::start_with(|c| {
        c.checkout.max_streams = 2;
        c.checkout.poll_interval_ms = 50;
    })
    .await;
    let a = app.invoice(900_000, "https://merchant.example/done").await;
    let b = app
        .invoice_at(OTHER_ADDRESSES[0], 900_000, "https://merchant.example/done")
        .await;
    let (mut first, mut buffer, _) = open_stream(&app, &a.id).await;
    let _second = open_stream(&app, &b.id).await;
    let refused = reqwest::get(app.url(&format!("/api/checkout/{}/events", b.id)))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    // The JSON view (the page's fallback) is not limited.
    let view = reqwest::get(app.url(&format!("/api/checkout/{}", b.id)))
        .await
        .unwrap();
    assert_eq!(view.status(), 200);

    app.pay(&a.id).await;
    while next_invoice_event(&mut first, &mut buffer).await.is_some() {}
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let again = reqwest::get(app.url(&format!("/api/checkout/{}/events", b.id)))
            .await
            .unwrap();
        if again.status() == 200 {
            break;
        }
        assert_eq!(again.status(), 503);
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_checkout_streams() {
    let app = CheckoutApp::start().await;
    let invoice = app.invoice(900_000, "https://merchant.example/done").await;
    let (mut events, mut buffer, _) = open_stream(&app, &invoice.id).await;
    let CheckoutApp { server, _dir, .. } = app;
    let stopping = tokio::spawn(server.shutdown());
    assert!(
        next_invoice_event(&mut events, &mut buffer).await.is_none(),
        "the stream ends cleanly"
    );
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("shutdown is not held up by the open stream")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_page_shows_invoice_follows_payment_and_returns_payer_in_chromium() {
    let app = CheckoutApp::start().await;
    let shop = merchant_site().await;
    let return_url = format!("{shop}/orders/9/done");
    // Priced in fiat: the page shows the price beside the amount and the quote's countdown.
    let pending = app
        .invoice_priced(
            MERCHANT_ADDRESS,
            15 * 60_000,
            &return_url,
            Some(FiatQuote {
                amount: "10.50".into(),
                currency: "USD".into(),
                rate: "1".into(),
                source: "peg".into(),
                quoted_at: now_ms(),
                valid_until: now_ms() + 120_000,
            }),
        )
        .await;
    let expired = app
        .invoice_at(OTHER_ADDRESSES[0], -60_000, &return_url)
        .await;
    let store = &app.server.context.store;
    let invoices = InvoiceService::new(store.clone());
    let late = app
        .invoice_at(OTHER_ADDRESSES[3], -60_000, &return_url)
        .await;
    // Expired here, or already by the server's own expiry scheduler.
    invoices.expire_due(now_ms(), 10).await.unwrap();
    for id in [&expired.id, &late.id] {
        let status = store.invoice(id).await.unwrap().unwrap().status;
        assert_eq!(status, polypay_host::invoice::InvoiceStatus::Expired);
    }
    // Past its deadline; the host's expiry job may or may not have run yet when the page
    // opens: expired either way.
    let overdue = app
        .invoice_at(OTHER_ADDRESSES[1], -1_000, &return_url)
        .await;
    let cancelled = app
        .invoice_at(OTHER_ADDRESSES[2], 15 * 60_000, &return_url)
        .await;
    invoices.cancel(&cancelled.id).await.unwrap();

    let scenario = json!({
        "base": app.url(""),
        "returnUrl": return_url,
        "screenshots": browser::screenshots_dir(),
        "invoices": {
            "pending": pending.id,
            "expired": expired.id,
            "late": late.id,
            "overdue": overdue.id,
            "cancelled": cancelled.id,
            "unknown": "00000000-0000-0000-0000-000000000000",
        },
        "expect": {
            "title": "Order NO: 23435435646",
            "amountDisplay": "10.5",
            "fiat": "10.50 USD",
            "symbol": "USDT",
            "network": "Sepolia",
            "payAddress": MERCHANT_ADDRESS,
            "paymentUri": format!("ethereum:{USDT}@{CHAIN_ID}/transfer?address={MERCHANT_ADDRESS}&uint256=10500000"),
            "txnHash": TXN_HASH,
        },
    });
    let (mut node, mut lines) = browser::start_script("checkout.mjs", &scenario);
    let (mut paid, mut paid_late) = (false, false);
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "READY_FOR_PAYMENT" {
                app.pay(&pending.id).await;
                paid = true;
            } else if line == "READY_FOR_LATE_PAYMENT" {
                app.pay(&late.id).await;
                paid_late = true;
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
    assert!(paid_late, "the browser script asked for the late payment");

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
