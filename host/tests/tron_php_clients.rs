//! The seed's own client code, run as a merchant runs it, against the real `polypay`
//! binary with the `tron-php` plugin: its JavaScript `createPayment` / `checkPaymentStatus`
//! under node (base URL swapped, `localStorage` shimmed) and its PHP `PaymentClient` under
//! php-cli (`scripts/install-test-tools.sh` installs it). Each creates the seed's example
//! order and polls it until `confirmed`, while the test pays the amount it answered on the
//! TRON simulator and mines it to `paid`, then solidifies it. The clients' files are in
//! `host/tests/fixtures/tron-php`.
//!
//! Neither test is skipped when its runtime is missing: they fail saying what to install.

mod common;
mod tron_php_support;
mod webhook_support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tron_php_support::*;
use webhook_support::Receiver;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tron-php")
}

/// Fails with what to install when `program` is not on PATH.
fn require(program: &str, install: &str) {
    let found = std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{program}` is required by the seed client tests and is not on PATH: {install}"
    );
}

/// Runs `program driver` against `server` until it exits: once the client has seen its
/// order `pending`, the test pays the amount it was given and mines it; once it has seen
/// `paid`, the test solidifies the block. Returns the statuses it saw and its `CREATED`
/// data.
async fn run_client(server: &TronPhpServer, program: &str, driver: &str) -> (Vec<String>, String) {
    let mut child = tokio::process::Command::new(program)
        .arg(fixtures().join(driver))
        .env("BASE_URL", &server.base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut statuses = Vec::new();
    let mut created = String::new();
    let mut paying_block = None;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(data) = line.strip_prefix("CREATED ") {
                created = data.to_owned();
            } else if let Some(status) = line.strip_prefix("STATUS ") {
                statuses.push(status.to_owned());
                match status {
                    // The client has seen its order open: the payer pays what it answered.
                    "pending" => {
                        let order: serde_json::Value = serde_json::from_str(&created).unwrap();
                        let currency = order["currency"].as_str().unwrap();
                        let (_, block) = server.pay(currency, &raw_field(&created, "amount"));
                        paying_block = Some(block);
                    }
                    "paid" => server
                        .chain()
                        .mine_until_solidified(paying_block.expect("paid after paying")),
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the client finished within 120 s");
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{program} {driver} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (statuses, created)
}

/// The literal text of `key` in a JSON object (numbers untouched by floats).
fn raw_field(object: &str, key: &str) -> String {
    let map: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(object).unwrap();
    map[key].get().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_javascript_client_creates_and_polls_an_order_to_confirmed() {
    require("node", "install Node.js (the README's test tools)");
    let receiver = Receiver::accepting().await;
    let server = TronPhpServer::start(&receiver.url("/callback")).await;
    let (statuses, created) = run_client(&server, "node", "client_driver.js").await;
    assert_eq!(statuses, ["pending", "paid", "confirmed"]);
    let data: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(data["currency"], "TRX");
    assert_eq!(data["description"], "商品购买");
    assert_eq!(raw_field(&created, "amount"), "0.1");
    assert_eq!(data["to_address"], monitoring_address().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_php_client_creates_and_polls_an_order_to_confirmed() {
    require(
        "php",
        "install Debian's php-cli (scripts/install-test-tools.sh does: apt-get install php-cli)",
    );
    let receiver = Receiver::accepting().await;
    let server = TronPhpServer::start(&receiver.url("/callback")).await;
    let (statuses, created) = run_client(&server, "php", "client_driver.php").await;
    assert_eq!(statuses, ["pending", "paid", "confirmed"]);
    let data: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert!(
        data["order_id"].as_str().unwrap().starts_with("ORD-"),
        "{created}"
    );
    assert_eq!(raw_field(&created, "amount"), "0.1");
}
