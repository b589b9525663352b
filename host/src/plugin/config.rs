//! `[[plugins]]` entries of the configuration file, and the `[plugin_runtime]` section.
//!
//! [`PluginConfig`] is embedded into the main configuration (`crate::config`) as
//! `plugins: Vec<PluginConfig>`; every field but `name` and `wasm` has a default.
//! [`PluginRuntimeConfig`] holds what is common to all plugins.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One mounted plugin.
///
/// ```toml
/// [[plugins]]
/// name = "trino"                        # identity: scopes invoices, kv, metrics
/// wasm = "plugins/trino.wasm"
/// prefix = "/trino"                     # optional; routes are mounted under it
/// default_merchant = "m_operator"       # optional; unauthenticated invoice creation
/// deadline_ms = 1000
/// wall_ms = 10000
/// memory_mb = 64
/// max_body_bytes = 1048576
/// max_concurrent_requests = 32
/// webhook_render_slots = 4
/// kv_max_entries = 100000
/// kv_max_bytes = 67108864
/// settings = { networks = ["ethereum"] } # handed to the plugin as JSON
/// # ledger deposit addresses: chain name -> extended public key (no private key)
/// deposit_xpubs = { ethereum = "xpub6DyUKdwo…" }
/// ```
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The name the plugin is mounted under. Invoices, key-value entries,
    /// rate-limit buckets, logs and metrics are keyed by it, so renaming a
    /// plugin detaches it from what it created.
    pub name: String,
    /// Path of the `.wasm` component.
    pub wasm: PathBuf,
    /// Path prefix all of the plugin's routes are mounted under, e.g. `/v2`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The plugin's own settings, handed to it as JSON.
    #[serde(default = "empty_settings")]
    pub settings: serde_json::Value,
    /// Merchant id that unauthenticated invoice creation is attributed to
    /// (dialects whose merchants may omit their key); none forbids it.
    #[serde(default)]
    pub default_merchant: Option<String>,
    /// CPU budget of one request (or webhook rendering), in ms: time spent in the
    /// plugin's own code; time inside host calls does not count.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Wall-clock bound of one request (or webhook rendering), host calls included, in ms.
    /// Reached during a host call (the host is slow): 503 with `Retry-After`; reached in
    /// the plugin's code: a `deadline` fault. At least `deadline_ms`.
    #[serde(default = "default_wall_ms")]
    pub wall_ms: u64,
    /// Memory cap of one instance (all its linear memories and tables together), in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Cap on request and response bodies, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Requests this plugin serves at once; beyond it, 503 with `Retry-After` (not a fault).
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: u32,
    /// Instances reserved for rendering this plugin's webhooks, apart from requests, so a
    /// flood of requests never delays callbacks. A render finding them all busy waits up
    /// to a second for one, then is retried later without counting as a delivery attempt.
    #[serde(default = "default_webhook_render_slots")]
    pub webhook_render_slots: u32,
    /// Most key-value entries the plugin may hold (expired ones count until swept).
    #[serde(default = "default_kv_max_entries")]
    pub kv_max_entries: u64,
    /// Most bytes of key-value values the plugin may hold.
    #[serde(default = "default_kv_max_bytes")]
    pub kv_max_bytes: u64,
    /// Extended public keys (BIP32, `xpub…`) the plugin's ledger users' deposit addresses
    /// are derived from, by chain name: user deposit addresses on a chain are its
    /// non-hardened children (see `crate::ledger`). A chain without a key has no
    /// deposits (`ledger.deposit-address` answers `unsupported`). An extended private
    /// key is refused at start-up.
    #[serde(default)]
    pub deposit_xpubs: BTreeMap<String, String>,
}

/// `[plugin_runtime]`: what is common to every plugin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginRuntimeConfig {
    /// How often expired key-value entries are deleted and idle rate-limit buckets
    /// forgotten, in ms.
    pub maintenance_interval_ms: u64,
    /// How often freed heap memory is handed back to the kernel, in ms; 0 never
    /// (`crate::memory`).
    pub memory_trim_interval_ms: u64,
}

impl Default for PluginRuntimeConfig {
    fn default() -> Self {
        PluginRuntimeConfig {
            maintenance_interval_ms: 60_000,
            memory_trim_interval_ms: 10_000,
        }
    }
}

fn empty_settings() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn default_deadline_ms() -> u64 {
    1_000
}

fn default_wall_ms() -> u64 {
    10_000
}

fn default_memory_mb() -> u64 {
    64
}

fn default_max_concurrent_requests() -> u32 {
    32
}

fn default_webhook_render_slots() -> u32 {
    4
}

fn default_kv_max_entries() -> u64 {
    100_000
}

fn default_kv_max_bytes() -> u64 {
    64 << 20
}

fn default_max_body_bytes() -> usize {
    1 << 20
}

impl PluginConfig {
    /// A config with every default, for `name` at `wasm`.
    pub fn new(name: impl Into<String>, wasm: impl Into<PathBuf>) -> Self {
        PluginConfig {
            name: name.into(),
            wasm: wasm.into(),
            prefix: None,
            settings: empty_settings(),
            default_merchant: None,
            deadline_ms: default_deadline_ms(),
            wall_ms: default_wall_ms(),
            memory_mb: default_memory_mb(),
            max_body_bytes: default_max_body_bytes(),
            max_concurrent_requests: default_max_concurrent_requests(),
            webhook_render_slots: default_webhook_render_slots(),
            kv_max_entries: default_kv_max_entries(),
            kv_max_bytes: default_kv_max_bytes(),
            deposit_xpubs: BTreeMap::new(),
        }
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    pub fn with_settings(mut self, settings: serde_json::Value) -> Self {
        self.settings = settings;
        self
    }

    pub fn with_default_merchant(mut self, merchant_id: impl Into<String>) -> Self {
        self.default_merchant = Some(merchant_id.into());
        self
    }

    pub fn with_deadline_ms(mut self, deadline_ms: u64) -> Self {
        self.deadline_ms = deadline_ms;
        self
    }

    pub fn with_wall_ms(mut self, wall_ms: u64) -> Self {
        self.wall_ms = wall_ms;
        self
    }

    pub fn with_max_concurrent_requests(mut self, requests: u32) -> Self {
        self.max_concurrent_requests = requests;
        self
    }

    pub fn with_webhook_render_slots(mut self, slots: u32) -> Self {
        self.webhook_render_slots = slots;
        self
    }

    pub fn with_kv_quota(mut self, max_entries: u64, max_bytes: u64) -> Self {
        self.kv_max_entries = max_entries;
        self.kv_max_bytes = max_bytes;
        self
    }

    /// Ledger deposit addresses on `chain` derived from `xpub`.
    pub fn with_deposit_xpub(mut self, chain: impl Into<String>, xpub: impl Into<String>) -> Self {
        self.deposit_xpubs.insert(chain.into(), xpub.into());
        self
    }

    pub fn with_memory_mb(mut self, memory_mb: u64) -> Self {
        self.memory_mb = memory_mb;
        self
    }

    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        (self.memory_mb as usize).saturating_mul(1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_take_documented_defaults() {
        let c: PluginConfig =
            serde_json::from_value(serde_json::json!({ "name": "x", "wasm": "x.wasm" })).unwrap();
        assert_eq!(c, PluginConfig::new("x", "x.wasm"));
        assert_eq!(
            (c.deadline_ms, c.wall_ms, c.memory_mb, c.max_body_bytes),
            (1000, 10_000, 64, 1 << 20)
        );
        assert_eq!((c.max_concurrent_requests, c.webhook_render_slots), (32, 4));
        assert_eq!((c.kv_max_entries, c.kv_max_bytes), (100_000, 64 << 20));
        assert!(c.settings.as_object().is_some_and(|o| o.is_empty()));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let r: Result<PluginConfig, _> = serde_json::from_value(
            serde_json::json!({ "name": "x", "wasm": "x.wasm", "prefx": "/a" }),
        );
        assert!(r.is_err());
    }
}
