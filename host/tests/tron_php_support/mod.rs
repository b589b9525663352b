//! A polypay server speaking the tron-php dialect, as an operator sets it up: a config
//! file following a simulated TRON node (java-tron's HTTP API, [`crate::common::tron`])
//! and mounting the `tron-php` plugin on one monitoring address; an operator merchant as
//! the plugin's `default_merchant`; a tron-php merchant created with `polypay merchant
//! create --plugin tron-php --plugin-data '{"callback_url": …}'` whose printed `api_key`
//! the tests use; and `polypay serve` as a child process. Also the payer's side: paying
//! an order's exact amount on the simulator and mining it to `paid`, then `confirmed`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use polypay_host::chain::tron::TronAddress;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Digest;

use crate::common::polypay::{
    PolypayProcess, cli_json, free_port, loopback_webhooks_toml, secrets_toml,
};
use crate::common::tron::{Outcome, SimChain, SimNode};
use crate::common::tron_chain::{units, usdt};

/// The `[[chains]]` name of the simulated network.
pub const NETWORK: &str = "tron";
/// The time zone the tests configure: signatures use the day in +08:00.
pub const TIME_ZONE_HOURS: i64 = 8;

/// The seed's create request example, verbatim (`api_key` replaced by the caller).
pub fn seed_request() -> Value {
    serde_json::json!({
        "amount": 0.1,
        "currency": "TRX",
        "api_key": "your_api_key_here",
        "order_id": "123456789",
        "description": "商品购买"
    })
}

/// The monitoring address every order is paid to.
pub fn monitoring_address() -> TronAddress {
    SimChain::account(10)
}

/// The payer's account.
pub fn payer() -> TronAddress {
    SimChain::account(1)
}

pub struct TronPhpServer {
    pub base: String,
    pub admin: String,
    pub config: PathBuf,
    pub database: PathBuf,
    pub node: SimNode,
    /// The tron-php merchant's `api_key`, as `merchant create` printed it.
    pub api_key: String,
    pub merchant_id: String,
    pub default_merchant_id: String,
    pub process: PolypayProcess,
    pub dir: tempfile::TempDir,
}

impl TronPhpServer {
    /// A simulated TRON node (solidified blocks lag the head by the mainnet's 19 until a
    /// test solidifies), the config, both merchants, and the running server. The
    /// merchant's callbacks go to `callback_url`.
    pub async fn start(callback_url: &str) -> TronPhpServer {
        let node = SimNode::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (public, admin) = (free_port(), free_port());
        let config = dir.path().join("polypay.toml");
        let database = dir.path().join("polypay.db");
        let write_config = |default_merchant: Option<&str>| {
            let default_merchant = default_merchant
                .map(|id| format!("default_merchant = \"{id}\"\n"))
                .unwrap_or_default();
            std::fs::write(
                &config,
                format!(
                    r#"data_dir = "{data}"
public_base_url = "http://127.0.0.1:{public}"

[database]
url = "sqlite://{database}"

[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"

{secrets}
{webhooks}
[[chains]]
name = "{NETWORK}"
kind = "tron"
rpc_url = "{rpc}"
confirmations = 1
poll_interval_ms = 50
max_retry_interval_ms = 500
start_block = {start}

[[chains.assets]]
symbol = "TRX"
decimals = 6
native = true

[[chains.assets]]
symbol = "USDT"
decimals = 6
contract = "{usdt}"

[[plugins]]
name = "tron-php"
wasm = "{wasm}"
{default_merchant}settings = {{ monitoring_address = "{monitoring}", network = "{NETWORK}", time_zone = "+0{TIME_ZONE_HOURS}:00" }}
"#,
                    data = dir.path().display(),
                    database = database.display(),
                    secrets = secrets_toml(),
                    webhooks = loopback_webhooks_toml(),
                    rpc = node.url(),
                    start = node.chain.head() + 1,
                    usdt = usdt(),
                    monitoring = monitoring_address(),
                    wasm = polypay_plugin_artifacts::TRON_PHP,
                ),
            )
            .expect("write the config");
        };
        write_config(None);
        // The operator's own merchant, serving orders sent without api_key.
        let default_merchant_id =
            cli_json(&config, &["merchant", "create", "--name", "Shop"])["merchant"]["id"]
                .as_str()
                .expect("id")
                .to_owned();
        write_config(Some(&default_merchant_id));
        let plugin_data = serde_json::json!({ "callback_url": callback_url }).to_string();
        let created = cli_json(
            &config,
            &[
                "merchant",
                "create",
                "--name",
                "TRON shop",
                "--plugin",
                "tron-php",
                "--plugin-data",
                &plugin_data,
            ],
        );
        let credentials = created["credentials"].as_array().expect("credentials");
        assert_eq!(credentials.len(), 1, "one api_key: {created}");
        assert_eq!(credentials[0]["kind"], "api-key");
        let api_key = credentials[0]["secret"]
            .as_str()
            .expect("secret")
            .to_owned();
        let merchant_id = created["merchant"]["id"].as_str().expect("id").to_owned();
        let mut process = PolypayProcess::serve(&config);
        let admin = format!("http://127.0.0.1:{admin}");
        process.wait_ready(&admin).await;
        TronPhpServer {
            base: format!("http://127.0.0.1:{public}"),
            admin,
            config,
            database,
            node,
            api_key,
            merchant_id,
            default_merchant_id,
            process,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn chain(&self) -> &SimChain {
        &self.node.chain
    }

    /// Row counts of every table a request can write (invoices, their payment targets
    /// and outbox events, the plugin's key-value entries), read from the server's database.
    pub async fn row_counts(&self) -> Vec<(&'static str, i64)> {
        crate::common::db::row_counts(
            &self.database,
            &[
                "invoices",
                "payment_targets",
                "outbox_events",
                "plugin_kv",
                "merchants",
                "credentials",
            ],
        )
        .await
    }

    /// Polls `check_payment_status.php?order_id=` until `status`, returning the `data`.
    pub async fn wait_status(&self, order_id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = call(reqwest::Client::new().get(self.url(&format!(
                "/check_payment_status.php?order_id={}",
                percent_encode(order_id)
            ))))
            .await;
            assert_eq!(code, 200, "{body}");
            if body["data"]["status"] == status {
                return body["data"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "order {order_id} not {status} after 60 s: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Pays `amount` (the order's exact amount, as the API answered it) of `currency` from
    /// the payer to the monitoring address and mines it; returns the transaction id and the
    /// block number.
    pub fn pay(&self, currency: &str, amount: &str) -> (String, u64) {
        let base_units = units(amount);
        let tx = match currency {
            "TRX" => self.chain().transfer_trx(
                payer(),
                monitoring_address(),
                base_units.as_u256().to::<i64>(),
            ),
            "USDT" => self.chain().transfer_trc20(
                usdt(),
                payer(),
                monitoring_address(),
                base_units.as_u256(),
                Outcome::Success,
            ),
            other => panic!("no such currency {other}"),
        };
        let block = self.chain().mine();
        (tx.id.clone(), block.number)
    }
}

/// `text` percent-encoded for a query string (everything but unreserved characters).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends `request`, returns (status, JSON body); asserts the CORS header every answer of
/// the dialect carries.
pub async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let cors = response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(
        cors.as_deref(),
        Some("*"),
        "HTTP {status} without Access-Control-Allow-Origin: *: {text}"
    );
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("HTTP {status}: body is not JSON ({e}): {text}"));
    (status, body)
}

/// The literal text of `data.amount` in a success answer (a JSON number, read without
/// going through a float).
pub fn amount_literal(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Data {
        amount: Box<RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Data,
    }
    let answer: Answer = serde_json::from_str(body).expect("a success answer");
    answer.data.amount.get().to_owned()
}

/// `YYYYMMDD` of `unix_secs` in the tests' time zone: the receiver's own calendar maths.
pub fn compact_day(unix_secs: i64) -> String {
    let local = unix_secs + TIME_ZONE_HOURS * 3600;
    let days = local.div_euclid(86_400);
    // Days since 1970-01-01 → civil date (proleptic Gregorian), the long way round.
    let (mut year, mut day_of_year) = (1970i64, days);
    loop {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let len = if leap { 366 } else { 365 };
        if day_of_year < len {
            let months = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let mut month = 0;
            while day_of_year >= months[month] {
                day_of_year -= months[month];
                month += 1;
            }
            return format!("{year:04}{:02}{:02}", month + 1, day_of_year + 1);
        }
        day_of_year -= len;
        year += 1;
    }
}

/// `hex(sha256(order_id . status . YYYYMMDD))`, computed independently of the plugin.
pub fn expected_signature(order_id: &str, status: &str, day: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("{order_id}{status}{day}")))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
