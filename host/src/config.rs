//! Configuration: built-in defaults, then an optional TOML file, then `POLYPAY_*`
//! environment variables, each layer overriding the one before (figment).
//!
//! Environment variables name nested keys with a double underscore:
//! `POLYPAY_DATABASE__URL=postgres://…` sets `[database] url`, `POLYPAY_LOG__FORMAT=json`
//! sets `[log] format`. Only variables whose first segment is a known section are read,
//! so an unrelated `POLYPAY_SOMETHING` in the environment never breaks start-up.
//!
//! Unknown keys in the file are errors: a misspelt setting that silently falls back to its
//! default is worse than a refusal to start. Every error names the key and where the
//! value came from (the file path or the environment variable).
//!
//! `config/polypay.toml` documents every setting; `config/dev.toml` is what the README's
//! run command uses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Top-level sections; environment variables outside these are ignored.
const SECTIONS: &[&str] = &[
    "mode",
    "dev",
    "listen",
    "database",
    "data_dir",
    "secrets",
    "log",
    "http",
    "public_base_url",
    "chains",
    "webhooks",
    "admin",
    "checkout",
    "plugin_runtime",
    "rates",
    "two_factor",
];

/// The whole configuration of one polypay process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `production` (the default) or `development`; see [`Mode`].
    pub mode: Mode,
    /// Directory for embedded data: the SQLite database and a generated dev master key.
    pub data_dir: PathBuf,
    /// Base URL under which payers reach the public listener (used in checkout links).
    pub public_base_url: String,
    pub listen: ListenConfig,
    pub database: DatabaseConfig,
    pub secrets: SecretsConfig,
    pub log: LogConfig,
    pub http: HttpConfig,
    /// The admin listener's access control (`[admin]`).
    pub admin: AdminConfig,
    /// The checkout page's live feed (`[checkout]`).
    pub checkout: CheckoutConfig,
    /// Networks the chain listeners follow (`[[chains]]`, see [`crate::chain`]).
    pub chains: Vec<crate::chain::ChainConfig>,
    /// API dialect plugins to mount (`[[plugins]]`, see [`crate::plugin::PluginConfig`]).
    pub plugins: Vec<crate::plugin::PluginConfig>,
    /// What is common to every plugin (`[plugin_runtime]`).
    pub plugin_runtime: crate::plugin::PluginRuntimeConfig,
    /// Callback delivery (`[webhooks]`, see [`crate::webhook`]).
    pub webhooks: crate::webhook::WebhookConfig,
    /// Fiat rate providers (`[rates]`, see [`crate::rates`]).
    pub rates: crate::rates::RatesConfig,
    /// Second-factor codes for plugins' users (`[two_factor]`, see [`crate::two_factor`]).
    pub two_factor: crate::two_factor::TwoFactorConfig,
    /// Development tooling (`[dev]`); only allowed with `mode = "development"`.
    pub dev: DevConfig,
}

/// The `[dev]` section, written by `polypay dev` (see [`crate::dev`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// An unlocked account of the development chain (anvil) that the checkout page's
    /// "Pay with the dev wallet" button pays from, on the invoice's EVM network. Unset: no
    /// such button.
    pub wallet: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Public listener: plugin routes and the checkout page.
    pub public: SocketAddr,
    /// Admin listener: health, readiness, metrics, operator API. Keep it on loopback.
    pub admin: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://…`. Empty: embedded SQLite at `<data_dir>/polypay.db`.
    pub url: Option<String>,
    /// Upper bound of pooled connections (PostgreSQL; SQLite uses a small fixed pool).
    pub max_connections: u32,
    /// PostgreSQL: listen for the database's notifications of new webhook events and
    /// invoice changes, so that every instance's workers and checkout streams react at
    /// once (`false`: polling only). One more connection per process.
    pub notify: bool,
}

/// What kind of installation this is. Production refuses to make up secrets: the master
/// key and the admin token must be configured. Development generates both into the data
/// directory on first start (with a warning), so that a checkout runs with one command,
/// and allows the development tooling of `[dev]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Production,
    Development,
}

/// A configured secret. It is never printed: `Debug` shows `[redacted]`, and the
/// fields holding one are skipped when a config is serialised.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the code that uses it (never for logs).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// 32-byte master key as 64 hex characters. Encrypts merchant secrets at rest.
    #[serde(skip_serializing)]
    pub master_key: Option<Secret>,
    /// File holding the hex master key. Used when `master_key` is unset. When neither is
    /// set, development mode uses `<data_dir>/master.key` (generated on first start, with
    /// a warning); production refuses to start.
    pub master_key_file: Option<PathBuf>,
}

/// Access to the admin listener (see [`crate::http::admin`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The bearer token every admin request but `/healthz` and `/readyz` must carry.
    #[serde(skip_serializing)]
    pub token: Option<Secret>,
    /// File holding the token, used when `token` is unset. With neither, development
    /// mode uses `<data_dir>/admin.token` (generated on first start); production refuses
    /// to start.
    pub token_file: Option<PathBuf>,
    /// Host names (without port) the admin listener answers to besides `localhost` and
    /// IP literals, e.g. the name a reverse proxy or Prometheus uses. Other `Host`
    /// headers are refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

/// The checkout page's live event feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckoutConfig {
    /// Event streams open at once across all invoices; more are answered 503 (the page
    /// falls back to polling the JSON).
    pub max_streams: usize,
    /// How often the one shared watcher of an invoice re-reads it, in milliseconds.
    pub poll_interval_ms: u64,
}

impl Default for CheckoutConfig {
    fn default() -> Self {
        CheckoutConfig {
            max_streams: 10_000,
            poll_interval_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `polypay_host=debug,info`. `RUST_LOG` overrides it.
    pub filter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted on any listener, in bytes.
    pub max_body_bytes: usize,
    /// A connection must send a request's complete head (request line and headers)
    /// within this time, also when it waits between keep-alive requests.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive completely within this time (else 408).
    pub body_read_timeout_ms: u64,
    /// A connection on which no byte moved and no request is being handled for this
    /// long is closed.
    pub idle_timeout_ms: u64,
    /// Open connections per listener; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests handled at once per listener; more are answered 503 with
    /// `Retry-After` at once instead of queueing (load shedding).
    pub max_in_flight: usize,
    /// Networks of reverse proxies whose `X-Forwarded-For` is believed (CIDR or single
    /// addresses). Empty: the peer address is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Production,
            data_dir: PathBuf::from("./data"),
            public_base_url: "http://127.0.0.1:8080".into(),
            listen: ListenConfig::default(),
            database: DatabaseConfig::default(),
            secrets: SecretsConfig::default(),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            admin: AdminConfig::default(),
            checkout: CheckoutConfig::default(),
            chains: Vec::new(),
            plugins: Vec::new(),
            plugin_runtime: crate::plugin::PluginRuntimeConfig::default(),
            webhooks: crate::webhook::WebhookConfig::default(),
            rates: crate::rates::RatesConfig::default(),
            two_factor: crate::two_factor::TwoFactorConfig::default(),
            dev: DevConfig::default(),
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            public: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 16,
            notify: true,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            filter: "info".into(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1024 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            max_connections: 4_096,
            max_in_flight: 512,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    FileMissing(PathBuf),
    #[error("{0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid value for key `{key}` ({origin}): {message}")]
    Value {
        key: &'static str,
        origin: String,
        message: String,
    },
}

impl Config {
    /// Loads defaults < `file` (if given; it must exist) < `POLYPAY_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::figment(file)?
            .extract::<Config>()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?
            .validated(file)
    }

    /// The figment behind [`Config::load`], for callers that extract extra sections.
    pub fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::FileMissing(path.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Ok(
            figment.merge(Env::prefixed("POLYPAY_").split("__").filter(|key| {
                // The filter sees the key as `split` left it, not yet lower-cased.
                let section = key.as_str().split('.').next().unwrap_or_default();
                SECTIONS
                    .iter()
                    .any(|known| section.eq_ignore_ascii_case(known))
            })),
        )
    }

    fn validated(self, file: Option<&Path>) -> Result<Config, ConfigError> {
        let origin = || match file {
            Some(path) => format!("{} or POLYPAY_* environment", path.display()),
            None => "POLYPAY_* environment".to_string(),
        };
        if let Some(url) = &self.database.url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Value {
                key: "database.url",
                origin: origin(),
                message: format!("`{url}` is neither a sqlite: nor a postgres:// URL"),
            });
        }
        if let Some(key) = &self.secrets.master_key
            && let Err(message) = crate::merchant::MasterKey::from_hex(key.expose())
        {
            return Err(ConfigError::Value {
                key: "secrets.master_key",
                origin: origin(),
                message: message.to_string(),
            });
        }
        for (key, value) in [
            ("http.max_body_bytes", self.http.max_body_bytes as u64),
            (
                "http.header_read_timeout_ms",
                self.http.header_read_timeout_ms,
            ),
            ("http.body_read_timeout_ms", self.http.body_read_timeout_ms),
            ("http.idle_timeout_ms", self.http.idle_timeout_ms),
            ("http.max_connections", self.http.max_connections as u64),
            ("http.max_in_flight", self.http.max_in_flight as u64),
            ("checkout.max_streams", self.checkout.max_streams as u64),
            ("checkout.poll_interval_ms", self.checkout.poll_interval_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::Value {
                    key,
                    origin: origin(),
                    message: "must be greater than zero".into(),
                });
            }
        }
        if let Err(message) = parse_networks(&self.http.trusted_proxies) {
            return Err(ConfigError::Value {
                key: "http.trusted_proxies",
                origin: origin(),
                message: message.to_string(),
            });
        }
        if let Some(token) = &self.admin.token
            && let Err(message) = check_admin_token(token.expose())
        {
            return Err(ConfigError::Value {
                key: "admin.token",
                origin: origin(),
                message: message.to_string(),
            });
        }
        if !(self.public_base_url.starts_with("http://")
            || self.public_base_url.starts_with("https://"))
        {
            return Err(ConfigError::Value {
                key: "public_base_url",
                origin: origin(),
                message: format!("`{}` is not an http(s) URL", self.public_base_url),
            });
        }
        if let Err(e) = crate::chain::validate_chains(&self.chains) {
            return Err(ConfigError::Value {
                key: "chains",
                origin: origin(),
                message: e.to_string(),
            });
        }
        if let Err(e) = crate::rates::Rates::new(&self.rates) {
            return Err(ConfigError::Value {
                key: "rates",
                origin: origin(),
                message: e.to_string(),
            });
        }
        if let Err(message) = self.two_factor.validate() {
            return Err(ConfigError::Value {
                key: "two_factor",
                origin: origin(),
                message,
            });
        }
        if let Some(wallet) = &self.dev.wallet {
            if self.mode != Mode::Development {
                return Err(ConfigError::Value {
                    key: "dev.wallet",
                    origin: origin(),
                    message: "only allowed with mode = \"development\": it pays from an unlocked \
                              account of a development chain"
                        .into(),
                });
            }
            if let Err(message) = crate::chain::evm::parse_address(wallet) {
                return Err(ConfigError::Value {
                    key: "dev.wallet",
                    origin: origin(),
                    message: message.to_string(),
                });
            }
        }
        if let Err((key, message)) = self.webhooks.validate() {
            return Err(ConfigError::Value {
                key,
                origin: origin(),
                message,
            });
        }
        if self.plugin_runtime.maintenance_interval_ms == 0 {
            return Err(ConfigError::Value {
                key: "plugin_runtime.maintenance_interval_ms",
                origin: origin(),
                message: "must be greater than zero".into(),
            });
        }
        Ok(self)
    }

    /// The dev wallet's address, when this process runs in development mode with one.
    pub fn dev_wallet(&self) -> Option<alloy_primitives::Address> {
        if self.mode != Mode::Development {
            return None;
        }
        let wallet = self.dev.wallet.as_deref()?;
        crate::chain::evm::parse_address(wallet).ok()
    }

    /// The database URL in force: the configured one, or embedded SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("polypay.db").display()),
        }
    }
}

/// Parses a network setting: CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (a
/// host network). Used by every setting that lists networks.
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, InvalidNetwork> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        // `10.1.2.3/8` means the network it is in.
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| InvalidNetwork(text.to_string()))
}

/// A network setting that is neither a CIDR network nor an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP network (e.g. 10.0.0.0/8) or address")]
pub struct InvalidNetwork(pub String);

/// [`parse_network`] over a list.
pub fn parse_networks(texts: &[String]) -> Result<Vec<ipnet::IpNet>, InvalidNetwork> {
    texts.iter().map(|t| parse_network(t)).collect()
}

/// The shortest admin token accepted: 128 bits as hex.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Refuses admin tokens that are short or would not survive an HTTP header.
pub fn check_admin_token(token: &str) -> Result<(), AdminTokenError> {
    if token.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(AdminTokenError::TooShort);
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AdminTokenError::NotPrintable);
    }
    Ok(())
}

/// Why an admin token is refused (the message completes "the admin token …").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    #[error(
        "must be at least {MIN_ADMIN_TOKEN_LEN} characters (generate one with `openssl rand -hex 32`)"
    )]
    TooShort,
    #[error("must be printable ASCII without spaces")]
    NotPrintable,
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_use_embedded_sqlite_in_data_dir() {
        Jail::expect_with(|_| {
            let config = Config::load(None).unwrap();
            assert_eq!(config.database_url(), "sqlite://./data/polypay.db");
            assert_eq!(config.listen.admin.port(), 9090);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "[listen]\npublic = \"127.0.0.1:1000\"\nadmin = \"127.0.0.1:1001\"\n",
            )?;
            jail.set_env("POLYPAY_LISTEN__ADMIN", "127.0.0.1:2001");
            let config = Config::load(Some(Path::new("p.toml"))).unwrap();
            assert_eq!(config.listen.public.port(), 1000);
            assert_eq!(config.listen.admin.port(), 2001);
            Ok(())
        });
    }

    #[test]
    fn wrong_type_error_names_key_and_file() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[listen]\nadmin = 12\n")?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("listen.admin"), "{err}");
            assert!(err.contains("bad.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_in_file_is_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[databse]\nurl = \"sqlite://x.db\"\n")?;
            let err = Config::load(Some(Path::new("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("databse"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unrelated_polypay_environment_variables_are_ignored() {
        Jail::expect_with(|jail| {
            jail.set_env("POLYPAY_TEST_DATABASE_URL", "postgres://elsewhere");
            assert!(Config::load(None).is_ok());
            Ok(())
        });
    }

    #[test]
    fn shipped_example_and_dev_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        for name in ["polypay.toml", "dev.toml"] {
            Jail::expect_with(|_| {
                Config::load(Some(&dir.join(name))).unwrap_or_else(|e| panic!("{name}: {e}"));
                Ok(())
            });
        }
    }

    #[test]
    fn dev_wallet_is_refused_outside_development_mode() {
        const WALLET: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
        Jail::expect_with(|jail| {
            jail.create_file("prod.toml", &format!("[dev]\nwallet = \"{WALLET}\"\n"))?;
            let err = Config::load(Some(Path::new("prod.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("dev.wallet"), "{err}");
            assert!(err.contains("development"), "{err}");

            jail.create_file(
                "dev.toml",
                &format!("mode = \"development\"\n[dev]\nwallet = \"{WALLET}\"\n"),
            )?;
            let config = Config::load(Some(Path::new("dev.toml"))).unwrap();
            assert_eq!(config.mode, Mode::Development);
            assert_eq!(
                config.dev_wallet().map(|a| a.to_checksum(None)).as_deref(),
                Some(WALLET)
            );

            assert_eq!(Config::load(None).unwrap().mode, Mode::Production);
            Ok(())
        });
    }

    #[test]
    fn mode_is_production_unless_set_and_dev_config_is_development() {
        Jail::expect_with(|_| {
            assert_eq!(Config::load(None).unwrap().mode, Mode::Production);
            Ok(())
        });
        let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/dev.toml");
        Jail::expect_with(|jail| {
            assert_eq!(Config::load(Some(&dev)).unwrap().mode, Mode::Development);
            jail.set_env("POLYPAY_MODE", "production");
            assert_eq!(Config::load(Some(&dev)).unwrap().mode, Mode::Production);
            jail.set_env("POLYPAY_MODE", "staging");
            let err = Config::load(Some(&dev)).unwrap_err().to_string();
            assert!(
                err.to_lowercase().contains("mode") && err.contains("staging"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn listener_limits_trusted_proxies_and_admin_token_are_checked_naming_their_keys() {
        for (key, value, named) in [
            ("POLYPAY_HTTP__MAX_CONNECTIONS", "0", "http.max_connections"),
            (
                "POLYPAY_HTTP__HEADER_READ_TIMEOUT_MS",
                "0",
                "http.header_read_timeout_ms",
            ),
            ("POLYPAY_CHECKOUT__MAX_STREAMS", "0", "checkout.max_streams"),
            (
                "POLYPAY_HTTP__TRUSTED_PROXIES",
                "[\"10.0.0.0/33\"]",
                "http.trusted_proxies",
            ),
            ("POLYPAY_ADMIN__TOKEN", "short", "admin.token"),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env(key, value);
                let err = Config::load(None).unwrap_err().to_string();
                assert!(err.contains(named), "{key}={value}: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = Config::load(Some(Path::new("/nonexistent/polypay.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/polypay.toml"), "{err}");
    }

    #[test]
    fn bad_database_url_and_master_key_name_their_keys() {
        Jail::expect_with(|jail| {
            jail.set_env("POLYPAY_DATABASE__URL", "mysql://x");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("database.url"), "{err}");
            jail.set_env("POLYPAY_DATABASE__URL", "sqlite://x.db");
            jail.set_env("POLYPAY_SECRETS__MASTER_KEY", "abcd");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("secrets.master_key"), "{err}");
            Ok(())
        });
    }
}
