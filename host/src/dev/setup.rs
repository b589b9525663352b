//! The files of a dev setup in its data directory (`./data/dev` by default):
//!
//! | file | what |
//! |------|------|
//! | `dev.json` | [`DevState`]: the dev chain's accounts and contracts, the demo merchants |
//! | `polypay.toml` | the server's config, written at every start by [`config_text`] |
//! | `chain/state.json`, `chain/anvil.log` | the dev chain (anvil `--state`) and its log |
//! | `tron/chain.jsonl` | the dev TRON chain's journal (see [`super::tron_node`]) |
//! | `polypay.db`, `master.key` | the server's database and the key of merchant secrets |
//!
//! `polypay.toml` is regenerated from the flags, `dev.json` and the plugins' demo
//! declarations at every start, so edits to it do not last; `polypay --config
//! data/dev/polypay.toml serve` runs the same server by hand (with the dev chain up).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use super::contracts::{Contracts, TOKEN_DECIMALS, TOKEN_SYMBOL};
use crate::merchant::IssuedCredential;

pub const STATE_FILE: &str = "dev.json";
pub const CONFIG_FILE: &str = "polypay.toml";
/// The dev chain's directory inside the data directory.
pub const CHAIN_DIR: &str = "chain";
/// The dev chain's network name in invoices and plugin requests.
pub const NETWORK: &str = "anvil";
/// anvil's default chain id.
pub const CHAIN_ID: u64 = 31337;
/// The dev TRON chain's network name.
pub const TRON_NETWORK: &str = "tron-dev";
/// The dev TRON chain's journal, relative to the data directory.
pub const TRON_JOURNAL: &str = "tron/chain.jsonl";
/// Decimals of TRX (sun) and of the dev TRON chain's USDT.
pub const TRON_DECIMALS: u8 = 6;
/// The version of `dev.json` this build writes and reads.
const STATE_VERSION: u32 = 1;

/// Why the setup's files could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a dev state this version understands ({message}); start over with --reset", path.display())]
    State { path: PathBuf, message: String },
    #[error("no dev setup in {}: start one with `polypay dev` first", dir.display())]
    Missing { dir: PathBuf },
}

/// What `polypay dev` keeps between starts. The demo merchants' secrets are kept in
/// plain text so that every start can print them again: this is development data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevState {
    pub version: u32,
    pub chain_id: u64,
    /// Deploys the contracts.
    pub deployer: Address,
    /// The dev wallet: pays from `polypay dev pay` and the checkout page.
    pub wallet: Address,
    /// Where demo merchants are paid.
    pub recipient: Address,
    pub token: Address,
    pub payment_contract: Address,
    /// The first block the server's listener follows (the one after the deployment).
    pub start_block: u64,
    /// Demo merchants by plugin name.
    pub merchants: BTreeMap<String, DemoMerchant>,
}

/// A demo merchant and the credentials it was issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoMerchant {
    pub id: String,
    pub name: String,
    pub credentials: Vec<IssuedCredential>,
}

impl DevState {
    /// A new state for contracts just deployed.
    pub fn new(accounts: DevAccounts, contracts: Contracts, start_block: u64) -> DevState {
        DevState {
            version: STATE_VERSION,
            chain_id: CHAIN_ID,
            deployer: accounts.deployer,
            wallet: accounts.wallet,
            recipient: accounts.recipient,
            token: contracts.token,
            payment_contract: contracts.payment_contract,
            start_block,
            merchants: BTreeMap::new(),
        }
    }

    pub fn contracts(&self) -> Contracts {
        Contracts {
            token: self.token,
            payment_contract: self.payment_contract,
        }
    }

    /// Reads `dir/dev.json`; None when there is none.
    pub fn load(dir: &Path) -> Result<Option<DevState>, SetupError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SetupError::Io { path, source }),
        };
        let state: DevState = serde_json::from_str(&text).map_err(|e| SetupError::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if state.version != STATE_VERSION {
            return Err(SetupError::State {
                path,
                message: format!("version {}, expected {STATE_VERSION}", state.version),
            });
        }
        Ok(Some(state))
    }

    /// Writes `dir/dev.json` (through a temporary file, so a crash never leaves half of it).
    pub fn save(&self, dir: &Path) -> Result<(), SetupError> {
        let text = serde_json::to_string_pretty(self).expect("the dev state serialises");
        write_atomically(&dir.join(STATE_FILE), &text)
    }
}

/// The roles of anvil's development accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevAccounts {
    pub deployer: Address,
    pub wallet: Address,
    pub recipient: Address,
}

impl DevAccounts {
    /// Accounts 0, 1 and 2 of the node's unlocked accounts.
    pub fn from_node(accounts: &[Address]) -> Option<DevAccounts> {
        match accounts {
            [deployer, wallet, recipient, ..] => Some(DevAccounts {
                deployer: *deployer,
                wallet: *wallet,
                recipient: *recipient,
            }),
            _ => None,
        }
    }
}

/// Writes `text` to `path` through a sibling temporary file and a rename.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), SetupError> {
    let io = |source| SetupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// Where the dev setup listens and how its chain behaves (the `polypay dev` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevOptions {
    /// Absolute.
    pub data_dir: PathBuf,
    pub public_port: u16,
    pub admin_port: u16,
    pub node_port: u16,
    /// The dev TRON node's HTTP API.
    pub tron_port: u16,
    pub callback_port: u16,
    /// Blocks deep, counting the paying block, before an invoice is paid.
    pub confirmations: u32,
    /// Interval mining besides mining each transaction at once.
    pub block_time_secs: Option<u64>,
}

impl DevOptions {
    pub fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.public_port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn node_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.node_port)
    }

    pub fn tron_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.tron_port)
    }

    pub fn callback_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.callback_port)
    }
}

/// A plugin as the dev config mounts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub name: String,
    pub wasm: PathBuf,
    pub settings: serde_json::Value,
    pub default_merchant: Option<String>,
}

/// The server config of a dev setup. It loads with [`crate::config::Config::load`] like
/// any config file.
pub fn config_text(options: &DevOptions, state: &DevState, mounts: &[Mount]) -> String {
    let address = |a: Address| a.to_checksum(None);
    let plugins: Vec<serde_json::Value> = mounts
        .iter()
        .map(|m| {
            let mut plugin = serde_json::json!({
                "name": m.name,
                "wasm": m.wasm,
                "settings": m.settings,
            });
            if let Some(merchant) = &m.default_merchant {
                plugin["default_merchant"] = merchant.clone().into();
            }
            plugin
        })
        .collect();
    let config = serde_json::json!({
        "mode": "development",
        "data_dir": options.data_dir,
        "public_base_url": options.public_url(),
        "listen": {
            "public": format!("127.0.0.1:{}", options.public_port),
            "admin": format!("127.0.0.1:{}", options.admin_port),
        },
        "log": { "format": "human", "filter": "warn,polypay_host=info,polypay_host::telemetry=warn" },
        "dev": { "wallet": address(state.wallet) },
        "webhooks": {
            "poll_interval_ms": 200,
            // Demo callbacks go to this machine.
            "allowed_networks": ["127.0.0.1/32", "::1/128"],
            "retry": {
                "initial_delay_ms": 2_000,
                "multiplier": 2,
                "max_delay_ms": 60_000,
                "max_attempts": 10,
            },
        },
        "chains": [{
            "name": NETWORK,
            "kind": "evm",
            "chain_id": state.chain_id,
            "rpc_url": options.node_url(),
            "confirmations": options.confirmations,
            "poll_interval_ms": 250,
            "start_block": state.start_block,
            "assets": [
                { "symbol": "ETH", "decimals": 18, "native": true },
                { "symbol": TOKEN_SYMBOL, "decimals": TOKEN_DECIMALS, "contract": address(state.token) },
            ],
            "payment_contracts": [
                { "address": address(state.payment_contract), "asset": TOKEN_SYMBOL },
            ],
        }, {
            // The dev TRON node serves its head as solidified: a payment is final with
            // the same number of confirmations as on the EVM dev chain.
            "name": TRON_NETWORK,
            "kind": "tron",
            "rpc_url": options.tron_url(),
            "confirmations": options.confirmations,
            "poll_interval_ms": 250,
            "assets": [
                { "symbol": "TRX", "decimals": TRON_DECIMALS, "native": true },
                { "symbol": TOKEN_SYMBOL, "decimals": TRON_DECIMALS, "contract": super::tron_node::control::dev_usdt().to_base58() },
            ],
        }],
        // Fiat-priced demos (pay-orders) need a rate: a fixed table, so the demo works
        // offline and its amounts are predictable.
        "rates": {
            "providers": [{
                "name": "dev",
                "kind": "static",
                "rates": { "USDT/USD": "1", "USDT/CNY": "7.2", "ETH/USD": "3000", "TRX/USD": "0.25" },
            }],
        },
        "plugins": plugins,
    });
    let body = toml::to_string(&config).expect("the dev config is representable in TOML");
    format!(
        "# Written by `polypay dev` at every start (from its flags, {STATE_FILE} and the plugins'\n\
         # demo.toml files): edits here do not last. `polypay --config <this file> serve` runs\n\
         # the same server while the dev chain runs.\n\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Mode};

    fn state() -> DevState {
        let account = |n: u8| Address::repeat_byte(n);
        let mut state = DevState::new(
            DevAccounts {
                deployer: account(1),
                wallet: account(2),
                recipient: account(3),
            },
            Contracts {
                token: account(4),
                payment_contract: account(5),
            },
            7,
        );
        state.merchants.insert(
            "trino".into(),
            DemoMerchant {
                id: "m-1".into(),
                name: "Trino demo shop".into(),
                credentials: vec![IssuedCredential {
                    id: "c-1".into(),
                    plugin: Some("trino".into()),
                    kind: "bearer".into(),
                    public_id: None,
                    secret: "s3cret".into(),
                }],
            },
        );
        state
    }

    fn options(dir: &Path) -> DevOptions {
        DevOptions {
            data_dir: dir.to_path_buf(),
            public_port: 18080,
            admin_port: 19090,
            node_port: 18545,
            tron_port: 18091,
            callback_port: 18090,
            confirmations: 2,
            block_time_secs: None,
        }
    }

    #[test]
    fn generated_config_loads_as_a_development_config_following_the_dev_chain() {
        let dir = tempfile::tempdir().unwrap();
        let state = state();
        let mounts = [Mount {
            name: "trino".into(),
            wasm: dir.path().join("polypay_trino.wasm"),
            settings: serde_json::json!({ "expires_in_secs": 1800, "nested": { "url": "http://x" } }),
            default_merchant: Some("m-1".into()),
        }];
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, config_text(&options(dir.path()), &state, &mounts)).unwrap();
        let config = Config::load(Some(&path)).unwrap();

        assert_eq!(config.mode, Mode::Development);
        assert_eq!(config.data_dir, dir.path());
        assert_eq!(config.public_base_url, "http://127.0.0.1:18080");
        assert_eq!(config.listen.admin.port(), 19090);
        assert_eq!(config.dev_wallet(), Some(state.wallet));
        let chain = &config.chains[0];
        assert_eq!(
            (chain.name.as_str(), chain.chain_id, chain.rpc_url.as_str()),
            (NETWORK, Some(CHAIN_ID), "http://127.0.0.1:18545")
        );
        assert_eq!((chain.confirmations, chain.start_block), (2, Some(7)));
        let usdt = chain.asset("USDT").unwrap();
        assert_eq!(usdt.decimals, 6);
        assert_eq!(
            usdt.contract.as_deref(),
            Some(state.token.to_checksum(None).as_str())
        );
        assert_eq!(
            chain.payment_contracts[0].address,
            state.payment_contract.to_checksum(None)
        );
        let tron = &config.chains[1];
        assert_eq!(
            (tron.name.as_str(), tron.kind, tron.rpc_url.as_str()),
            (
                TRON_NETWORK,
                crate::chain::ChainKind::Tron,
                "http://127.0.0.1:18091"
            )
        );
        assert_eq!(tron.confirmations, 2, "as deep as on the EVM dev chain");
        assert_eq!(
            tron.asset("USDT").unwrap().contract.as_deref(),
            Some(
                super::super::tron_node::control::dev_usdt()
                    .to_base58()
                    .as_str()
            )
        );
        assert!(tron.asset("TRX").unwrap().native);
        let plugin = &config.plugins[0];
        assert_eq!(plugin.name, "trino");
        assert_eq!(plugin.wasm, mounts[0].wasm);
        assert_eq!(plugin.settings, mounts[0].settings);
        assert_eq!(plugin.default_merchant.as_deref(), Some("m-1"));
        assert!(
            config
                .webhooks
                .allowed_networks
                .contains(&"127.0.0.1/32".to_string()),
            "demo callbacks to loopback are allowed"
        );
        assert!(!config.webhooks.allow_private_targets, "and nothing wider");
    }

    #[test]
    fn state_round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DevState::load(dir.path()).unwrap(), None);
        state().save(dir.path()).unwrap();
        assert_eq!(DevState::load(dir.path()).unwrap(), Some(state()));
    }

    #[test]
    fn a_state_of_another_version_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut json = serde_json::to_value(state()).unwrap();
        json["version"] = 99.into();
        std::fs::write(dir.path().join(STATE_FILE), json.to_string()).unwrap();
        let err = DevState::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("--reset"), "{err}");
    }
}
