//! The plugin contract across versions, through the real host (real components, real
//! HTTP over loopback, SQLite):
//!
//! - a component built against the released `polypay:plugin@0.1.0` (`test-compat-v0-1`,
//!   generated straight from `plugin-sdk/wit/0.1.0` with wit-bindgen, never through the
//!   SDK) mounts beside a 0.2.0 one and serves a request, a host call that writes
//!   (invoice creation) and webhook rendering;
//! - components of an unsupported or mixed version, or importing what the host does not
//!   provide, fail start-up naming the plugin;
//! - 0.2.0 money: `price.decimal`, the invoice's `-decimal` fields and the `money`
//!   interface, and the SDK's fake host agreeing with the host on a table of amounts;
//! - 0.2.0 webhook delivery statistics with attempt counts.

mod common;

use common::plugins::{TestApp, hmac_sha256_hex, pay_to, status_event};
use polypay_host::chain::{AssetConfig, ChainConfig};
use polypay_host::plugin::{ContractError, PluginConfig, PluginError, WitVersion};
use polypay_host::store::outbox::{self, AttemptOutcome, AttemptReport, Next};
use polypay_host::webhook::WebhookRenderer;
use polypay_plugin_artifacts::TEST_COMPAT_V0_1;
use serde_json::{Value, json};

async fn compat_and_echo() -> TestApp {
    TestApp::init()
        .with_storage()
        .await
        .with_plugin(
            PluginConfig::new("compat", TEST_COMPAT_V0_1).with_settings(json!({ "k": "v" })),
        )
        .with_echo()
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_component_mounts_beside_a_0_2_one_and_serves_requests_writes_and_webhooks() {
    let app = compat_and_echo().await;
    let versions: Vec<(String, WitVersion)> = app
        .runtime
        .plugins()
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("compat".to_owned(), WitVersion::V0_1),
            ("echo".to_owned(), WitVersion::V0_2)
        ]
    );

    // A request, with context calls linked under their 0.1.0 names.
    let hello: Value = app.get("/compat/hello?x=1").await.json().await.unwrap();
    assert_eq!(
        (&hello["plugin"], &hello["settings"], &hello["query"]),
        (&json!("compat"), &json!({ "k": "v" }), &json!("x=1"))
    );
    // The 0.2.0 plugin in the same runtime is unaffected.
    assert_eq!(app.get("/echo/settings").await.status(), 200);

    // Writes: a merchant, its credential, an invoice.
    let registered: Value = app
        .post_json("/compat/merchants", &json!({ "name": "Old Shop" }))
        .await
        .json()
        .await
        .unwrap();
    let token = registered["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("v01_"), "{registered}");
    let create = json!({ "amount": "1500000", "chain": "ethereum", "asset": "USDT",
                         "order_id": "legacy-1", "pay_to": pay_to(0),
                         "notify_url": "https://merchant.example/cb" });
    let response = app
        .request(reqwest::Method::POST, "/compat/invoices", Some(&token))
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        (
            &created["amount_due"],
            &created["decimals"],
            &created["status"]
        ),
        (&json!("1500000"), &json!(6), &json!("pending"))
    );
    let id = created["id"].as_str().unwrap();
    let stored = app
        .storage()
        .store
        .invoice(id)
        .await
        .unwrap()
        .expect("the 0.1.0 plugin's invoice is stored");
    assert_eq!(
        (stored.plugin.as_str(), stored.amount_due.to_string()),
        ("compat", "1500000".to_owned())
    );
    assert_eq!(stored.merchant_order_id.as_deref(), Some("legacy-1"));
    // Bad input is refused by the same validation as for 0.2.0: nothing written.
    let refused = app
        .request(reqwest::Method::POST, "/compat/invoices", Some(&token))
        .json(
            &json!({ "amount": "1.5", "chain": "ethereum", "asset": "USDT", "pay_to": pay_to(1) }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let read: Value = app
        .get(&format!("/compat/invoices/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, created);
    // The invoice belongs to the 0.1.0 plugin: the 0.2.0 one cannot see it.
    assert_eq!(app.get(&format!("/echo/invoices/{id}")).await.status(), 404);
    let stats = app
        .request(reqwest::Method::GET, "/compat/stats", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200);
    let stats: Value = stats.json().await.unwrap();
    assert_eq!(stats["days"], 30);

    // Webhook rendering: the 0.2.0 event converted to 0.1.0, the delivery back.
    let event = status_event(
        "compat",
        7,
        &stored,
        Some(polypay_host::invoice::InvoiceStatus::Pending),
    );
    let rendered = app
        .runtime
        .render(&event, 3)
        .await
        .unwrap()
        .expect("the 0.1.0 plugin renders a callback");
    assert_eq!(
        (rendered.method.as_str(), rendered.url.as_str()),
        ("POST", "https://merchant.example/cb")
    );
    let body: Value = serde_json::from_slice(&rendered.body).unwrap();
    assert_eq!(body["event_id"], "7");
    assert_eq!(body["attempt"], 3);
    assert_eq!(body["previous_status"], "pending");
    assert_eq!(body["invoice"]["id"], json!(id));
    assert_eq!(body["invoice"]["amount_due"], "1500000");
    let signature = rendered
        .headers
        .iter()
        .find(|(k, _)| k == "x-compat-signature")
        .map(|(_, v)| v.clone());
    assert_eq!(
        signature,
        Some(hmac_sha256_hex(token.as_bytes(), &rendered.body)),
        "signed with the merchant's credential, by handle"
    );
    assert_eq!(
        rendered.accept,
        polypay_host::webhook::Acceptance::AnySuccess
    );
}

/// Writes `wat` (a component in text form) to a file and tries to mount it as `name`.
async fn mount_wat(name: &str, wat: &str) -> Result<TestApp, PluginError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(wat).expect("valid component text")).unwrap();
    let started = TestApp::init()
        .with_plugin(PluginConfig::new(name, path.to_str().unwrap()))
        .try_start()
        .await;
    drop(dir);
    started
}

fn contract_error(result: Result<TestApp, PluginError>) -> (String, ContractError) {
    match result {
        Err(PluginError::Contract { plugin, source }) => (plugin, source),
        Err(other) => panic!("expected a contract error, got: {other}"),
        Ok(_) => panic!("the component was mounted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_mixed_and_forbidden_imports_fail_startup_naming_the_plugin() {
    let (plugin, error) = contract_error(
        mount_wat(
            "future",
            r#"(component (import "polypay:plugin/clock@0.3.0" (instance)))"#,
        )
        .await,
    );
    assert_eq!(plugin, "future");
    assert_eq!(
        error,
        ContractError::UnsupportedVersion {
            version: "0.3.0".into()
        }
    );

    let mixed = r#"(component
        (import "polypay:plugin/clock@0.1.0" (instance))
        (import "polypay:plugin/money@0.2.0" (instance)))"#;
    let (plugin, error) = contract_error(mount_wat("mixed", mixed).await);
    assert_eq!(plugin, "mixed");
    assert!(
        matches!(error, ContractError::MixedVersions { .. }),
        "{error}"
    );

    for forbidden in [
        "wasi:sockets/tcp@0.2.0",
        "wasi:http/outgoing-handler@0.2.0",
        "wasi:filesystem/extra@0.2.0",
    ] {
        let wat = format!(
            r#"(component (import "polypay:plugin/clock@0.2.0" (instance)) (import "{forbidden}" (instance)))"#
        );
        let result = mount_wat("sneaky", &wat).await;
        let message = match &result {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{forbidden} was mounted"),
        };
        assert!(
            message.contains("`sneaky`") && message.contains(forbidden),
            "{message}"
        );
        assert_eq!(
            contract_error(result).1,
            ContractError::ForbiddenImport {
                import: forbidden.into()
            }
        );
    }

    let (_, error) = contract_error(mount_wat("empty", "(component)").await);
    assert!(matches!(error, ContractError::NotAPlugin { .. }), "{error}");
}

/// Every WASI interface the host says it provides is linked: a component importing it
/// passes linking and fails only for having no plugin exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wasi_interface_the_host_allows_is_linked() {
    assert!(
        !polypay_host::plugin::PROVIDED_WASI
            .iter()
            .any(|i| i.starts_with("wasi:sockets") || i.starts_with("wasi:http")),
        "plugins get no network"
    );
    for interface in polypay_host::plugin::PROVIDED_WASI {
        let wat = format!(r#"(component (import "{interface}@0.2.0" (instance)))"#);
        let (_, error) = contract_error(mount_wat("wasi", &wat).await);
        assert!(
            matches!(error, ContractError::NotAPlugin { .. }),
            "{interface}: {error}"
        );
    }
}

/// `ethereum` with USDT (6 decimals) and ETH (18), as the real host and the fake host
/// both know it.
fn ethereum() -> ChainConfig {
    let mut chain: ChainConfig = serde_json::from_value(json!({
        "name": "ethereum", "kind": "evm", "chain_id": 1, "rpc_url": "http://127.0.0.1:9",
        "assets": [{ "symbol": "USDT", "decimals": 6, "contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
                     "unique_amount_step": "1" }]
    }))
    .expect("valid chain config");
    let eth: AssetConfig =
        serde_json::from_value(json!({ "symbol": "ETH", "decimals": 18, "native": true }))
            .expect("valid asset");
    chain.assets.push(eth);
    chain
}

async fn money_app() -> TestApp {
    let mut builder = TestApp::init().with_storage().await.with_echo();
    builder.services = builder.services.with_chains(vec![ethereum()]);
    builder.start().await
}

/// `2^256 - 1`.
const U256_MAX: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";
const TWO_POW_256: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639936";

fn money_table() -> Vec<Value> {
    let mut table = Vec::new();
    let decimals = [
        "99.99",
        "0.000001",
        "0.0000001",
        "1.500",
        "1.5000000",
        "1.0000001",
        "007.50",
        "0",
        "0.0",
        "",
        "-1",
        "-0",
        "-0.5",
        "+1",
        "1e6",
        "1E-6",
        " 1",
        "1 ",
        "\t1",
        "1\n",
        "1\u{a0}",
        "１",
        "1,000",
        "1_000",
        ".5",
        "5.",
        ".",
        "-",
        "--1",
        "NaN",
        "Infinity",
        "0x10",
        "1.2.3",
    ];
    for asset in ["USDT", "ETH"] {
        for d in decimals {
            table.push(json!({ "chain": "ethereum", "asset": asset, "decimal": d }));
        }
    }
    // Around 2^256 base units, in each asset's units.
    let human = |digits: &str, decimals: usize| {
        let (int, frac) = digits.split_at(digits.len() - decimals);
        format!("{int}.{frac}")
    };
    for (asset, d) in [("USDT", 6), ("ETH", 18)] {
        table.push(json!({ "chain": "ethereum", "asset": asset, "decimal": human(U256_MAX, d) }));
        table
            .push(json!({ "chain": "ethereum", "asset": asset, "decimal": human(TWO_POW_256, d) }));
    }
    table.push(json!({ "chain": "ethereum", "asset": "ETH", "decimal": "9".repeat(100) }));
    for units in [
        "99990000",
        "0",
        "0001",
        "1",
        "1.5",
        "-1",
        "",
        " 1",
        "1e6",
        U256_MAX,
        TWO_POW_256,
    ] {
        for asset in ["USDT", "ETH"] {
            table.push(json!({ "chain": "ethereum", "asset": asset, "base_units": units }));
        }
    }
    table.push(json!({ "chain": "tron", "asset": "USDT", "decimal": "1" }));
    table.push(json!({ "chain": "ethereum", "asset": "DOGE", "decimal": "1" }));
    table.push(json!({ "chain": "ethereum", "asset": "DOGE", "base_units": "1" }));
    table
}

/// The SDK's fake host answers every conversion exactly as the host does: the same
/// plugin code (the echo test program), once in the real host and once natively on the
/// fake host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_host_converts_money_exactly_like_the_host() {
    use polypay_plugin_sdk::chains::{AssetInfo, NetworkInfo};
    use polypay_plugin_sdk::testing::Harness;

    let table = money_table();
    let app = money_app().await;
    let response = app.post_json("/echo/money", &json!(table)).await;
    assert_eq!(response.status(), 200);
    let real: Vec<Value> = response.json().await.unwrap();

    let harness = Harness::<polypay_test_echo::Echo>::new();
    let asset = |symbol: &str, decimals| AssetInfo {
        symbol: symbol.into(),
        decimals,
        contract: None,
    };
    harness.host().add_network(NetworkInfo {
        name: "ethereum".into(),
        family: "evm".into(),
        chain_id: Some(1),
        required_confirmations: 12,
        assets: vec![asset("USDT", 6), asset("ETH", 18)],
        payment_contracts: Vec::new(),
    });
    let fake: Vec<Value> = harness
        .post("/echo/money")
        .json(&table)
        .send()
        .body_json()
        .unwrap();

    assert_eq!(real.len(), table.len());
    for ((input, real), fake) in table.iter().zip(&real).zip(&fake) {
        assert_eq!(real, fake, "host and fake host disagree on {input}");
    }
    // And the host's answers are the right ones, not merely shared.
    let answer = |chain: &str, asset: &str, key: &str, value: &str| {
        let i = table
            .iter()
            .position(|t| t["chain"] == chain && t["asset"] == asset && t[key] == value)
            .unwrap();
        real[i].clone()
    };
    assert_eq!(
        answer("ethereum", "USDT", "decimal", "99.99"),
        json!({ "ok": "99990000" })
    );
    assert_eq!(
        answer("ethereum", "ETH", "decimal", "0.000001"),
        json!({ "ok": "1000000000000" })
    );
    assert_eq!(
        answer("ethereum", "USDT", "decimal", "1.5000000"),
        json!({ "ok": "1500000" })
    );
    assert_eq!(
        answer("ethereum", "USDT", "base_units", "0001"),
        json!({ "ok": "0.000001" })
    );
    assert_eq!(
        answer("ethereum", "ETH", "base_units", U256_MAX)["ok"],
        json!(format!("{}.{}", &U256_MAX[..60], &U256_MAX[60..]))
    );
    let invalid = |v: Value, why: &str| {
        assert_eq!(v["error"], "invalid", "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains(why),
            "{v} should say {why}"
        );
    };
    invalid(
        answer("ethereum", "USDT", "decimal", "0.0000001"),
        "more than 6 fractional digits",
    );
    invalid(
        answer("ethereum", "USDT", "decimal", "-1"),
        "must not be negative",
    );
    invalid(answer("ethereum", "USDT", "decimal", ""), "amount is empty");
    invalid(answer("ethereum", "USDT", "decimal", "1e6"), "malformed");
    invalid(answer("ethereum", "USDT", "decimal", " 1"), "malformed");
    invalid(answer("ethereum", "USDT", "decimal", "+1"), "malformed");
    invalid(
        answer(
            "ethereum",
            "ETH",
            "decimal",
            &format!("{}.{}", &TWO_POW_256[..60], &TWO_POW_256[60..]),
        ),
        "too large",
    );
    invalid(
        answer("ethereum", "USDT", "base_units", TWO_POW_256),
        "too large",
    );
    invalid(answer("ethereum", "USDT", "base_units", "1.5"), "malformed");
    assert_eq!(
        answer("tron", "USDT", "decimal", "1")["error"],
        "unsupported"
    );
    assert_eq!(
        answer("ethereum", "DOGE", "decimal", "1")["error"],
        "unsupported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decimal_price_is_converted_by_the_host_and_refused_precisely_writing_nothing() {
    let app = money_app().await;
    let m = app.register("", "Shop").await;
    let create = |n: u64, asset: &str, decimal: &str| json!({ "decimal": decimal, "chain": "ethereum", "asset": asset, "fixed_address": pay_to(n) });
    let response = app
        .request(reqwest::Method::POST, "/echo/invoices", Some(&m.token))
        .json(&create(0, "USDT", "12.345678"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let usdt: Value = response.json().await.unwrap();
    assert_eq!(
        (
            &usdt["amount_due"],
            &usdt["amount_due_decimal"],
            &usdt["amount_paid_decimal"]
        ),
        (&json!("12345678"), &json!("12.345678"), &json!("0"))
    );
    let response = app
        .request(reqwest::Method::POST, "/echo/invoices", Some(&m.token))
        .json(&create(1, "ETH", "0.05"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let eth: Value = response.json().await.unwrap();
    assert_eq!(
        (
            &eth["amount_due"],
            &eth["amount_due_decimal"],
            &eth["decimals"]
        ),
        (&json!("50000000000000000"), &json!("0.05"), &json!(18))
    );

    for (bad, why) in [
        ("1.2345678", "more than 6 fractional digits"),
        ("-5", "must not be negative"),
        ("5e2", "malformed"),
        (" 5", "malformed"),
        ("", "amount is empty"),
        ("0.000", "greater than zero"),
        (
            "115792089237316195423570985008687907853269984665640564039457584007913129.639936",
            "too large",
        ),
    ] {
        let response = app
            .request(reqwest::Method::POST, "/echo/invoices", Some(&m.token))
            .json(&create(2, "USDT", bad))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{bad:?}: {body}"
        );
    }
    let page: Value = app
        .request(reqwest::Method::GET, "/echo/invoices", Some(&m.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 2, "refused prices wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_stats_count_attempts_for_the_plugin_to_divide() {
    let app = money_app().await;
    let m = app.register("", "Shop").await;
    let store = &app.storage().store;
    let stats = |app: &TestApp| {
        let request = app.request(
            reqwest::Method::GET,
            "/echo/webhook-stats?days=7",
            Some(&m.token),
        );
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let queue = |app: &TestApp| {
        let request = app
            .request(reqwest::Method::POST, "/echo/webhook-test", Some(&m.token))
            .body("https://merchant.example/cb");
        async move { assert_eq!(request.send().await.unwrap().status(), 202) }
    };
    queue(&app).await;
    queue(&app).await;
    let now = polypay_host::store::now_ms();
    // Event 1: fails once, then is delivered (2 attempts). Event 2: tried once, waiting.
    let report = |outcome| AttemptReport {
        url: "https://merchant.example/cb".into(),
        started_at: now,
        latency_ms: Some(5),
        status_code: Some(200),
        response_body: None,
        response_truncated: false,
        error: None,
        outcome,
    };
    let claims = outbox::claim(store, now, now + 60_000, 10).await.unwrap();
    assert_eq!(claims.len(), 2);
    let (first, second) = (&claims[0].delivery, &claims[1].delivery);
    assert!(
        outbox::record_attempt(
            store,
            first.id,
            1,
            &report(AttemptOutcome::Rejected),
            Next::RetryAt(now),
            now
        )
        .await
        .unwrap()
    );
    assert!(
        outbox::record_attempt(
            store,
            second.id,
            1,
            &report(AttemptOutcome::Rejected),
            Next::RetryAt(now + 3_600_000),
            now
        )
        .await
        .unwrap()
    );
    let again = outbox::claim(store, now, now + 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(
        outbox::record_attempt(
            store,
            first.id,
            2,
            &report(AttemptOutcome::Accepted),
            Next::Delivered,
            now
        )
        .await
        .unwrap()
    );

    let s = stats(&app).await;
    assert_eq!(
        (&s["total"], &s["delivered"], &s["failed"], &s["pending"]),
        (&json!(2), &json!(1), &json!(0), &json!(1))
    );
    assert_eq!(
        (&s["attempts"], &s["finished_attempts"]),
        (&json!(3), &json!(2))
    );
    assert_eq!(
        (&s["success_rate"], &s["average_attempts"]),
        (&json!(1.0), &json!(2.0))
    );

    let response = app
        .request(
            reqwest::Method::GET,
            "/echo/webhook-stats?days=0",
            Some(&m.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
