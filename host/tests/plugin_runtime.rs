//! The plugin runtime end to end: real components (built by
//! `polypay-plugin-artifacts`), real HTTP over loopback.
//!
//! Plugins used: `test-echo` (healthy; a route per contract feature) and
//! `test-faults` (a route per way to fail). Every test starts its own
//! server on 127.0.0.1:0 through [`TestApp`] (`common::plugins`), stating
//! only what it needs.

mod common;

use common::plugins::{PAY_TO, TestApp, hmac_sha256_hex, status_event};
use polypay_host::merchant::{CredentialSpec, SecretFormat};
use polypay_host::plugin::{FaultKind, PluginConfig, PluginError};
use polypay_host::webhook::{WebhookEvent, WebhookRenderer};
use polypay_plugin_artifacts::TEST_ECHO;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_serves_its_declared_routes_under_the_configured_prefix() {
    let app = TestApp::init()
        .with_plugin(PluginConfig::new("echo", TEST_ECHO).with_prefix("/e"))
        .start()
        .await;

    let response = app
        .http
        .post(app.url("/e/echo/request/a/b%20c?x=1&y=2"))
        .header("x-request-id", "req-123")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["route"], "/echo/request/{*rest}");
    assert_eq!(echoed["params"], json!([["rest", "a/b c"]]));
    assert_eq!(echoed["path"], "/e/echo/request/a/b%20c");
    assert_eq!(echoed["query"], "x=1&y=2");
    assert_eq!(echoed["body"], "hello");
    assert_eq!(echoed["request_id"], "req-123");
    assert_eq!(echoed["client_ip"], "127.0.0.1");

    assert_eq!(
        app.get("/echo/request/a").await.status(),
        404,
        "not mounted without the prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_table_reaches_the_plugin_as_json() {
    let settings = json!({ "greeting": "hi", "networks": ["ethereum", "tron"], "limit": 5 });
    let app = TestApp::init()
        .with_plugin(PluginConfig::new("echo", TEST_ECHO).with_settings(settings.clone()))
        .start()
        .await;
    let body: Value = app.get("/echo/settings").await.json().await.unwrap();
    assert_eq!(body, settings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404_and_wrong_method_is_405_without_instantiating() {
    let app = TestApp::init().with_echo().start().await;
    let before = app.runtime.instances_started();

    assert_eq!(app.get("/nowhere").await.status(), 404);
    let wrong_method = app
        .http
        .delete(app.url("/echo/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET,HEAD");

    assert_eq!(
        app.runtime.instances_started(),
        before,
        "no instance was created"
    );
    assert_eq!(app.get("/echo/settings").await.status(), 200);
    assert_eq!(app.runtime.instances_started(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_routes_fail_startup_naming_both_plugins() {
    let result = TestApp::init()
        .with_plugin(PluginConfig::new("first-dialect", TEST_ECHO).with_prefix("/api"))
        .with_plugin(PluginConfig::new("second-dialect", TEST_ECHO).with_prefix("/api"))
        .try_start()
        .await;
    let message = match result {
        Ok(_) => panic!("conflicting plugins started"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("`first-dialect`") && message.contains("`second-dialect`"),
        "{message}"
    );
    assert!(message.contains("/api/echo/"), "names the route: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_plugin_mounts_twice_under_different_prefixes() {
    let app = TestApp::init()
        .with_plugin(
            PluginConfig::new("one", TEST_ECHO)
                .with_prefix("/one")
                .with_settings(json!({ "n": 1 })),
        )
        .with_plugin(
            PluginConfig::new("two", TEST_ECHO)
                .with_prefix("/two")
                .with_settings(json!({ "n": 2 })),
        )
        .start()
        .await;
    let one: Value = app.get("/one/echo/settings").await.json().await.unwrap();
    let two: Value = app.get("/two/echo/settings").await.json().await.unwrap();
    assert_eq!((one["n"].as_i64(), two["n"].as_i64()), (Some(1), Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_component_fails_startup_naming_the_plugin() {
    let err = TestApp::init()
        .with_plugin(PluginConfig::new("ghost", "/nonexistent/ghost.wasm"))
        .try_start()
        .await
        .err()
        .expect("load fails");
    assert!(
        matches!(err, PluginError::Load { ref plugin, .. } if plugin == "ghost"),
        "{err}"
    );
}

/// Asserts a fault route answers with the generic 500 and counts `kind`.
async fn assert_fault(app: &TestApp, path: &str, kind: FaultKind) {
    let before = app.faults("faults", kind);
    let response = app
        .http
        .get(app.url(path))
        .header("x-request-id", "fault-req")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500, "{path}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "error": "internal error", "request_id": "fault-req" }),
        "no details leak"
    );
    assert_eq!(
        app.faults("faults", kind),
        before + 1,
        "{path} counted as {kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_at_the_deadline_as_a_500() {
    let app = TestApp::init().with_faults().start().await;
    assert_fault(&app, "/faults/loop", FaultKind::Deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_bomb_is_stopped_at_the_memory_cap_as_a_500() {
    let app = TestApp::init().with_faults().start().await;
    assert_fault(&app, "/faults/alloc", FaultKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_panic_is_a_500() {
    let app = TestApp::init().with_faults().start().await;
    assert_fault(&app, "/faults/panic", FaultKind::Panic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_trap_is_a_500() {
    let app = TestApp::init().with_faults().start().await;
    assert_fault(&app, "/faults/trap", FaultKind::Trap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_is_a_500_and_oversized_request_a_413() {
    let app = TestApp::init()
        .with_faults()
        .with_plugin(PluginConfig::new("echo", TEST_ECHO).with_max_body_bytes(1024))
        .start()
        .await;
    assert_fault(&app, "/faults/big-response", FaultKind::InvalidResponse).await;
    let too_big = app
        .http
        .post(app.url("/echo/request/x"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    // The echo of a 300-byte body still fits the 1 KiB response cap.
    let fits = app
        .http
        .post(app.url("/echo/request/x"))
        .body(vec![b'a'; 300])
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_disturb_concurrent_requests_to_a_healthy_plugin() {
    let app = std::sync::Arc::new(TestApp::init().with_faults().with_echo().start().await);

    let mut faulty = Vec::new();
    for path in [
        "/faults/loop",
        "/faults/alloc",
        "/faults/panic",
        "/faults/trap",
        "/faults/loop",
        "/faults/alloc",
    ] {
        let app = app.clone();
        faulty.push(tokio::spawn(async move {
            app.get(path).await.status().as_u16()
        }));
    }
    let mut healthy = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        healthy.push(tokio::spawn(async move {
            let r = app
                .http
                .post(app.url(&format!("/echo/request/{i}")))
                .body(format!("n{i}"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body["body"].as_str().map(str::to_owned))
        }));
    }
    for (i, h) in healthy.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), (200, Some(format!("n{i}"))));
    }
    for f in faulty {
        assert_eq!(f.await.unwrap(), 500);
    }
    assert_eq!(
        app.get("/faults/ok").await.status(),
        200,
        "the faulty plugin itself still serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_gets_no_environment_arguments_or_files() {
    let app = TestApp::init().with_echo().start().await;
    let sandbox: Value = app.get("/echo/sandbox").await.json().await.unwrap();
    assert_eq!(sandbox["env_vars"], 0);
    assert_eq!(sandbox["args"], 0);
    assert_eq!(sandbox["read_root_dir"], false);
    assert_eq!(sandbox["read_passwd"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_and_logs_go_to_the_host_log_without_failing_the_request() {
    let app = TestApp::init().with_echo().start().await;
    assert_eq!(app.get("/echo/log").await.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_and_randomness_come_from_the_host() {
    let app = TestApp::init().with_echo().start().await;
    let a: Value = app.get("/echo/time").await.json().await.unwrap();
    let b: Value = app.get("/echo/time").await.json().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((a["now"].as_i64().unwrap() - now).abs() < 60_000);
    assert_ne!(a["random"], b["random"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_is_read_at_startup() {
    let app = TestApp::init().with_echo().start().await;
    let plugins = app.runtime.plugins();
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0].manifest.name, "test-echo");
    assert!(
        plugins[0]
            .routes
            .contains(&("GET".to_owned(), "/echo/settings".to_owned()))
    );
}

// ---- storage-backed capabilities and scoping ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_registered_merchant_creates_and_reads_its_invoice() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    let m = app.register("", "Shop").await;

    let (status, invoice) = app.create_invoice("", Some(&m.token), "order-1").await;
    assert_eq!(status, 201, "{invoice}");
    assert_eq!(invoice["merchant_id"], m.merchant_id.as_str());
    assert_eq!(invoice["status"], "pending");
    assert_eq!(invoice["amount_due"], "1500000");
    assert_eq!(invoice["pay_to"], PAY_TO);
    let id = invoice["id"].as_str().unwrap();
    assert_eq!(
        invoice["payment_page_url"],
        format!("http://polypay.test/pay/{id}")
    );
    assert_eq!(invoice["plugin_data"], json!({ "created_by": "test-echo" }));

    let read: Value = app
        .request(
            reqwest::Method::GET,
            &format!("/echo/invoices/{id}"),
            Some(&m.token),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["order_id"], "order-1");
    let by_order: Value = app
        .request(reqwest::Method::GET, "/echo/orders/order-1", Some(&m.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_order["id"], id);

    let (dup, _) = app.create_invoice("", Some(&m.token), "order-1").await;
    assert_eq!(dup, 409, "merchant order ids are unique per merchant");
}

/// A fiat price is quoted by the host and kept on the invoice with its quote: the plugin
/// reads the price back in `fiat`, the store keeps the rate, its provider and the times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fiat_priced_invoice_keeps_its_price_and_quote() {
    use polypay_host::rates::{ProviderConfig, Rates, RatesConfig};
    let mut builder = TestApp::init().with_storage().await.with_echo();
    let rates = Rates::new(&RatesConfig {
        providers: vec![ProviderConfig::Static {
            name: Some("peg".into()),
            rates: [("USDT/USD".to_string(), "0.8".to_string())].into(),
        }],
        ..RatesConfig::default()
    })
    .unwrap();
    builder.services = builder.services.with_rates(std::sync::Arc::new(rates));
    let app = builder.start().await;
    let m = app.register("", "Shop").await;
    let before = polypay_host::store::now_ms();
    let r = app
        .request(reqwest::Method::POST, "/echo/invoices", Some(&m.token))
        .json(
            &json!({ "fiat": { "amount": "20.00", "currency": "usd" }, "chain": "ethereum",
                       "asset": "USDT", "order_id": "f-1",
                       "fixed_address": "0x3333333333333333333333333333333333333333" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let invoice: Value = r.json().await.unwrap();
    // 20 USD at 0.8 USD per USDT: 25 USDT.
    assert_eq!(invoice["amount_due"], "25000000", "{invoice}");
    assert_eq!(
        invoice["fiat"],
        json!({ "amount": "20.00", "currency": "USD" })
    );
    let id = invoice["id"].as_str().unwrap();
    let read: Value = app
        .request(
            reqwest::Method::GET,
            &format!("/echo/invoices/{id}"),
            Some(&m.token),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["fiat"], invoice["fiat"]);

    let stored = app.storage().store.invoice(id).await.unwrap().unwrap();
    let quote = stored.fiat.expect("the quote is kept on the invoice");
    assert_eq!(quote.amount, "20.00");
    assert_eq!(quote.currency, "USD");
    assert_eq!(quote.rate, "0.8");
    assert_eq!(quote.source, "peg");
    assert!(quote.quoted_at >= before);
    assert_eq!(quote.valid_until - quote.quoted_at, 120_000);

    // Priced in the asset itself: no fiat price, no quote.
    let (status, plain) = app.create_invoice("", Some(&m.token), "p-1").await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(plain["fiat"], Value::Null);
    let plain_id = plain["id"].as_str().unwrap();
    let stored = app
        .storage()
        .store
        .invoice(plain_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.fiat, None);

    // The quoted amount is rounded up to the asset's unique-amount step (1 USDT here):
    // 20.50 USD at 0.8 is 25.625 USDT, asked as 26.
    let r = app
        .request(reqwest::Method::POST, "/echo/invoices", Some(&m.token))
        .json(
            &json!({ "fiat": { "amount": "20.50", "currency": "USD" }, "chain": "ethereum",
                       "asset": "USDT", "order_id": "f-2",
                       "fixed_address": "0x5555555555555555555555555555555555555555" }),
        )
        .send()
        .await
        .unwrap();
    let stepped: Value = r.json().await.unwrap();
    assert_eq!(stepped["amount_due"], "26000000", "{stepped}");
}

/// A rate endpoint whose USDT/USD rate the test sets: `{"rate": "<rate>"}` at `/rate`.
async fn settable_rate(initial: &str) -> (String, std::sync::Arc<std::sync::Mutex<String>>) {
    let rate = std::sync::Arc::new(std::sync::Mutex::new(initial.to_string()));
    let served = rate.clone();
    let app = axum::Router::new().route(
        "/rate",
        axum::routing::get(move || {
            let rate = served.lock().unwrap().clone();
            async move { axum::Json(json!({ "rate": rate })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rate", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rate)
}

/// Records a confirmed USDT transfer of `amount` to `to` mined at `block_time`, the way a
/// listener does, and settles what it credits; returns the invoices credited.
async fn pay_usdt(
    store: &polypay_host::store::Store,
    to: &str,
    amount: u64,
    log_index: i64,
    block_time: i64,
) -> std::collections::BTreeSet<String> {
    use polypay_host::invoice::{Amount, ChainView, InvoiceService, ObservedTransfer};
    let now = polypay_host::store::now_ms();
    let mut tx = store.begin().await.unwrap();
    let transfer = ObservedTransfer {
        chain: "ethereum".into(),
        tx_hash: format!("0x{:064x}", 0xabc0 + log_index),
        log_index,
        block_number: 100,
        block_hash: format!("0x{}", "11".repeat(32)),
        block_time,
        from: "0x00000000000000000000000000000000000000bb".into(),
        to: to.into(),
        asset: "USDT".into(),
        amount: Amount::from(amount),
        reference: None,
    };
    let credited = polypay_host::matcher::record_transfers(&mut tx, &[transfer], now)
        .await
        .unwrap();
    // Deep enough for any confirmation count.
    let view = ChainView {
        processed_block: 10_000,
        final_block: None,
    };
    InvoiceService::new(store.clone())
        .settle_in(&mut tx, &credited, view, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    credited
}

/// `invoices.requote`: a fiat-priced unique-amount invoice moves to the current rate with
/// a reservation of its own; the replaced amount stays reserved and pays in full within
/// the grace period, not after it; a paid invoice, or one not priced in fiat, is never
/// re-quoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requoted_invoice_moves_to_the_current_rate_and_the_old_amount_pays_only_within_the_grace()
 {
    use polypay_host::invoice::InvoiceStatus;
    use polypay_host::rates::{JsonSource, ProviderConfig, Rates, RatesConfig};
    const SHARED: &str = "0x4444444444444444444444444444444444444444";
    let (url, rate) = settable_rate("1").await;
    let mut builder = TestApp::init().with_storage().await.with_plugin(
        PluginConfig::new("echo", TEST_ECHO).with_settings(json!({ "receiving_address": SHARED })),
    );
    let rates = Rates::new(&RatesConfig {
        cache_secs: 0,
        requote_grace_secs: 300,
        providers: vec![ProviderConfig::Json {
            name: Some("feed".into()),
            pairs: [(
                "USDT/USD".to_string(),
                JsonSource {
                    url,
                    pointer: "/rate".into(),
                },
            )]
            .into(),
            timeout_ms: 5_000,
        }],
        ..RatesConfig::default()
    })
    .unwrap();
    builder.services = builder.services.with_rates(std::sync::Arc::new(rates));
    let app = builder.start().await;
    let store = app.storage().store.clone();
    let m = app.register("", "Shop").await;
    let post = |path: String, body: Value| {
        let request = app
            .request(reqwest::Method::POST, &path, Some(&m.token))
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let create = |usd: &str, order: &str| {
        post(
            "/echo/invoices".into(),
            json!({ "fiat": { "amount": usd, "currency": "USD" }, "chain": "ethereum",
                    "asset": "USDT", "order_id": order }),
        )
    };
    let requote = |id: &str| post(format!("/echo/invoices/{id}/requote"), json!({}));

    let (status, a) = create("20.00", "a").await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["amount_due"], "20000000");
    let a_id = a["id"].as_str().unwrap().to_owned();

    *rate.lock().unwrap() = "0.8".into();
    let (status, requoted) = requote(&a_id).await;
    assert_eq!(status, 200, "{requoted}");
    assert_eq!(requoted["amount_due"], "25000000", "20 USD at 0.8");
    assert_eq!(
        requoted["fiat"],
        json!({ "amount": "20.00", "currency": "USD" })
    );
    let stored = store.invoice(&a_id).await.unwrap().unwrap();
    let quote = stored.fiat.clone().unwrap();
    assert_eq!(
        (quote.rate.as_str(), quote.source.as_str()),
        ("0.8", "feed")
    );
    let previous = stored.previous_due.expect("the replaced amount is kept");
    assert_eq!(previous.amount.to_string(), "20000000");
    assert_eq!(previous.until, quote.quoted_at + 300_000);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM outbox_events WHERE invoice_id = $1 ORDER BY id")
            .bind(&a_id)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(kinds, ["invoice.created", "invoice.requoted"]);

    // Both amounts are A's now: the new one by its own reservation, the old one through
    // the grace. Other invoices asking for them get the next free amounts.
    let (_, b) = create("20.00", "b").await;
    // (The asset's unique-amount step here is 1 USDT.)
    assert_eq!(b["amount_due"], "26000000", "{b}");
    let (_, c) = create("16.00", "c").await;
    assert_eq!(c["amount_due"], "21000000", "{c}");

    // The old amount, paid within the grace, pays A in full at the amount it replaced.
    let now = polypay_host::store::now_ms();
    let credited = pay_usdt(&store, SHARED, 20_000_000, 1, now).await;
    assert!(credited.contains(&a_id), "the old amount matches A");
    let paid = store.invoice(&a_id).await.unwrap().unwrap();
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert!(
        !paid.outcome.underpaid && !paid.outcome.overpaid,
        "{:?}",
        paid.outcome
    );
    assert_eq!(paid.amount_due.to_string(), "20000000");

    // A paid invoice is never re-quoted, nor one priced in the asset itself.
    *rate.lock().unwrap() = "0.5".into();
    let (status, refused) = requote(&a_id).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        store
            .invoice(&a_id)
            .await
            .unwrap()
            .unwrap()
            .amount_due
            .to_string(),
        "20000000"
    );
    let (_, plain) = post(
        "/echo/invoices".into(),
        json!({ "amount": "1000000", "chain": "ethereum", "asset": "USDT", "order_id": "p" }),
    )
    .await;
    let (status, _) = requote(plain["id"].as_str().unwrap()).await;
    assert_eq!(status, 409);

    // After the grace: B (26000000 at 0.8) is re-quoted at 0.5 to 40000000; its old
    // amount, mined after the grace, is not a full payment.
    let b_id = b["id"].as_str().unwrap().to_owned();
    let (status, b2) = requote(&b_id).await;
    assert_eq!(status, 200, "{b2}");
    assert_eq!(b2["amount_due"], "40000000");
    let until = store
        .invoice(&b_id)
        .await
        .unwrap()
        .unwrap()
        .previous_due
        .unwrap()
        .until;
    pay_usdt(&store, SHARED, 26_000_000, 2, until + 1).await;
    let b_now = store.invoice(&b_id).await.unwrap().unwrap();
    assert_eq!(
        b_now.status,
        InvoiceStatus::Pending,
        "too late for the old quote"
    );
    assert_eq!(b_now.amount_due.to_string(), "40000000");

    // Once the chain has been read past the grace, the old amount's reservation ends and
    // a transfer of it matches nothing at all.
    let (_, d) = create("5.00", "d").await;
    let d_id = d["id"].as_str().unwrap().to_owned();
    *rate.lock().unwrap() = "0.25".into();
    let (_, d2) = requote(&d_id).await;
    let d_old: u64 = d["amount_due"].as_str().unwrap().parse().unwrap();
    let d_new: u64 = d2["amount_due"].as_str().unwrap().parse().unwrap();
    assert_eq!(d_old, 10_000_000, "5 USD at 0.5");
    assert!(
        d_new >= 20_000_000 && d_new != 21_000_000,
        "5 USD at 0.25: {d2}"
    );
    let until = store
        .invoice(&d_id)
        .await
        .unwrap()
        .unwrap()
        .previous_due
        .unwrap()
        .until;
    sqlx::query(
        "INSERT INTO chain_cursors (chain, processed_block, processed_time, updated_at) VALUES ($1, $2, $3, $3)",
    )
    .bind("ethereum")
    .bind(110i64)
    .bind(until + 1)
    .execute(store.pool())
    .await
    .unwrap();
    polypay_host::invoice::InvoiceService::new(store.clone())
        .release_due_targets(until + 1)
        .await
        .unwrap();
    let credited = pay_usdt(&store, SHARED, d_old, 3, until + 2).await;
    assert!(
        credited.is_empty(),
        "the released old amount matches nothing"
    );
    let d_now = store.invoice(&d_id).await.unwrap().unwrap();
    assert_eq!(d_now.amount_paid.to_string(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_idempotent_create_returns_the_first_invoice_and_a_changed_one_conflicts() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    let m = app.register("", "Shop").await;
    let body = json!({ "amount": "1500000", "chain": "ethereum", "asset": "USDT", "order_id": "o-7",
                       "fixed_address": PAY_TO, "idempotency_key": "o-7" });
    let create = |body: Value| {
        let request = app
            .request(reqwest::Method::POST, "/echo/invoices", Some(&m.token))
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = create(body.clone()).await;
    assert_eq!(status, 201, "{first}");
    // The client never saw that answer and sends the same request again.
    let (status, again) = create(body.clone()).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(
        again["id"], first["id"],
        "the retry gets the invoice already made"
    );
    let mut changed = body.clone();
    changed["amount"] = json!("2500000");
    let (status, conflict) = create(changed).await;
    assert_eq!(status, 409, "{conflict}");
    assert!(
        conflict["detail"]
            .as_str()
            .unwrap()
            .contains("idempotency key"),
        "{conflict}"
    );
    let mut empty = body;
    empty["idempotency_key"] = json!("");
    assert_eq!(create(empty).await.0, 400);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invoices")
        .fetch_one(app.storage().store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_read_another_plugins_invoice_or_keys() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("alpha", TEST_ECHO).with_prefix("/a"))
        .with_plugin(PluginConfig::new("beta", TEST_ECHO).with_prefix("/b"))
        .start()
        .await;
    let m = app.register("/a", "Shop").await;
    let (_, invoice) = app.create_invoice("/a", Some(&m.token), "o-1").await;
    let id = invoice["id"].as_str().unwrap();

    assert_eq!(
        app.status_of(
            reqwest::Method::GET,
            &format!("/a/echo/invoices/{id}"),
            None
        )
        .await,
        200
    );
    assert_eq!(
        app.status_of(
            reqwest::Method::GET,
            &format!("/b/echo/invoices/{id}"),
            None
        )
        .await,
        404
    );
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/b/echo/orders/o-1", None)
            .await,
        404
    );
    assert_eq!(
        app.status_of(
            reqwest::Method::POST,
            &format!("/b/echo/invoices/{id}/submitted"),
            None
        )
        .await,
        404
    );

    assert_eq!(
        app.http
            .put(app.url("/a/echo/kv/shared"))
            .body("alpha's")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(app.get("/b/echo/kv/shared").await.status(), 404);
    assert_eq!(
        app.get("/a/echo/kv/shared").await.text().await.unwrap(),
        "alpha's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_registered_in_one_plugin_cannot_authenticate_in_another() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("alpha", TEST_ECHO).with_prefix("/a"))
        .with_plugin(PluginConfig::new("beta", TEST_ECHO).with_prefix("/b"))
        .start()
        .await;
    let m = app.register("/a", "Shop").await;
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/a/echo/stats", Some(&m.token))
            .await,
        200
    );
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/b/echo/stats", Some(&m.token))
            .await,
        401
    );

    // A merchant the operator created belongs to no plugin: every plugin may serve it.
    let spec = CredentialSpec {
        kind: "bearer".into(),
        secret: SecretFormat::uuid(),
        public_id: None,
    };
    let operator = app
        .storage()
        .merchants
        .create("Operator shop", None, json!({}), &[spec])
        .await
        .unwrap();
    let token = operator.credentials[0].secret.clone();
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/a/echo/stats", Some(&token))
            .await,
        200
    );
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/b/echo/stats", Some(&token))
            .await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_merchant_sees_only_its_own_invoices_and_profile() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    let first = app.register("", "First").await;
    let second = app.register("", "Second").await;
    let (_, invoice) = app
        .create_invoice("", Some(&first.token), "shared-order")
        .await;
    let id = invoice["id"].as_str().unwrap();
    app.create_invoice("", Some(&second.token), "shared-order")
        .await;

    let get = |token: String, path: String| {
        let app = &app;
        async move {
            app.status_of(reqwest::Method::GET, &path, Some(&token))
                .await
        }
    };
    assert_eq!(
        get(first.token.clone(), format!("/echo/invoices/{id}")).await,
        200
    );
    assert_eq!(
        get(second.token.clone(), format!("/echo/invoices/{id}")).await,
        404
    );
    assert_eq!(
        app.status_of(
            reqwest::Method::POST,
            &format!("/echo/invoices/{id}/cancel"),
            Some(&second.token)
        )
        .await,
        404
    );
    assert_eq!(
        get(
            second.token.clone(),
            format!("/echo/merchants/{}", first.merchant_id)
        )
        .await,
        403
    );
    assert_eq!(
        get(
            first.token.clone(),
            format!("/echo/merchants/{}", first.merchant_id)
        )
        .await,
        200
    );

    let mine: Value = app
        .request(
            reqwest::Method::GET,
            "/echo/orders/shared-order",
            Some(&second.token),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["merchant_id"], second.merchant_id.as_str());
    let list: Value = app
        .request(reqwest::Method::GET, "/echo/invoices", Some(&second.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["merchant_id"], second.merchant_id.as_str());

    let cancelled: Value = app
        .request(
            reqwest::Method::POST,
            &format!("/echo/invoices/{id}/cancel"),
            Some(&first.token),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let stats: Value = app
        .request(reqwest::Method::GET, "/echo/stats", Some(&first.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, json!({ "total": 1, "pending": 0, "cancelled": 1 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_calls_read_and_mark_submitted_but_cannot_list_or_cancel() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    let m = app.register("", "Shop").await;
    let (_, invoice) = app.create_invoice("", Some(&m.token), "o-1").await;
    let id = invoice["id"].as_str().unwrap();

    assert_eq!(
        app.status_of(reqwest::Method::GET, &format!("/echo/invoices/{id}"), None)
            .await,
        200
    );
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/echo/invoices", None)
            .await,
        401
    );
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/echo/stats", None)
            .await,
        401
    );
    assert_eq!(
        app.status_of(
            reqwest::Method::POST,
            &format!("/echo/invoices/{id}/cancel"),
            None
        )
        .await,
        401
    );
    let submitted: Value = app
        .http
        .post(app.url(&format!("/echo/invoices/{id}/submitted")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(submitted["submitted"], true);
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/echo/invoices", Some("not-a-token"))
            .await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_invoice_creation_is_only_for_the_configured_default_merchant() {
    let without = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    assert_eq!(without.create_invoice("", None, "anon-1").await.0, 401);

    let unknown = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("echo", TEST_ECHO).with_default_merchant("no-such-merchant"))
        .try_start()
        .await;
    assert!(
        matches!(unknown, Err(PluginError::Config { .. })),
        "an unknown default merchant fails start-up"
    );

    let mut builder = TestApp::init().with_storage().await;
    let operator = builder
        .storage
        .as_ref()
        .unwrap()
        .merchants
        .create("Operator", None, json!({}), &[])
        .await
        .unwrap();
    builder = builder.with_plugin(
        PluginConfig::new("echo", TEST_ECHO).with_default_merchant(operator.merchant.id.clone()),
    );
    let app = builder.start().await;
    let (status, invoice) = app.create_invoice("", None, "anon-1").await;
    assert_eq!(status, 201, "{invoice}");
    assert_eq!(invoice["merchant_id"], operator.merchant.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_obtain_a_stored_secret_only_use_its_own_by_handle() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    let first = app.register("", "First").await;
    let second = app.register("", "Second").await;

    // Everything the contract returns about credentials and merchants lacks the secrets.
    for path in [
        "/echo/credentials".to_owned(),
        format!("/echo/merchants/{}", first.merchant_id),
    ] {
        let text = app
            .request(reqwest::Method::GET, &path, Some(&first.token))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !text.contains(&first.token) && !text.contains(&first.signing_secret),
            "{path} leaks a secret: {text}"
        );
    }
    // The host signs with the stored secret by handle: the MAC is right, the key never crossed.
    let signed: Value = app
        .request(
            reqwest::Method::POST,
            &format!("/echo/sign/{}", first.signing_credential_id),
            Some(&first.token),
        )
        .body("message")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        signed["mac"],
        hmac_sha256_hex(first.signing_secret.as_bytes(), b"message")
    );
    // Another merchant's credential handle is not usable, nor is any handle unauthenticated.
    let path = format!("/echo/sign/{}", first.signing_credential_id);
    assert_eq!(
        app.request(reqwest::Method::POST, &path, Some(&second.token))
            .body("m")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.request(reqwest::Method::POST, &path, None)
            .body("m")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // At rest the secrets are sealed.
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM credentials")
        .fetch_all(app.storage().store.pool())
        .await
        .unwrap();
    assert!(sealed.iter().all(|s| {
        !s.windows(first.signing_secret.len())
            .any(|w| w == first.signing_secret.as_bytes())
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_cover_every_invoice_once_with_totals_by_cursor_or_number() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    let m = app.register("", "Shop").await;
    for i in 0..5 {
        assert_eq!(
            app.create_invoice("", Some(&m.token), &format!("o-{i}"))
                .await
                .0,
            201
        );
    }
    let page = |query: String| {
        let (app, token) = (&app, m.token.clone());
        async move {
            let path = format!("/echo/invoices?{query}");
            app.request(reqwest::Method::GET, &path, Some(&token))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let orders = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["order_id"].as_str().unwrap().to_owned())
            .collect()
    };

    // By cursor: 2 + 2 + 1, every invoice exactly once.
    let first = page("limit=2".into()).await;
    assert_eq!(
        (first["total"].as_u64(), first["pages"].as_u64()),
        (Some(5), Some(3))
    );
    let second = page(format!("limit=2&after={}", first["next"].as_str().unwrap())).await;
    let third = page(format!(
        "limit=2&after={}",
        second["next"].as_str().unwrap()
    ))
    .await;
    assert!(third["next"].is_null());
    let mut seen: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| orders(p))
        .collect();
    assert_eq!(orders(&third).len(), 1);
    seen.sort();
    assert_eq!(seen, ["o-0", "o-1", "o-2", "o-3", "o-4"]);

    // By page number: the same pages.
    assert_eq!(
        orders(&page("limit=2&page=2".into()).await),
        orders(&second)
    );
    assert_eq!(orders(&page("limit=2&page=3".into()).await), orders(&third));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_rendered_by_the_owning_plugin_and_signed_by_handle() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .start()
        .await;
    let m = app.register("", "Shop").await;
    let (_, created) = app.create_invoice("", Some(&m.token), "o-1").await;
    let stored = app
        .storage()
        .store
        .invoice(created["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let event = status_event("echo", 42, &stored, None);
    let rendered = app
        .runtime
        .render(&event, 2)
        .await
        .unwrap()
        .expect("echo renders a callback");
    assert_eq!(
        (rendered.method.as_str(), rendered.url.as_str()),
        ("POST", "https://merchant.example/cb")
    );
    let body: Value = serde_json::from_slice(&rendered.body).unwrap();
    assert_eq!(
        body,
        json!({ "invoice_id": stored.id, "status": "pending", "event_id": "42", "attempt": 2 })
    );
    let signature = rendered
        .headers
        .iter()
        .find(|(k, _)| k == "x-echo-signature")
        .map(|(_, v)| v.clone());
    assert_eq!(
        signature,
        Some(format!(
            "sha256={}",
            hmac_sha256_hex(m.token.as_bytes(), &rendered.body)
        ))
    );
    assert_eq!(
        rendered.accept,
        polypay_host::webhook::Acceptance::ExactlyOk
    );

    let unmounted = WebhookEvent {
        plugin: "gone".into(),
        ..event
    };
    assert!(matches!(
        app.runtime.render(&unmounted, 1).await,
        Err(polypay_host::webhook::RenderError::PluginNotMounted(_))
    ));
}
