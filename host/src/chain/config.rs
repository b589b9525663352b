//! The `[[chains]]` section: one entry per network a listener follows.
//!
//! ```toml
//! [[chains]]
//! name = "ethereum"            # how invoices and plugins name the network
//! kind = "evm"
//! chain_id = 1                 # checked against the node's eth_chainId at start
//! rpc_url = "https://eth.example/rpc"
//! confirmations = 12           # blocks deep (the paying block counts as 1) before `paid`
//! poll_interval_ms = 4000
//!
//! [[chains.assets]]
//! symbol = "ETH"
//! decimals = 18
//! native = true
//!
//! [[chains.assets]]
//! symbol = "USDT"
//! decimals = 6
//! contract = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
//! unique_amount_step = "0.000001"   # optional, default one base unit
//! unique_amount_slots = 1000        # optional
//! unique_amount_reuse_after_secs = 600   # optional
//!
//! [[chains.payment_contracts]]       # optional, for the contract-reference strategy
//! address = "0x…"
//! asset = "USDT"
//! ```
//!
//! A TRON network reads a java-tron HTTP API (TronGrid or a self-hosted node):
//!
//! ```toml
//! [[chains]]
//! name = "tron"
//! kind = "tron"                # no chain_id
//! rpc_url = "https://api.trongrid.io"
//! fallback_rpc_urls = ["https://tron.example"]   # tried in order when rpc_url fails
//! api_key = "…"                # sent as TRON-PRO-API-KEY to every endpoint
//! confirmations = 1            # and the block must be solidified (+ solidified_depth)
//!
//! [[chains.assets]]
//! symbol = "TRX"
//! decimals = 6
//! native = true
//!
//! [[chains.assets]]
//! symbol = "USDT"
//! decimals = 6
//! contract = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"   # base58check
//! ```
//!
//! Every field but `name`, `kind`, `rpc_url` and `assets` has a default (see
//! [`ChainConfig`]). [`validate_chains`] checks the whole list and names the offending key
//! in its error, e.g. `chains[1].assets[0].contract: not a 20-byte hex address`.

use serde::{Deserialize, Serialize};

use crate::invoice::{Amount, MAX_DECIMALS};

/// Which listener implementation follows a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainKind {
    /// Any Ethereum JSON-RPC node: Ethereum, its testnets, BSC, Polygon, Fantom, …
    Evm,
    /// A java-tron HTTP API: TRON mainnet, Shasta, Nile.
    Tron,
}

/// One `[[chains]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// The network's name in invoices, plugins and metrics: lowercase letters, digits,
    /// `-` and `_` (`ethereum`, `sepolia`, `bsc`, `polygon`, `fantom`).
    pub name: String,
    pub kind: ChainKind,
    /// EIP-155 chain id; required for `evm`. The listener refuses a node that reports
    /// another one.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// The node's endpoint (`http://` or `https://`): JSON-RPC for `evm`, the java-tron
    /// HTTP API base URL for `tron`.
    pub rpc_url: String,
    /// `tron` only: further endpoints, tried in order whenever the ones before fail.
    #[serde(default)]
    pub fallback_rpc_urls: Vec<String>,
    /// `tron` only: endpoints serving `/walletsolidity/*` (a self-hosted java-tron serves
    /// them on its own port, 8091 by default). Default: `rpc_url` and the fallbacks.
    #[serde(default)]
    pub solidity_rpc_urls: Vec<String>,
    /// `tron` only: a TronGrid-compatible provider key, sent as the `TRON-PRO-API-KEY`
    /// header to every endpoint of the chain. Default: none.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Blocks a payment must be deep, counting its own block, before the invoice is
    /// `paid`. Default 12.
    #[serde(default = "defaults::confirmations")]
    pub confirmations: u32,
    /// `tron` only: blocks a payment must be below the solidified block, beyond the
    /// solidification itself, before the invoice is `paid`. Default 0.
    #[serde(default)]
    pub solidified_depth: u32,
    /// Pause between polls once the listener has caught up with the head. Default 3000.
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Timeout of one RPC request. Default 15000.
    #[serde(default = "defaults::rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// Longest pause between retries while the node fails (the pause doubles from half a
    /// second up to this). Default 30000.
    #[serde(default = "defaults::max_retry_interval_ms")]
    pub max_retry_interval_ms: u64,
    /// Where a listener with no stored cursor starts. Default: the head at first start.
    #[serde(default)]
    pub start_block: Option<u64>,
    /// Largest block range of one `eth_getLogs` call while catching up; the listener halves
    /// it when the node refuses a range and grows it back after successes. Default 1000.
    #[serde(default = "defaults::max_block_range")]
    pub max_block_range: u64,
    /// Blocks this close to the head are processed one at a time, each with its hash
    /// kept; older blocks are processed in ranges. Default 64.
    #[serde(default = "defaults::reorg_window")]
    pub reorg_window: u64,
    /// How far back a reorg is followed before the listener stops and reports it (a
    /// deeper reorg needs an operator). Default 256.
    #[serde(default = "defaults::max_reorg_depth")]
    pub max_reorg_depth: u64,
    /// The assets accepted on this network.
    pub assets: Vec<AssetConfig>,
    /// Payment contracts emitting `Pay(string invoice_id, address recipient, uint256
    /// amount)`, for the `contract-reference` strategy.
    #[serde(default)]
    pub payment_contracts: Vec<PaymentContractConfig>,
}

/// One `[[chains.assets]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetConfig {
    /// The asset's name in invoices (`ETH`, `USDT`, …), unique within the chain.
    pub symbol: String,
    pub decimals: u8,
    /// The chain's native coin (exactly one of `native` and `contract`).
    #[serde(default)]
    pub native: bool,
    /// The token contract: an ERC20 `0x…` address on EVM chains, a TRC20 base58check
    /// address (`T…`) on TRON.
    #[serde(default)]
    pub contract: Option<String>,
    /// Increment the `unique-amount` strategy adds to make an amount unique, as a decimal
    /// in the asset's units (`"0.000001"`). Default: one base unit.
    #[serde(default)]
    pub unique_amount_step: Option<String>,
    /// How many increments (0, 1, … slots-1 steps) a unique amount may add. Default 1000.
    #[serde(default = "defaults::unique_amount_slots")]
    pub unique_amount_slots: u32,
    /// Seconds a released unique amount is not handed out again at the same address, so a
    /// payment made just after an invoice's deadline cannot pay a newer invoice that got
    /// the same amount. Default 600. Together with the slots and the invoices' lifetime
    /// it bounds how many unpaid invoices per amount an address can take per hour.
    #[serde(default = "defaults::unique_amount_reuse_after_secs")]
    pub unique_amount_reuse_after_secs: u32,
    /// Underpayment still accepted as full payment, as a decimal in the asset's units
    /// (`"0.01"`): the payment and the invoice end `paid` without the underpaid flag.
    /// Default: none (the exact amount is due). Applies to invoices created after it is set.
    #[serde(default)]
    pub payment_tolerance: Option<String>,
}

/// One `[[chains.payment_contracts]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentContractConfig {
    pub address: String,
    /// Symbol of the asset the contract moves (one of the chain's `assets`).
    pub asset: String,
}

mod defaults {
    pub fn confirmations() -> u32 {
        12
    }
    pub fn poll_interval_ms() -> u64 {
        3_000
    }
    pub fn rpc_timeout_ms() -> u64 {
        15_000
    }
    pub fn max_retry_interval_ms() -> u64 {
        30_000
    }
    pub fn max_block_range() -> u64 {
        1_000
    }
    pub fn reorg_window() -> u64 {
        64
    }
    pub fn max_reorg_depth() -> u64 {
        256
    }
    pub fn unique_amount_slots() -> u32 {
        1_000
    }

    pub fn unique_amount_reuse_after_secs() -> u32 {
        600
    }
}

/// A `[[chains]]` setting that cannot work, with the key that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ChainConfigError {
    /// The full key, e.g. `chains[0].assets[1].contract`.
    pub key: String,
    pub problem: String,
}

impl ChainConfigError {
    pub(crate) fn new(key: impl Into<String>, problem: impl std::fmt::Display) -> ChainConfigError {
        ChainConfigError {
            key: key.into(),
            problem: problem.to_string(),
        }
    }
}

/// Validates every `[[chains]]` entry and that their names are unique.
pub fn validate_chains(chains: &[ChainConfig]) -> Result<(), ChainConfigError> {
    for (i, chain) in chains.iter().enumerate() {
        chain.validate(i)?;
        if chains[..i].iter().any(|c| c.name == chain.name) {
            return Err(ChainConfigError::new(
                format!("chains[{i}].name"),
                format!("`{}` names two chains", chain.name),
            ));
        }
    }
    Ok(())
}

impl ChainConfig {
    /// Validates this entry, the `index`-th of `[[chains]]` (for error keys).
    pub fn validate(&self, index: usize) -> Result<(), ChainConfigError> {
        let key = |field: &str| format!("chains[{index}].{field}");
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(ChainConfigError::new(
                key("name"),
                format!(
                    "`{}` must be lowercase letters, digits, `-` or `_`",
                    self.name
                ),
            ));
        }
        if !(self.rpc_url.starts_with("http://") || self.rpc_url.starts_with("https://")) {
            return Err(ChainConfigError::new(
                key("rpc_url"),
                "must be an http:// or https:// URL",
            ));
        }
        if self.max_block_range == 0 {
            return Err(ChainConfigError::new(
                key("max_block_range"),
                "must be at least 1",
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err(ChainConfigError::new(
                key("poll_interval_ms"),
                "must be at least 1",
            ));
        }
        if self.rpc_timeout_ms == 0 {
            return Err(ChainConfigError::new(
                key("rpc_timeout_ms"),
                "must be at least 1",
            ));
        }
        if self.assets.is_empty() {
            return Err(ChainConfigError::new(
                key("assets"),
                "a chain needs at least one asset",
            ));
        }
        for (a, asset) in self.assets.iter().enumerate() {
            let akey = |field: &str| key(&format!("assets[{a}].{field}"));
            if asset.symbol.is_empty() {
                return Err(ChainConfigError::new(akey("symbol"), "must not be empty"));
            }
            if self.assets[..a].iter().any(|o| o.symbol == asset.symbol) {
                return Err(ChainConfigError::new(
                    akey("symbol"),
                    format!("`{}` names two assets of this chain", asset.symbol),
                ));
            }
            if asset.decimals > MAX_DECIMALS {
                return Err(ChainConfigError::new(
                    akey("decimals"),
                    format!("at most {MAX_DECIMALS}"),
                ));
            }
            match (asset.native, &asset.contract) {
                (true, Some(_)) => {
                    return Err(ChainConfigError::new(
                        akey("contract"),
                        "a native asset has no contract",
                    ));
                }
                (false, None) => {
                    return Err(ChainConfigError::new(
                        akey("contract"),
                        "missing: set `contract` for a token or `native = true` for the coin",
                    ));
                }
                _ => {}
            }
            if asset.native && self.assets[..a].iter().any(|o| o.native) {
                return Err(ChainConfigError::new(
                    akey("native"),
                    "only one asset can be the native coin",
                ));
            }
            asset
                .unique_step()
                .map_err(|problem| ChainConfigError::new(akey("unique_amount_step"), problem))?;
            asset
                .tolerance()
                .map_err(|problem| ChainConfigError::new(akey("payment_tolerance"), problem))?;
            if asset.unique_amount_slots == 0 {
                return Err(ChainConfigError::new(
                    akey("unique_amount_slots"),
                    "must be at least 1",
                ));
            }
        }
        for (p, contract) in self.payment_contracts.iter().enumerate() {
            let pkey = key(&format!("payment_contracts[{p}].asset"));
            let asset = self.asset(&contract.asset).ok_or_else(|| {
                ChainConfigError::new(
                    pkey.clone(),
                    format!("`{}` is not one of this chain's assets", contract.asset),
                )
            })?;
            if asset.native {
                return Err(ChainConfigError::new(
                    pkey,
                    "a payment contract moves a token, not the native coin",
                ));
            }
        }
        match self.kind {
            ChainKind::Evm => {
                if self.chain_id.is_none() {
                    return Err(ChainConfigError::new(
                        key("chain_id"),
                        "required for an evm chain",
                    ));
                }
                let tron_only = [
                    ("fallback_rpc_urls", !self.fallback_rpc_urls.is_empty()),
                    ("solidity_rpc_urls", !self.solidity_rpc_urls.is_empty()),
                    ("api_key", self.api_key.is_some()),
                    ("solidified_depth", self.solidified_depth != 0),
                ];
                if let Some((field, _)) = tron_only.iter().find(|(_, set)| *set) {
                    return Err(ChainConfigError::new(
                        key(field),
                        "only tron chains take this setting",
                    ));
                }
                super::evm::Network::from_config(self, index).map(drop)
            }
            ChainKind::Tron => super::tron::Network::from_config(self, index).map(drop),
        }
    }

    /// The asset with this symbol.
    pub fn asset(&self, symbol: &str) -> Option<&AssetConfig> {
        self.assets.iter().find(|a| a.symbol == symbol)
    }
}

impl AssetConfig {
    /// The accepted underpayment in base units (default zero).
    pub fn tolerance(&self) -> Result<Amount, AssetAmountError> {
        match &self.payment_tolerance {
            None => Ok(Amount::ZERO),
            Some(text) => self.amount(text),
        }
    }

    /// The unique-amount increment in base units (default one base unit).
    pub fn unique_step(&self) -> Result<Amount, AssetAmountError> {
        match &self.unique_amount_step {
            None => Ok(Amount::from(1)),
            Some(step) => {
                let amount = self.amount(step)?;
                if amount.is_zero() {
                    return Err(AssetAmountError::Zero);
                }
                Ok(amount)
            }
        }
    }

    fn amount(&self, text: &str) -> Result<Amount, AssetAmountError> {
        Amount::parse_decimal(text, self.decimals).map_err(|source| AssetAmountError::Invalid {
            text: text.to_string(),
            source,
        })
    }
}

/// An amount setting of an asset that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssetAmountError {
    #[error("`{text}`: {source}")]
    Invalid {
        text: String,
        source: crate::invoice::MoneyError,
    },
    #[error("must be more than zero")]
    Zero,
}

#[cfg(test)]
mod tests {
    #[test]
    fn payment_tolerance_is_exact_in_base_units_and_validated() {
        let asset = |tolerance: Option<&str>| AssetConfig {
            symbol: "USDT".into(),
            decimals: 6,
            native: false,
            contract: None,
            unique_amount_step: None,
            unique_amount_slots: 1,
            unique_amount_reuse_after_secs: 0,
            payment_tolerance: tolerance.map(str::to_string),
        };
        assert_eq!(asset(None).tolerance().unwrap(), Amount::ZERO);
        assert_eq!(
            asset(Some("0.01")).tolerance().unwrap(),
            Amount::from(10_000u64)
        );
        assert!(
            asset(Some("0.0000001")).tolerance().is_err(),
            "finer than the asset's decimals"
        );
        assert!(asset(Some("-1")).tolerance().is_err());
    }

    use figment::providers::Format as _;

    use super::*;

    fn chain() -> ChainConfig {
        toml_chain(
            r#"
            name = "sepolia"
            kind = "evm"
            chain_id = 11155111
            rpc_url = "http://127.0.0.1:8545"
            [[assets]]
            symbol = "ETH"
            decimals = 18
            native = true
            [[assets]]
            symbol = "USDT"
            decimals = 6
            contract = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
            unique_amount_step = "0.0001"
            [[payment_contracts]]
            address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            asset = "USDT"
            "#,
        )
    }

    fn toml_chain(text: &str) -> ChainConfig {
        figment::Figment::from(figment::providers::Toml::string(text))
            .extract()
            .unwrap()
    }

    #[test]
    fn a_complete_entry_parses_with_defaults_and_validates() {
        let c = chain();
        assert_eq!(c.confirmations, 12);
        assert_eq!(c.poll_interval_ms, 3_000);
        assert_eq!(c.max_block_range, 1_000);
        assert_eq!(c.assets[1].unique_amount_slots, 1_000);
        assert_eq!(c.assets[1].unique_step().unwrap(), Amount::from(100));
        assert_eq!(c.assets[0].unique_step().unwrap(), Amount::from(1));
        validate_chains(&[c]).unwrap();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = figment::Figment::from(figment::providers::Toml::string(
            "name = \"x\"\nkind = \"evm\"\nrpc_url = \"http://a\"\nassets = []\nconfirmation = 3",
        ))
        .extract::<ChainConfig>()
        .unwrap_err();
        assert!(err.to_string().contains("confirmation"), "{err}");
    }

    #[test]
    fn validation_errors_name_the_key() {
        type Edit = Box<dyn Fn(&mut ChainConfig)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|c| c.name = "Main Net".into()), "chains[0].name"),
            (
                Box::new(|c| c.rpc_url = "ws://x".into()),
                "chains[0].rpc_url",
            ),
            (Box::new(|c| c.chain_id = None), "chains[0].chain_id"),
            (
                Box::new(|c| c.assets[1].contract = Some("0x12".into())),
                "chains[0].assets[1].contract",
            ),
            (
                Box::new(|c| c.assets[1].contract = None),
                "chains[0].assets[1].contract",
            ),
            (
                Box::new(|c| c.assets[0].contract = Some("0x00".into())),
                "chains[0].assets[0].contract",
            ),
            (
                Box::new(|c| c.assets[1].symbol = "ETH".into()),
                "chains[0].assets[1].symbol",
            ),
            (
                Box::new(|c| c.assets[1].unique_amount_step = Some("0.0000001".into())),
                "chains[0].assets[1].unique_amount_step",
            ),
            (
                Box::new(|c| c.assets[1].unique_amount_slots = 0),
                "chains[0].assets[1].unique_amount_slots",
            ),
            (
                Box::new(|c| c.payment_contracts[0].asset = "DAI".into()),
                "chains[0].payment_contracts[0].asset",
            ),
            (
                Box::new(|c| c.payment_contracts[0].asset = "ETH".into()),
                "chains[0].payment_contracts[0].asset",
            ),
            (
                Box::new(|c| c.payment_contracts[0].address = "nope".into()),
                "chains[0].payment_contracts[0].address",
            ),
            (
                Box::new(|c| c.max_block_range = 0),
                "chains[0].max_block_range",
            ),
        ];
        for (edit, key) in cases {
            let mut c = chain();
            edit(&mut c);
            let err = validate_chains(&[c]).unwrap_err();
            assert_eq!(err.key, key, "{err}");
        }
    }

    fn tron_chain() -> ChainConfig {
        toml_chain(
            r#"
            name = "nile"
            kind = "tron"
            rpc_url = "https://nile.trongrid.io"
            fallback_rpc_urls = ["http://127.0.0.1:8090"]
            solidity_rpc_urls = ["http://127.0.0.1:8091"]
            api_key = "00000000-0000-0000-0000-000000000000"
            solidified_depth = 2
            [[assets]]
            symbol = "TRX"
            decimals = 6
            native = true
            [[assets]]
            symbol = "USDT"
            decimals = 6
            contract = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
            "#,
        )
    }

    #[test]
    fn a_tron_entry_parses_and_validates() {
        let c = tron_chain();
        validate_chains(std::slice::from_ref(&c)).unwrap();
        let network = crate::chain::tron::Network::from_config(&c, 0).unwrap();
        assert_eq!(
            network.rpc_urls,
            ["https://nile.trongrid.io", "http://127.0.0.1:8090"]
        );
        assert_eq!(network.solidity_rpc_urls, ["http://127.0.0.1:8091"]);
        assert_eq!(network.solidified_depth, 2);
        assert_eq!(network.native.as_ref().unwrap().symbol, "TRX");
        assert_eq!(
            network.tokens[0].contract.to_hex(),
            "41eca9bc828a3005b9a3b909f2cc5c2a54794de05f"
        );
        // Without solidity endpoints, the full-node ones serve both.
        let mut c = tron_chain();
        c.solidity_rpc_urls.clear();
        let network = crate::chain::tron::Network::from_config(&c, 0).unwrap();
        assert_eq!(network.solidity_rpc_urls, network.rpc_urls);
    }

    #[test]
    fn tron_validation_errors_name_the_key() {
        type Edit = Box<dyn Fn(&mut ChainConfig)>;
        let cases: Vec<(Edit, &str)> = vec![
            // An EVM-form contract, a typo in the checksum.
            (
                Box::new(|c| {
                    c.assets[1].contract = Some("0xdAC17F958D2ee523a2206206994597C13D831ec7".into())
                }),
                "chains[0].assets[1].contract",
            ),
            (
                Box::new(|c| {
                    c.assets[1].contract = Some("TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBg".into())
                }),
                "chains[0].assets[1].contract",
            ),
            (
                Box::new(|c| c.assets[0].decimals = 18),
                "chains[0].assets[0].decimals",
            ),
            (Box::new(|c| c.chain_id = Some(1)), "chains[0].chain_id"),
            (
                Box::new(|c| c.fallback_rpc_urls.push("ws://x".into())),
                "chains[0].fallback_rpc_urls[1]",
            ),
            (
                Box::new(|c| c.solidity_rpc_urls[0] = "localhost:8091".into()),
                "chains[0].solidity_rpc_urls[0]",
            ),
            (
                Box::new(|c| c.api_key = Some(String::new())),
                "chains[0].api_key",
            ),
            (
                Box::new(|c| {
                    c.payment_contracts.push(PaymentContractConfig {
                        address: "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf".into(),
                        asset: "USDT".into(),
                    })
                }),
                "chains[0].payment_contracts",
            ),
            (
                Box::new(|c| {
                    let mut twin = c.assets[1].clone();
                    twin.symbol = "USDT2".into();
                    c.assets.push(twin)
                }),
                "chains[0].assets",
            ),
        ];
        for (edit, key) in cases {
            let mut c = tron_chain();
            edit(&mut c);
            let err = validate_chains(&[c]).unwrap_err();
            assert_eq!(err.key, key, "{err}");
        }
    }

    #[test]
    fn tron_settings_on_an_evm_chain_are_refused() {
        let mut c = chain();
        c.api_key = Some("k".into());
        assert_eq!(validate_chains(&[c]).unwrap_err().key, "chains[0].api_key");
        let mut c = chain();
        c.fallback_rpc_urls.push("http://b".into());
        assert_eq!(
            validate_chains(&[c]).unwrap_err().key,
            "chains[0].fallback_rpc_urls"
        );
    }

    /// The `[[chains]]` examples of `config/polypay.toml`, uncommented.
    fn documented_chains() -> Vec<ChainConfig> {
        let text = include_str!("../../../config/polypay.toml");
        let section = text
            .split("# Networks the chain listeners follow")
            .nth(1)
            .expect("chains section");
        let toml: String = section
            .lines()
            // The chains section ends at the next (uncommented) table.
            .take_while(|line| !line.starts_with('['))
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                let key = line.split(" = ").next().unwrap_or("");
                line.starts_with("[[chains")
                    || (line.contains(" = ")
                        && !key.is_empty()
                        && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        #[derive(serde::Deserialize)]
        struct Doc {
            chains: Vec<ChainConfig>,
        }
        figment::Figment::from(figment::providers::Toml::string(&toml))
            .extract::<Doc>()
            .unwrap_or_else(|e| panic!("{e}\n{toml}"))
            .chains
    }

    #[test]
    fn the_documented_tron_examples_validate() {
        let chains = documented_chains();
        let tron: Vec<_> = chains
            .into_iter()
            .filter(|c| c.kind == ChainKind::Tron)
            .collect();
        assert_eq!(tron.len(), 2, "a mainnet and a testnet example");
        validate_chains(&tron).unwrap();
        let mainnet = crate::chain::tron::Network::from_config(&tron[0], 0).unwrap();
        assert_eq!(
            mainnet
                .token_at(
                    crate::chain::tron::TronAddress::parse("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
                        .unwrap()
                )
                .map(|t| t.symbol.as_str()),
            Some("USDT")
        );
    }

    #[test]
    fn two_chains_with_one_name_are_refused() {
        let err = validate_chains(&[chain(), chain()]).unwrap_err();
        assert_eq!(err.key, "chains[1].name");
    }
}
