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
];

/// The whole configuration of one polypay process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `production` (default) or `development`. Development tooling — the `[dev]`
    /// section, the checkout page's dev wallet — only runs in development.
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
    /// Networks the chain listeners follow (`[[chains]]`, see [`crate::chain`]).
    pub chains: Vec<crate::chain::ChainConfig>,
    /// API dialect plugins to mount (`[[plugins]]`, see [`crate::plugin::PluginConfig`]).
    pub plugins: Vec<crate::plugin::PluginConfig>,
    /// Callback delivery (`[webhooks]`, see [`crate::webhook`]).
    pub webhooks: crate::webhook::WebhookConfig,
    /// Development tooling (`[dev]`); only allowed with `mode = "development"`.
    pub dev: DevConfig,
}

/// What kind of deployment a process is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Production,
    Development,
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
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// 32-byte master key as 64 hex characters. Encrypts merchant secrets at rest.
    pub master_key: Option<String>,
    /// File holding the hex master key. Used when `master_key` is unset. When neither is
    /// set, `<data_dir>/master.key` is used and generated on first start (dev only: a
    /// warning says so).
    pub master_key_file: Option<PathBuf>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::default(),
            data_dir: PathBuf::from("./data"),
            public_base_url: "http://127.0.0.1:8080".into(),
            listen: ListenConfig::default(),
            database: DatabaseConfig::default(),
            secrets: SecretsConfig::default(),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            chains: Vec::new(),
            plugins: Vec::new(),
            webhooks: crate::webhook::WebhookConfig::default(),
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
            && let Err(message) = crate::merchant::MasterKey::from_hex(key)
        {
            return Err(ConfigError::Value {
                key: "secrets.master_key",
                origin: origin(),
                message,
            });
        }
        if self.http.max_body_bytes == 0 {
            return Err(ConfigError::Value {
                key: "http.max_body_bytes",
                origin: origin(),
                message: "must be greater than zero".into(),
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
                    message,
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
