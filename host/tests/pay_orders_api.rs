//! Conformance of the `pay-orders` plugin with the salted-md5 pay orders document
//! (seeds/001_pay_orders_salted_md5.md) through the real `polypay` binary: the seed's
//! store and show examples replayed with our app id and a signature computed here exactly
//! as the document says (`md5(md5(salt) . md5(secure_key))`), compared field by field in
//! JSON type; every bad input answered in the dialect's envelope with no order written;
//! salt replay; a rate outage during an order's life; and the paid callback on a local
//! anvil chain, accepted only on the body `ok`, given up after 6 tries otherwise.
//!
//! Rates come from the host's rate service: a static table for USD and a JSON endpoint
//! (a local fixture the test can take down) for CNY.

mod common;
mod webhook_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use common::anvil::{CHAIN_ID, TestChain};
use common::polypay::{PolypayProcess, call_json as call, cli_json, free_port, secrets_toml};
use common::shape::assert_same_shape;
use md5::{Digest, Md5};
use reqwest::Client;
use serde_json::{Value, json};
use webhook_support::{Receiver, Reply, eventually};

/// The network the orders are paid on.
const NETWORK: &str = "anvil";

/// The seed's store request, verbatim.
fn seed_store_request() -> Value {
    json!({
        "title": "标题",
        "fee": 2000,
        "remark": "备注",
        "app_id": "",
        "salt": "随机字符",
        "sign": "签名",
        "currency": 1
    })
}

/// The seed's store (and show) `result` example, comments removed.
fn seed_result() -> Value {
    json!({
        "id": "YOw3MgLZ7RWGylz4",
        "title": "\u{6d4b}\u{8bd5}",
        "remark": "xx",
        "fee": 2000,
        "currency": 1,
        "pay_fee": 11111,
        "pay_currency": 5,
        "pay_account": "",
        "receipt_account": "0xE4758EF12D49893581f71e6abdfB1ddA16a043ab",
        "callback_url": "",
        "redirect_url": "",
        "pay_status": 1,
        "status": 1,
        "callback_status": 1,
        "callback_at": null,
        "callback_times": 0,
        "pay_finish_at": null,
        "pay_refresh_at": null,
        "pay_submit_at": null,
        "created_at": "",
        "updated_at": "",
        "deleted_at": null,
        "app_id": "",
        "tv_url": ""
    })
}

/// The JSON rate endpoint's answer: 7.25 CNY per USDT.
const CNY_FEED: &str = r#"{"data":{"rate":"7.25"}}"#;

/// A JSON rate endpoint serving [`CNY_FEED`].
async fn cny_feed() -> Receiver {
    Receiver::start(|_, _| Reply::Body(200, CNY_FEED.into())).await
}

/// `md5(md5(salt) . md5(secure_key))`, lower-case hex of hex strings, as the seed says.
fn seed_sign(salt: &str, secure_key: &str) -> String {
    let md5_hex = |s: &str| hex::encode(Md5::digest(s.as_bytes()));
    md5_hex(&format!("{}{}", md5_hex(salt), md5_hex(secure_key)))
}

/// A polypay server mounting `pay-orders` on a local anvil chain, with an application
/// created by `polypay merchant create --plugin pay-orders`.
struct PayOrdersServer {
    base: String,
    app_id: String,
    secure_key: String,
    receipt_account: Address,
    data_dir: PathBuf,
    config: PathBuf,
    process: PolypayProcess,
    _dir: tempfile::TempDir,
}

impl PayOrdersServer {
    /// `cny_rates`: the JSON endpoint serving the USDT/CNY rate at `/usdt-cny`.
    async fn start(chain: &TestChain, cny_rates: &Receiver) -> PayOrdersServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (public, admin) = (free_port(), free_port());
        let config = dir.path().join("polypay.toml");
        let receipt_account = chain.account(5);
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"
public_base_url = "http://127.0.0.1:{public}"

[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"

{secrets}
[webhooks]
poll_interval_ms = 50
allowed_networks = ["127.0.0.1/32"]

[webhooks.retry]
initial_delay_ms = 100
multiplier = 2
max_delay_ms = 5000
max_attempts = 20
jitter = 0

[rates]
cache_secs = 0

[[rates.providers]]
kind = "json"
name = "cny-feed"
timeout_ms = 1000
pairs = {{ "USDT/CNY" = {{ url = "{cny}", pointer = "/data/rate" }} }}

[[rates.providers]]
kind = "static"
rates = {{ "USDT/USD" = "1", "MATIC/USD" = "0.5" }}

[[chains]]
name = "{NETWORK}"
kind = "evm"
chain_id = {CHAIN_ID}
rpc_url = "{rpc}"
confirmations = 1
poll_interval_ms = 100
start_block = {start}

[[chains.assets]]
symbol = "USDT"
decimals = 6
contract = "{token}"
unique_amount_step = "0.01"

# The node's native coin plays MATIC (pay_currency 4).
[[chains.assets]]
symbol = "MATIC"
decimals = 18
native = true
unique_amount_step = "0.01"

[[plugins]]
name = "pay-orders"
wasm = "{wasm}"

[plugins.settings]
default_pay_currency = 2

[plugins.settings.pay_currencies.2]
chain = "{NETWORK}"
asset = "USDT"
receipt_account = "{receipt}"

[plugins.settings.pay_currencies.4]
chain = "{NETWORK}"
asset = "MATIC"
receipt_account = "{receipt}"
"#,
                data = dir.path().display(),
                secrets = secrets_toml(),
                cny = cny_rates.url("/usdt-cny"),
                rpc = chain.anvil.url,
                start = chain.anvil.block_number().await + 1,
                token = chain.token.to_checksum(None),
                receipt = receipt_account.to_checksum(None),
                wasm = polypay_plugin_artifacts::PAY_ORDERS,
            ),
        )
        .expect("write the config");
        let created = cli_json(
            &config,
            &[
                "merchant",
                "create",
                "--name",
                "Course shop",
                "--plugin",
                "pay-orders",
            ],
        );
        let credentials = created["credentials"].as_array().expect("credentials");
        assert_eq!(credentials.len(), 1, "one secure key: {created}");
        assert_eq!(credentials[0]["kind"], "secure-key");
        let app_id = credentials[0]["public_id"]
            .as_str()
            .expect("app id")
            .to_owned();
        let secure_key = credentials[0]["secret"].as_str().expect("key").to_owned();
        let mut process = PolypayProcess::serve(&config);
        process
            .wait_ready(&format!("http://127.0.0.1:{admin}"))
            .await;
        PayOrdersServer {
            base: format!("http://127.0.0.1:{public}"),
            app_id,
            secure_key,
            receipt_account,
            data_dir: dir.path().to_path_buf(),
            config,
            process,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The seed's store request, signed for our application with a fresh salt.
    fn signed_request(&self) -> Value {
        let mut request = seed_store_request();
        let salt = uuid::Uuid::new_v4().simple().to_string();
        request["app_id"] = json!(self.app_id);
        request["sign"] = json!(seed_sign(&salt, &self.secure_key));
        request["salt"] = json!(salt);
        request
    }

    /// Stores an order with `request`; returns its `result`, asserting success.
    async fn store(&self, request: &Value) -> Value {
        ok_result(
            call(
                Client::new()
                    .post(self.url("/api/web/pay-orders/store"))
                    .json(request),
            )
            .await,
        )
    }

    /// Invoices in the server's database (its embedded SQLite).
    async fn order_rows(&self) -> i64 {
        let url = format!("sqlite://{}", self.data_dir.join("polypay.db").display());
        let store = polypay_host::store::Store::connect(&url, 1)
            .await
            .expect("open the server's database");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invoices")
            .fetch_one(store.pool())
            .await
            .expect("count invoices");
        store.close().await;
        n
    }
}

/// Asserts the success envelope and returns its `result`.
fn ok_result((status, body): (u16, Value)) -> Value {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 200, "{body}");
    assert_eq!(body["message"], "ok", "{body}");
    body["result"].clone()
}

/// Asserts the error envelope `{code, message, result: null}` with `code` = HTTP status.
fn assert_error((status, body): (u16, Value), code: u16) -> String {
    assert_eq!(status, code, "{body}");
    let map = body.as_object().expect("an object");
    assert_eq!(map.len(), 3, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["result"], Value::Null, "{body}");
    let message = body["message"].as_str().expect("message").to_owned();
    assert!(!message.is_empty(), "{body}");
    message
}

/// `actual` has exactly the seed's `result` fields, each of the example's JSON type (nulls
/// stay null unless named in `set_by_now`, which may hold a timestamp string).
fn assert_seed_shape(actual: &Value, set_by_now: &[&str]) {
    assert_same_shape(actual, &seed_result(), set_by_now);
    for key in set_by_now {
        assert!(
            actual[key].is_null() || is_timestamp(&actual[key]),
            "{key}: {actual}"
        );
    }
}

fn is_timestamp(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 27 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_replay_with_their_shapes_show_by_get_and_post_and_submitted() {
    let chain = TestChain::start().await;
    let cny = cny_feed().await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    let http = Client::new();

    // Store: the seed's request, signed as the document says.
    let request = server.signed_request();
    let order = server.store(&request).await;
    assert_seed_shape(&order, &[]);
    let id = order["id"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "16-character id: {id}"
    );
    assert_eq!(order["title"], "标题");
    assert_eq!(order["remark"], "备注");
    assert_eq!(order["fee"], 2000);
    assert_eq!(order["currency"], 1);
    // 20.00 USD at 1 USD per USDT: 20.00 USDT, in hundredths.
    assert_eq!(order["pay_fee"], 2000);
    assert_eq!(order["pay_currency"], 2);
    assert_eq!(order["pay_account"], "");
    assert_eq!(
        order["receipt_account"],
        server.receipt_account.to_checksum(None)
    );
    assert_eq!(order["callback_url"], "");
    assert_eq!(order["redirect_url"], "");
    assert_eq!(
        (order["pay_status"].clone(), order["status"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(order["callback_status"], 1);
    assert_eq!(order["callback_times"], 0);
    assert_eq!(order["app_id"], server.app_id);
    assert!(is_timestamp(&order["created_at"]), "{order}");
    assert!(is_timestamp(&order["updated_at"]), "{order}");
    let tv_url = order["tv_url"].as_str().unwrap();
    assert!(tv_url.starts_with(&server.url("/pay/")), "{tv_url}");
    let page = http.get(tv_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "tv_url is the hosted checkout page");
    // The secure key never appears in an answer, nor any digest of it.
    let key_md5 = hex::encode(Md5::digest(server.secure_key.as_bytes()));
    let text = order.to_string();
    assert!(!text.contains(&server.secure_key) && !text.contains(&key_md5));

    // Show: POST as the document writes it, GET as the original code served it.
    let show_url = server.url(&format!("/api/web/pay-orders/show?id={id}"));
    let by_post = ok_result(call(http.post(&show_url)).await);
    let by_get = ok_result(call(http.get(&show_url)).await);
    assert_eq!(by_post, order);
    assert_eq!(by_get, order);

    // CNY: 20.00 CNY at 7.25 CNY per USDT is 2.7586… USDT, rounded up to 2.76.
    let mut cny_request = server.signed_request();
    cny_request["currency"] = json!(2);
    let cny_order = server.store(&cny_request).await;
    assert_eq!(cny_order["currency"], 2);
    assert_eq!(cny_order["pay_fee"], 276);

    // Submitted: the payer says it has paid.
    let submitted = ok_result(
        call(http.get(server.url(&format!("/api/web/pay-orders/submitted?id={id}")))).await,
    );
    assert_seed_shape(&submitted, &["pay_submit_at"]);
    assert_eq!(submitted["pay_status"], 2);
    assert_eq!(submitted["status"], 1);
    assert!(is_timestamp(&submitted["pay_submit_at"]), "{submitted}");
    let shown = ok_result(call(http.get(&show_url)).await);
    assert_eq!(shown["pay_status"], 2);

    // Unknown ids.
    for bad in ["YOw3MgLZ7RWGylz4", "short", "../../etc/passwd"] {
        let url = server.url(&format!("/api/web/pay-orders/show?id={bad}"));
        assert_error(call(http.get(&url)).await, 404);
    }
    assert_error(
        call(http.get(server.url("/api/web/pay-orders/show"))).await,
        422,
    );
    drop(server.process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_in_the_envelope_and_writes_no_order() {
    let chain = TestChain::start().await;
    let cny = cny_feed().await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    let http = Client::new();
    let store = || http.post(server.url("/api/web/pay-orders/store"));
    let good = server.signed_request();
    let with = |key: &str, value: Value| {
        let mut r = good.clone();
        r[key] = value;
        r
    };
    let without = |key: &str| {
        let mut r = good.clone();
        r.as_object_mut().unwrap().remove(key);
        r
    };
    let cases: Vec<(&str, Value, u16)> = vec![
        ("missing title", without("title"), 422),
        ("empty title", with("title", json!("")), 422),
        ("title not a string", with("title", json!(5)), 422),
        ("title too long", with("title", json!("x".repeat(256))), 422),
        ("missing fee", without("fee"), 422),
        ("fee zero", with("fee", json!(0)), 422),
        ("fee negative", with("fee", json!(-100)), 422),
        ("fee fractional", with("fee", json!(20.5)), 422),
        ("fee exponent", with("fee", json!(2e3)), 422),
        ("fee not a number", with("fee", json!("twenty")), 422),
        ("fee an object", with("fee", json!({"v": 1})), 422),
        ("fee beyond range", with("fee", json!(u64::MAX)), 422),
        ("missing currency", without("currency"), 422),
        ("currency unknown", with("currency", json!(3)), 422),
        ("currency a string", with("currency", json!("USD")), 422),
        (
            "pay_currency not offered",
            with("pay_currency", json!(5)),
            422,
        ),
        ("pay_currency unknown", with("pay_currency", json!(1)), 422),
        (
            "callback_url not http",
            with("callback_url", json!("ftp://x")),
            422,
        ),
        (
            "redirect_url not a url",
            with("redirect_url", json!("javascript:alert(1)")),
            422,
        ),
        ("missing app_id", without("app_id"), 422),
        ("missing salt", without("salt"), 422),
        ("missing sign", without("sign"), 422),
        ("sign not hex", with("sign", json!("签名")), 422),
        (
            "unknown app",
            with("app_id", json!("NoSuchApp0000000")),
            401,
        ),
        (
            "wrong sign",
            with("sign", json!(seed_sign("other salt", &server.secure_key))),
            401,
        ),
        (
            "sign of another key",
            with(
                "sign",
                json!(seed_sign(good["salt"].as_str().unwrap(), "not the key")),
            ),
            401,
        ),
        // md5(md5(salt) . secure_key) without hashing the key: not the seed's algorithm.
        (
            "sign over the raw key",
            with(
                "sign",
                json!(hex::encode(Md5::digest(format!(
                    "{}{}",
                    hex::encode(Md5::digest(good["salt"].as_str().unwrap().as_bytes())),
                    server.secure_key
                )))),
            ),
            401,
        ),
    ];
    for (what, body, code) in cases {
        let message = assert_error(call(store().json(&body)).await, code);
        eprintln!("{what}: {code} {message}");
        assert_eq!(server.order_rows().await, 0, "{what} wrote an order");
    }
    // Not JSON at all, and a body over the dialect's cap.
    assert_error(
        call(
            store()
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await,
        422,
    );
    assert_error(
        call(
            store()
                .header("content-type", "application/json")
                .body(vec![b' '; 70 * 1024]),
        )
        .await,
        413,
    );
    assert_eq!(server.order_rows().await, 0);

    // The good request still works afterwards (its salt was never burnt), also as a form.
    ok_result(call(store().json(&good)).await);
    let form = server.signed_request();
    let pairs: Vec<(String, String)> = form
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
        .collect();
    let mut encoder = reqwest::Url::parse("http://form.invalid/").unwrap();
    encoder.query_pairs_mut().extend_pairs(&pairs);
    let form_body = encoder.query().unwrap().to_owned();
    ok_result(
        call(
            store()
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body),
        )
        .await,
    );
    assert_eq!(server.order_rows().await, 2);
    // The secure key, or its md5, never reaches the log.
    let log = server.process.log_text();
    let key_md5 = hex::encode(Md5::digest(server.secure_key.as_bytes()));
    assert!(!log.is_empty());
    assert!(!log.contains(&server.secure_key) && !log.contains(&key_md5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salt_is_accepted_once_per_application() {
    let chain = TestChain::start().await;
    let cny = cny_feed().await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    let http = Client::new();
    let request = server.signed_request();
    let store = || http.post(server.url("/api/web/pay-orders/store"));
    ok_result(call(store().json(&request)).await);
    assert_error(call(store().json(&request)).await, 409);
    // The same salt with a different title is still a replay.
    let mut changed = request.clone();
    changed["title"] = json!("另一个");
    assert_error(call(store().json(&changed)).await, 409);
    assert_eq!(server.order_rows().await, 1);

    // Another application may use the same salt.
    let other = cli_json(
        &server.config,
        &[
            "merchant",
            "create",
            "--name",
            "Other",
            "--plugin",
            "pay-orders",
        ],
    );
    let app_id = other["credentials"][0]["public_id"].as_str().unwrap();
    let key = other["credentials"][0]["secret"].as_str().unwrap();
    let mut theirs = request.clone();
    theirs["app_id"] = json!(app_id);
    theirs["sign"] = json!(seed_sign(request["salt"].as_str().unwrap(), key));
    ok_result(call(store().json(&theirs)).await);
    assert_eq!(server.order_rows().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_outage_refuses_new_orders_and_leaves_existing_ones_intact() {
    let chain = TestChain::start().await;
    let down = Arc::new(AtomicBool::new(false));
    let feed_down = down.clone();
    let cny = Receiver::start(move |_, _| {
        if feed_down.load(Ordering::SeqCst) {
            Reply::Status(502)
        } else {
            Reply::Body(200, CNY_FEED.into())
        }
    })
    .await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    let http = Client::new();
    let store = || http.post(server.url("/api/web/pay-orders/store"));
    let mut request = server.signed_request();
    request["currency"] = json!(2);
    let order = ok_result(call(store().json(&request)).await);
    let id = order["id"].as_str().unwrap();

    down.store(true, Ordering::SeqCst);
    let mut during = server.signed_request();
    during["currency"] = json!(2);
    assert_error(call(store().json(&during)).await, 503);
    assert_eq!(server.order_rows().await, 1);
    // The existing order reads as before; USD orders (static table) still work.
    let shown =
        ok_result(call(http.get(server.url(&format!("/api/web/pay-orders/show?id={id}")))).await);
    assert_eq!(shown["pay_fee"], order["pay_fee"]);
    ok_result(call(store().json(&server.signed_request())).await);

    // Back up: the refused request's salt was not burnt.
    down.store(false, Ordering::SeqCst);
    ok_result(call(store().json(&during)).await);
}

/// Showing an unpaid order two minutes after its quote refreshes it at the current rate
/// and fills `pay_refresh_at`; the amount shown before the refresh still pays the order in
/// full (within the host's grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn showing_an_order_after_two_minutes_refreshes_its_quote_and_the_old_amount_still_pays() {
    let chain = TestChain::start().await;
    let rate = Arc::new(std::sync::Mutex::new("7.25".to_string()));
    let served = rate.clone();
    let cny = Receiver::start(move |_, _| {
        let rate = served.lock().unwrap().clone();
        Reply::Body(200, format!(r#"{{"data":{{"rate":"{rate}"}}}}"#))
    })
    .await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    let http = Client::new();
    let mut request = server.signed_request();
    request["currency"] = json!(2);
    let order = server.store(&request).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let show = server.url(&format!("/api/web/pay-orders/show?id={id}"));
    let fresh = ok_result(call(http.get(&show)).await);
    assert_eq!(fresh["pay_fee"], order["pay_fee"], "a fresh quote is kept");
    assert_eq!(fresh["pay_refresh_at"], Value::Null);

    // Two minutes later (the quote's time moved back rather than the test waiting), at
    // another rate.
    let url = format!("sqlite://{}", server.data_dir.join("polypay.db").display());
    let store = polypay_host::store::Store::connect(&url, 1).await.unwrap();
    sqlx::query("UPDATE invoices SET fiat_quoted_at = fiat_quoted_at - 121000")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    *rate.lock().unwrap() = "5".into();
    let refreshed = ok_result(call(http.get(&show)).await);
    let fee: u64 = request["fee"].as_u64().unwrap();
    // fee cents of CNY at 5 CNY per USDT, in hundredths of USDT, rounded up.
    assert_eq!(refreshed["pay_fee"], fee.div_ceil(5), "{refreshed}");
    assert_ne!(refreshed["pay_fee"], order["pay_fee"]);
    assert!(is_timestamp(&refreshed["pay_refresh_at"]), "{refreshed}");
    assert_seed_shape(&refreshed, &["pay_refresh_at"]);
    // Shown again at once: nothing to refresh.
    let again = ok_result(call(http.get(&show)).await);
    assert_eq!(again["pay_refresh_at"], refreshed["pay_refresh_at"]);

    // The payer sends the amount shown before the refresh: the order is paid.
    let amount = U256::from(order["pay_fee"].as_u64().unwrap()) * U256::from(10_000u64);
    let payer = chain.account(1);
    chain.mint(payer, amount).await;
    chain
        .transfer_token(payer, server.receipt_account, amount)
        .await;
    let paid = eventually("the order to be paid", Duration::from_secs(30), || async {
        let order = ok_result(call(http.get(&show)).await);
        (order["pay_status"] == 3).then_some(order)
    })
    .await;
    assert_eq!(paid["status"], 2);
    assert_eq!(
        paid["pay_fee"], order["pay_fee"],
        "paid at the quote it was shown"
    );
}

/// Creates an order with `callback_url`, pays it in USDT on the chain, and returns the
/// order as `show` reads it once paid.
async fn pay_an_order(
    chain: &TestChain,
    server: &PayOrdersServer,
    callback_url: &str,
) -> (String, Value) {
    let http = Client::new();
    let mut request = server.signed_request();
    request["callback_url"] = json!(callback_url);
    request["redirect_url"] = json!("https://shop.example/thanks");
    let order = server.store(&request).await;
    let id = order["id"].as_str().unwrap().to_owned();
    // pay_fee is in hundredths of USDT (6 decimals).
    let amount = U256::from(order["pay_fee"].as_u64().unwrap()) * U256::from(10_000u64);
    let payer = chain.account(1);
    chain.mint(payer, amount).await;
    chain
        .transfer_token(payer, server.receipt_account, amount)
        .await;
    let show = server.url(&format!("/api/web/pay-orders/show?id={id}"));
    let paid = eventually("the order to be paid", Duration::from_secs(30), || async {
        let order = ok_result(call(http.get(&show)).await);
        (order["pay_status"] == 3).then_some(order)
    })
    .await;
    (id, paid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_is_called_back_with_the_whole_order_until_the_merchant_answers_ok() {
    let chain = TestChain::start().await;
    let cny = cny_feed().await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    // First a 200 with another body (not accepted), then `ok`.
    let receiver = Receiver::start(|_, n| {
        Reply::Body(
            200,
            if n == 0 {
                "success".into()
            } else {
                "ok".into()
            },
        )
    })
    .await;
    let (id, paid) = pay_an_order(&chain, &server, &receiver.url("/notify")).await;
    assert_eq!(paid["status"], 2);
    assert_eq!(
        paid["pay_account"],
        chain.account(1).to_checksum(None),
        "the payer's address once paid"
    );
    assert!(is_timestamp(&paid["pay_finish_at"]), "{paid}");

    let http = Client::new();
    let show = server.url(&format!("/api/web/pay-orders/show?id={id}"));
    let done = eventually("callback_status 2", Duration::from_secs(30), || async {
        let order = ok_result(call(http.get(&show)).await);
        (order["callback_status"] == 2).then_some(order)
    })
    .await;
    assert_eq!(done["callback_times"], 2);
    assert!(is_timestamp(&done["callback_at"]), "{done}");
    assert_seed_shape(&done, &["pay_finish_at", "callback_at"]);

    let callbacks = receiver.received();
    assert_eq!(callbacks.len(), 2, "one refused, one accepted");
    for callback in &callbacks {
        assert_eq!(callback.method, "POST");
        assert_eq!(callback.path, "/notify");
        assert_eq!(callback.header("content-type"), Some("application/json"));
        let body = callback.json();
        // The whole order, as `show` renders it.
        assert_seed_shape(&body, &["pay_finish_at", "callback_at"]);
        assert_eq!(body["id"], id);
        assert_eq!(body["pay_status"], 3);
        assert_eq!(body["status"], 2);
        assert_eq!(body["redirect_url"], "https://shop.example/thanks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_answered_otherwise_than_ok_is_retried_with_growing_delays_and_given_up_after_6_tries()
 {
    let chain = TestChain::start().await;
    let cny = cny_feed().await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    // `OK` and `{"ok":true}` are not `ok`.
    let receiver = Receiver::start(|_, n| {
        Reply::Body(
            200,
            if n % 2 == 0 {
                "OK".into()
            } else {
                r#"{"ok":true}"#.into()
            },
        )
    })
    .await;
    let (id, _) = pay_an_order(&chain, &server, &receiver.url("/notify")).await;
    let http = Client::new();
    let show = server.url(&format!("/api/web/pay-orders/show?id={id}"));
    let gave_up = eventually("callback_status 3", Duration::from_secs(60), || async {
        let order = ok_result(call(http.get(&show)).await);
        (order["callback_status"] == 3).then_some(order)
    })
    .await;
    assert_eq!(gave_up["callback_times"], 6);
    assert_eq!(gave_up["pay_status"], 3, "the order stays paid");
    // Nothing more after giving up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let callbacks = receiver.received();
    assert_eq!(callbacks.len(), 6);
    // The host's schedule (100 ms doubling, no jitter) grows the delays: each gap is at
    // least its scheduled delay.
    for (i, pair) in callbacks.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let scheduled = Duration::from_millis(100 << i);
        assert!(
            gap >= scheduled,
            "gap {i} was {gap:?}, scheduled {scheduled:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_in_the_native_coin_is_matched_by_its_unique_amount_and_paid() {
    let chain = TestChain::start().await;
    let cny = cny_feed().await;
    let server = PayOrdersServer::start(&chain, &cny).await;
    let http = Client::new();
    let mut request = server.signed_request();
    request["pay_currency"] = json!(4);
    let order = server.store(&request).await;
    // 20.00 USD at 0.5 USD per MATIC: 40 MATIC, in hundredths.
    assert_eq!(order["pay_currency"], 4);
    assert_eq!(order["pay_fee"], 4000);
    // A second open order of the same price gets the next unique amount.
    let mut second = server.signed_request();
    second["pay_currency"] = json!(4);
    let second = server.store(&second).await;
    assert_eq!(second["pay_fee"], 4001);

    // Pay the second one with a plain native transfer of exactly 40.01.
    let amount = U256::from(4001u64) * U256::from(10u64).pow(U256::from(16u64));
    chain
        .anvil
        .send_eth(chain.account(2), server.receipt_account, amount)
        .await;
    let show = |id: &str| server.url(&format!("/api/web/pay-orders/show?id={id}"));
    let paid = eventually(
        "the native order to be paid",
        Duration::from_secs(30),
        || async {
            let o = ok_result(call(http.get(show(second["id"].as_str().unwrap()))).await);
            (o["pay_status"] == 3).then_some(o)
        },
    )
    .await;
    assert_eq!(paid["status"], 2);
    let first = ok_result(call(http.get(show(order["id"].as_str().unwrap()))).await);
    assert_eq!(first["pay_status"], 1, "the other order is not paid by it");
}
