//! A polypay server speaking the Trino dialect, as an operator sets it up: a config file
//! that follows a local anvil chain and mounts the `trino` plugin, a merchant created with
//! `polypay merchant create --plugin trino` (whose printed token the tests use), and
//! `polypay serve` running as a child process.
#![allow(dead_code)]

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::common::anvil::TestChain;
use crate::common::polypay::{
    PolypayProcess, cli_json, free_port, loopback_webhooks_toml, secrets_toml,
};

/// The network name the seed's requests use. The tests' local anvil node plays it.
pub const NETWORK: &str = "goerli";

/// The seed document's create request, verbatim (`POST /api/v1/invoices/create`).
pub fn seed_create_request() -> Value {
    serde_json::json!({
        "amount": 10000000,
        "jump_url": "https://trino.network/#/order/2022062214060769050",
        "metadata": "e29c1B698F98BdFe6Ca4012dEE6FB350D73E40AE",
        "network": "goerli",
        "notify_url": "https://trino.network/pay/notify",
        "recipient": "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af",
        "title": "支付订单NO：23435435646"
    })
}

pub struct TrinoServer {
    pub base: String,
    pub admin: String,
    pub config: PathBuf,
    /// The merchant's bearer token, as `merchant create` printed it.
    pub token: String,
    pub merchant_id: String,
    pub process: PolypayProcess,
    pub dir: tempfile::TempDir,
}

impl TrinoServer {
    /// Writes the config, creates a Trino merchant with the CLI and starts the server.
    /// `confirmations` is the network's required depth (the paying block counts as 1).
    pub async fn start(chain: &TestChain, confirmations: u32) -> TrinoServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (public, admin) = (free_port(), free_port());
        let config = dir.path().join("polypay.toml");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "{data}"
public_base_url = "http://127.0.0.1:{public}"

[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"

{secrets}
{webhooks}
{chain_toml}
[[chains.payment_contracts]]
address = "{payment_contract}"
asset = "USDT"

[[plugins]]
name = "trino"
wasm = "{wasm}"
"#,
                data = dir.path().display(),
                secrets = secrets_toml(),
                webhooks = loopback_webhooks_toml(),
                chain_toml = chain.config_toml(NETWORK, confirmations).await,
                payment_contract = chain.payment_contract.to_checksum(None),
                wasm = polypay_plugin_artifacts::TRINO,
            ),
        )
        .expect("write the config");
        let (merchant_id, token) = create_merchant(&config, "Trino shop");
        let mut process = PolypayProcess::serve(&config);
        let admin = format!("http://127.0.0.1:{admin}");
        process.wait_ready(&admin).await;
        TrinoServer {
            base: format!("http://127.0.0.1:{public}"),
            admin,
            config,
            token,
            merchant_id,
            process,
            dir,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Another Trino merchant, created with the CLI while the server runs: (id, token).
    pub fn create_merchant(&self, name: &str) -> (String, String) {
        create_merchant(&self.config, name)
    }
}

/// `polypay merchant create --name NAME --plugin trino`: the merchant id and its token.
fn create_merchant(config: &std::path::Path, name: &str) -> (String, String) {
    let created = cli_json(
        config,
        &["merchant", "create", "--name", name, "--plugin", "trino"],
    );
    let credentials = created["credentials"].as_array().expect("credentials");
    assert_eq!(credentials.len(), 1, "one token: {created}");
    assert_eq!(credentials[0]["kind"], "bearer");
    let token = credentials[0]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let id = created["merchant"]["id"].as_str().expect("id").to_owned();
    (id, token)
}

/// `sha256=<hex HMAC-SHA256(body)>` keyed with `token`: the callback signature, computed
/// here independently of the host.
pub fn expected_signature(token: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
