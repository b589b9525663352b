//! A polypay server speaking the WoPay dialect, as an operator sets it up: a config file
//! that follows a local anvil chain (named `ethereum`, as in the seed) and mounts the
//! `wopay` plugin with the operator's xpub, and `polypay serve` as a child process.
//! Merchants register themselves over HTTP, as the seed describes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::anvil::{TEST_XPUB, TestChain};
use crate::common::polypay::{PolypayProcess, free_port, server_toml};

/// The network name of the seed; the tests' anvil node plays it.
pub const NETWORK: &str = "ethereum";

/// The seed's registration request (`POST /api/v1/merchants`).
pub fn seed_register_request() -> Value {
    json!({
        "name": "My Store",
        "email": "store@example.com",
        "webhook_url": "https://mystore.com/webhook"
    })
}

/// The seed's payment request (`POST /api/v1/payments`).
pub fn seed_payment_request() -> Value {
    json!({
        "order_id": "ORDER_20240101_001",
        "amount": "99.99",
        "currency": "USDT",
        "callback_url": "https://mystore.com/payment-callback",
        "expires_in": 3600
    })
}

pub struct WoPayServer {
    pub base: String,
    pub admin: String,
    pub config: PathBuf,
    pub process: PolypayProcess,
    pub dir: tempfile::TempDir,
}

/// A registered merchant: what registration printed once.
#[derive(Debug, Clone)]
pub struct Registered {
    pub merchant_id: String,
    pub api_key: String,
    pub api_secret: String,
}

impl WoPayServer {
    /// Writes the config and starts the server. `confirmations` is the network's required
    /// depth (the paying block counts as 1); `settings` is extra TOML for the plugin's
    /// settings table (e.g. `registration_open = false`).
    pub async fn start(chain: &TestChain, confirmations: u32, settings: &str) -> WoPayServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (public, admin) = (free_port(), free_port());
        let config = dir.path().join("polypay.toml");
        std::fs::write(
            &config,
            format!(
                r#"{head}{chain}
[[plugins]]
name = "wopay"
wasm = "{wasm}"

[plugins.settings]
xpub = "{TEST_XPUB}"
{settings}
"#,
                head = server_toml(dir.path(), public, admin),
                chain = chain.config_toml(NETWORK, confirmations).await,
                wasm = polypay_plugin_artifacts::WOPAY,
            ),
        )
        .expect("write the config");
        let mut process = PolypayProcess::serve(&config);
        let admin = format!("http://127.0.0.1:{admin}");
        process.wait_ready(&admin).await;
        WoPayServer {
            base: format!("http://127.0.0.1:{public}"),
            admin,
            config,
            process,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a merchant with `request`; asserts the 201.
    pub async fn register(&self, request: &Value) -> Registered {
        let (status, body) = call(
            reqwest::Client::new()
                .post(self.url("/api/v1/merchants"))
                .json(request),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let data = &body["data"];
        Registered {
            merchant_id: data["merchant_id"].as_str().unwrap().to_owned(),
            api_key: data["api_key"].as_str().unwrap().to_owned(),
            api_secret: data["api_secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Row counts of every table a plugin request can write, read from the server's
    /// SQLite database: equal before and after a refused request.
    pub async fn rows(&self) -> Vec<(&'static str, i64)> {
        rows(&self.dir.path().join("polypay.db")).await
    }
}

async fn rows(db: &Path) -> Vec<(&'static str, i64)> {
    crate::common::db::row_counts(
        db,
        &[
            "invoices",
            "payment_targets",
            "outbox_events",
            "merchants",
            "credentials",
            "merchant_plugin_data",
        ],
    )
    .await
}

/// Sends `request`, returns (status, JSON body).
pub use crate::common::polypay::call_json as call;

/// Asserts the envelope of a success: `{success: true, data, error: null, timestamp}`
/// with an RFC 3339 UTC timestamp; returns `data`.
pub fn assert_ok(got: (u16, Value), status: u16) -> Value {
    let (code, body) = got;
    assert_eq!(code, status, "{body}");
    assert_envelope(&body);
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["error"], Value::Null, "{body}");
    body["data"].clone()
}

/// Asserts the envelope of an error: `{success: false, data: null, error: "<text>",
/// timestamp}`; returns the error text.
pub fn assert_error(got: (u16, Value), status: u16) -> String {
    let (code, body) = got;
    assert_eq!(code, status, "{body}");
    assert_envelope(&body);
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    let error = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(!error.is_empty(), "{body}");
    error
}

fn assert_envelope(body: &Value) {
    let keys: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["data", "error", "success", "timestamp"], "{body}");
    assert_rfc3339(body["timestamp"].as_str().unwrap());
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn assert_rfc3339(text: &str) {
    let ok = text.len() == 20
        && text.ends_with('Z')
        && text.as_bytes()[10] == b'T'
        && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .is_ok();
    assert!(ok, "{text} is not an RFC 3339 UTC timestamp");
}

/// Runs the seed's own `verifyWebhookSignature` (in `fixtures/wopay/verify.js`) under
/// node on `payload` with `signature` and `secret`: true if it accepts.
pub fn node_verifies(payload: &[u8], signature: &str, secret: &str) -> bool {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wopay/verify.js");
    let mut child = std::process::Command::new("node")
        .arg(script)
        .arg(signature)
        .arg(secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let output = child.wait_with_output().unwrap();
    match String::from_utf8_lossy(&output.stdout).trim() {
        "valid" => true,
        "invalid" => false,
        other => panic!("verify.js printed {other:?}"),
    }
}
