//! The `epusdt-js` dialect (plugins/epusdt-js, JavaScript compiled with componentize-js)
//! through the real `polypay` binary following a simulated TRON node: an operator mounts
//! it under `/epusdt` with a CNY price source, creates its merchant with `polypay merchant
//! create --plugin epusdt-js` and names the printed token's public id in its settings.
//! Then a merchant's signed `create-transaction` is answered in epusdt's envelope, a bad
//! signature is refused and writes nothing, the status route follows the order, the
//! order is paid in USDT-TRC20 on the simulator, and the callback reaching a loopback
//! receiver carries epusdt's MD5 signature, recomputed here with the token.
//!
//! Also: the JavaScript plugin template (plugin-sdk/templates/js), its name placeholder
//! substituted, builds into a component the host mounts and serves.

mod common;
mod webhook_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use polypay_host::chain::tron::TronAddress;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use webhook_support::{Receiver, eventually};

use common::polypay::{PolypayProcess, cli_json, free_port, server_toml};
use common::tron::{Outcome, SimChain, SimNode};
use common::tron_chain::{units, usdt};

const NETWORK: &str = "tron";
const PREFIX: &str = "/epusdt";
/// The configured USDT price in CNY.
const USDT_CNY: &str = "7.2";

fn monitoring_address() -> TronAddress {
    SimChain::account(10)
}

fn payer() -> TronAddress {
    SimChain::account(1)
}

struct EpusdtServer {
    base: String,
    database: PathBuf,
    node: SimNode,
    /// The merchant's API token, as `merchant create` printed it.
    token: String,
    process: PolypayProcess,
    _dir: tempfile::TempDir,
}

impl EpusdtServer {
    async fn start() -> EpusdtServer {
        let node = SimNode::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (public, admin) = (free_port(), free_port());
        let config = dir.path().join("polypay.toml");
        // `server_toml` puts the SQLite database in the data directory.
        let database = dir.path().join("polypay.db");
        let write_config = |token_public_id: &str| {
            std::fs::write(
                &config,
                format!(
                    r#"{head}
[[rates.providers]]
kind = "static"
rates = {{ "USDT/CNY" = "{USDT_CNY}" }}

[[chains]]
name = "{NETWORK}"
kind = "tron"
rpc_url = "{rpc}"
confirmations = 1
poll_interval_ms = 50
max_retry_interval_ms = 500
start_block = {start}

[[chains.assets]]
symbol = "USDT"
decimals = 6
contract = "{usdt}"
unique_amount_step = "0.0001"

[[plugins]]
name = "epusdt-js"
wasm = "{wasm}"
prefix = "{PREFIX}"
memory_mb = 64
deadline_ms = 1000
settings = {{ token_public_id = "{token_public_id}", trade_types = {{ "usdt.trc20" = {{ chain = "{NETWORK}", asset = "USDT", address = "{monitoring}" }} }} }}
"#,
                    head = server_toml(dir.path(), public, admin),
                    rpc = node.url(),
                    start = node.chain.head() + 1,
                    usdt = usdt(),
                    monitoring = monitoring_address(),
                    wasm = polypay_plugin_artifacts::EPUSDT_JS,
                ),
            )
            .expect("write the config");
        };
        write_config("unset");
        let created = cli_json(
            &config,
            &[
                "merchant",
                "create",
                "--name",
                "Shop",
                "--plugin",
                "epusdt-js",
            ],
        );
        let credentials = created["credentials"].as_array().expect("credentials");
        assert_eq!(credentials.len(), 1, "one api token: {created}");
        assert_eq!(credentials[0]["kind"], "api-token");
        let public_id = credentials[0]["public_id"].as_str().expect("a public id");
        let token = credentials[0]["secret"]
            .as_str()
            .expect("secret")
            .to_owned();
        write_config(public_id);
        let mut process = PolypayProcess::serve(&config);
        process
            .wait_ready(&format!("http://127.0.0.1:{admin}"))
            .await;
        EpusdtServer {
            base: format!("http://127.0.0.1:{public}{PREFIX}"),
            database,
            node,
            token,
            process,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn invoice_rows(&self) -> Vec<(&'static str, i64)> {
        common::db::row_counts(
            &self.database,
            &["invoices", "payment_targets", "outbox_events"],
        )
        .await
    }

    /// `POST create-transaction` with `body` as is; returns the envelope and its text.
    async fn create(&self, body: &str) -> (Value, String) {
        let response = reqwest::Client::new()
            .post(self.url("/api/v1/order/create-transaction"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            200,
            "epusdt answers HTTP 200, errors too"
        );
        let text = response.text().await.unwrap();
        (serde_json::from_str(&text).expect("JSON"), text)
    }

    async fn status(&self, trade_id: &str) -> Value {
        let response = reqwest::get(self.url(&format!("/pay/check-status/{trade_id}")))
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        response.json().await.expect("JSON")
    }

    async fn wait_status(&self, trade_id: &str, status: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self.status(trade_id).await;
            if body["data"]["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{trade_id} not {status} after 60 s: {body}\n{}",
                self.process.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `md5(k=v&… sorted by key, signature left out . token)`, the receiver's own reckoning:
/// `fields` are (key, value text) pairs.
fn epusdt_signature(fields: &[(&str, String)], token: &str) -> String {
    let mut sorted: Vec<_> = fields.iter().filter(|(k, _)| *k != "signature").collect();
    sorted.sort();
    let text: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    hex::encode(Md5::digest(format!("{}{token}", text.join("&"))))
}

/// A create-transaction body (JSON text, `amount` written as given) signed with `token`
/// the way a PHP client signs it: the amount as PHP prints the float (`42.50` → `42.5`).
fn signed_request(order_id: &str, amount: &str, notify_url: &str, token: &str) -> String {
    let printed = if amount.contains('.') {
        amount.trim_end_matches('0').trim_end_matches('.')
    } else {
        amount
    };
    let fields = [
        ("amount", printed.to_owned()),
        ("notify_url", notify_url.to_owned()),
        ("order_id", order_id.to_owned()),
        ("redirect_url", "http://shop.test/return".to_owned()),
    ];
    let signature = epusdt_signature(&fields, token);
    format!(
        r#"{{"order_id":{},"amount":{amount},"notify_url":{},"redirect_url":"http://shop.test/return","signature":"{signature}"}}"#,
        json!(order_id),
        json!(notify_url)
    )
}

/// The literal text of each top-level member of a JSON object.
fn raw_members(text: &str) -> HashMap<String, Box<RawValue>> {
    serde_json::from_str(text).expect("a JSON object")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_transaction_is_created_checked_paid_and_called_back_signed() {
    let receiver = Receiver::accepting().await;
    let server = EpusdtServer::start().await;
    let notify = receiver.url("/notify");

    // A bad signature: 401 in the envelope, nothing written.
    let before = server.invoice_rows().await;
    let mut forged = signed_request("order-1", "42.50", &notify, &server.token);
    forged = forged.replace("\"amount\":42.50", "\"amount\":4.25");
    let (refused, _) = server.create(&forged).await;
    assert_eq!(refused["status_code"], 401, "{refused}");
    assert_eq!(refused["message"], "签名认证错误");
    assert_eq!(refused["data"], Value::Null);
    let (wrong_token, _) = server
        .create(&signed_request(
            "order-1",
            "42.50",
            &notify,
            "not-the-token",
        ))
        .await;
    assert_eq!(wrong_token["status_code"], 401, "{wrong_token}");
    assert_eq!(
        server.invoice_rows().await,
        before,
        "a refused request writes nothing"
    );

    // The documented request: amount in CNY as a JSON number (signed as "42.5").
    let (created, text) = server
        .create(&signed_request("order-1", "42.50", &notify, &server.token))
        .await;
    assert_eq!(created["status_code"], 200, "{created}");
    assert_eq!(created["message"], "success");
    let data = &created["data"];
    let trade_id = data["trade_id"].as_str().expect("trade_id").to_owned();
    assert_eq!(data["order_id"], "order-1");
    let raw_data = raw_members(raw_members(&text)["data"].get());
    assert_eq!(raw_data["amount"].get(), "42.5", "the CNY amount, a number");
    // 42.5 / 7.2 = 5.90277… USDT, raised to the 0.0001 grid.
    assert_eq!(
        raw_data["actual_amount"].get(),
        "5.9028",
        "the USDT amount, a number"
    );
    assert_eq!(data["token"], monitoring_address().to_base58());
    let expires = data["expiration_time"].as_i64().expect("seconds");
    assert!(
        (unix_now() + 500..=unix_now() + 700).contains(&expires),
        "{expires}"
    );
    assert!(
        data["payment_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/pay/{trade_id}")),
        "{data}"
    );
    assert!(created["request_id"].is_string());

    // The same order id with another amount is a duplicate; the same request again is
    // the same transaction.
    let (duplicate, _) = server
        .create(&signed_request("order-1", "10", &notify, &server.token))
        .await;
    assert_eq!(duplicate["status_code"], 10002, "{duplicate}");
    let (again, _) = server
        .create(&signed_request("order-1", "42.50", &notify, &server.token))
        .await;
    assert_eq!(again["data"]["trade_id"], trade_id.as_str());

    // Bad amounts, signed: epusdt's 10004.
    for amount in ["0", "0.001", "-1"] {
        let (bad, _) = server
            .create(&signed_request("order-2", amount, &notify, &server.token))
            .await;
        assert_eq!(bad["status_code"], 10004, "{amount}: {bad}");
    }

    // The status route: waiting; an unknown trade id is 10008.
    let waiting = server.status(&trade_id).await;
    assert_eq!(waiting["status_code"], 200, "{waiting}");
    assert_eq!(
        waiting["data"],
        json!({ "trade_id": trade_id, "status": 1 })
    );
    let unknown = server.status("00000000-0000-4000-8000-000000000000").await;
    assert_eq!(unknown["status_code"], 10008, "{unknown}");

    // Pay the exact USDT amount to the monitoring address; solidify it.
    let tx = server.node.chain.transfer_trc20(
        usdt(),
        payer(),
        monitoring_address(),
        units("5.9028").as_u256(),
        Outcome::Success,
    );
    let block = server.node.chain.mine();
    server.node.chain.mine_until_solidified(block.number);
    server.wait_status(&trade_id, 2).await;

    // One callback, signed with the token, accepted on `ok`.
    let received = eventually("the callback", Duration::from_secs(30), || async {
        Some(receiver.received()).filter(|r| !r.is_empty())
    })
    .await;
    let callback = &received[0];
    assert_eq!(callback.method, "POST");
    assert_eq!(callback.path, "/notify");
    let body = callback.json();
    let raw = raw_members(std::str::from_utf8(&callback.body).unwrap());
    let mut keys: Vec<&str> = raw.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "actual_amount",
            "amount",
            "block_transaction_id",
            "order_id",
            "signature",
            "status",
            "token",
            "trade_id"
        ]
    );
    assert_eq!(body["trade_id"], trade_id.as_str());
    assert_eq!(body["order_id"], "order-1");
    assert_eq!(raw["amount"].get(), "42.5");
    assert_eq!(raw["actual_amount"].get(), "5.9028");
    assert_eq!(body["token"], monitoring_address().to_base58());
    assert_eq!(body["block_transaction_id"], tx.id.as_str());
    assert_eq!(body["status"], 2);
    let fields: Vec<(&str, String)> = raw
        .iter()
        .map(|(k, v)| {
            let text = match serde_json::from_str::<Value>(v.get()).unwrap() {
                Value::String(s) => s,
                _ => v.get().to_owned(),
            };
            (k.as_str(), text)
        })
        .collect();
    assert_eq!(
        body["signature"],
        epusdt_signature(&fields, &server.token),
        "md5 of the sorted fields and the token"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1, "accepted on `ok`: sent once");
}

/// The repository's root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copies `from` into `to`, replacing `{{name}}` with `name` in every file.
/// Runs the `polypay` binary of this build.
fn polypay(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_polypay"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run polypay")
}

/// Copies a directory tree (the contract's WIT files).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_template_builds_into_a_component_the_host_mounts() {
    use common::plugins::TestApp;
    use polypay_host::plugin::PluginConfig;

    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("shop-dialect");
    // What a plugin author does: `polypay plugin new`, then what its README says: the
    // contract in ./wit, the packages installed (here, the repository's own, pinned to the
    // same versions), then the build command.
    let created = polypay(&[
        "plugin",
        "new",
        "shop-dialect",
        "--lang",
        "js",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    copy_dir(
        &workspace().join("plugin-sdk/wit/0.2.0"),
        &project.join("wit"),
    );
    std::os::unix::fs::symlink(
        workspace().join("node_modules"),
        project.join("node_modules"),
    )
    .unwrap();
    let template_text = std::fs::read_to_string(project.join("src/plugin.js")).unwrap();
    assert!(
        !template_text.contains("{{name}}"),
        "placeholder substituted"
    );
    for (what, args) in [
        ("unit tests", &["--test", "test/"][..]),
        ("build", &["build.mjs"][..]),
    ] {
        let status = std::process::Command::new("node")
            .current_dir(&project)
            .args(args)
            .status()
            .expect("run node");
        assert!(status.success(), "the template's {what} failed");
    }
    let wasm = project.join("shop-dialect.wasm");
    assert!(wasm.is_file(), "the build writes shop-dialect.wasm");
    let check = polypay(&["plugin", "check", wasm.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "plugin check refused the generated plugin:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let app = TestApp::init()
        .with_plugin(PluginConfig::new("shop-dialect", &wasm).with_memory_mb(64))
        .with_storage()
        .await
        .start()
        .await;
    let storage = app.storage.as_ref().unwrap();
    let specs = app
        .runtime
        .operator_credentials("shop-dialect")
        .expect("the manifest's credentials");
    let merchant = storage
        .merchants
        .create("Shop", Some("shop-dialect"), json!({}), &specs)
        .await
        .unwrap();
    assert_eq!(merchant.credentials[0].kind, "api-key");
    let key = merchant.credentials[0].secret.clone();

    let anonymous = app.get("/v1/hello").await;
    assert_eq!(anonymous.status(), 401);
    let hello = app
        .http
        .get(app.url("/v1/hello"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
    let body: Value = hello.json().await.unwrap();
    assert_eq!(body["merchant_id"], merchant.merchant.id.as_str());
}

#[test]
fn the_plugins_own_rules_pass_their_node_unit_tests() {
    let status = std::process::Command::new("node")
        .current_dir(workspace())
        .args(["--test", "plugins/epusdt-js/test/"])
        .status()
        .expect("run node");
    assert!(
        status.success(),
        "node --test plugins/epusdt-js/test failed"
    );
}
