//! The `polypay` command line (clap). Commands that print credentials (`merchant create`,
//! `merchant rotate`) write them once as JSON on stdout, for scripts; everything else is
//! for people. Logs always go to stderr so stdout stays machine-readable.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::merchant::CredentialSpec;

/// polypay: a self-hosted crypto payment server that speaks many payment APIs.
#[derive(Debug, Parser)]
#[command(name = "polypay", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file. Without it: built-in defaults and POLYPAY_* environment
    /// variables (embedded SQLite at ./data/polypay.db).
    #[arg(
        long,
        short,
        global = true,
        value_name = "PATH",
        env = "POLYPAY_CONFIG"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the public listener (plugin APIs, checkout page) and the admin
    /// listener (/healthz, /readyz, /metrics). Applies pending migrations first.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage merchants and their credentials.
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// Inspect and replay webhook deliveries.
    #[command(subcommand)]
    Webhook(crate::webhook::cli::WebhookCommand),
    /// Inspect invoices set aside because settling them failed, and retry them.
    #[command(subcommand)]
    Invoice(crate::invoice::cli::InvoiceCommand),
    /// The custodial ledger: users, balances, postings, reconciliation, adjustments.
    #[command(subcommand)]
    Ledger(crate::ledger::cli::LedgerCommand),
    /// A local payment setup in one command: a dev chain with a token and a payment
    /// contract, every dialect plugin with a demo merchant, the server, and a walkthrough.
    /// `polypay dev pay|mine|reorg` act on it while it runs.
    Dev(crate::dev::cli::DevArgs),
}

#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant and print its new credentials once, as JSON on stdout.
    Create(CreateArgs),
    /// List merchants and their credential ids (never secrets).
    List,
    /// Replace a merchant's credentials of one plugin and print the new ones once, as JSON
    /// on stdout. Other plugins' credentials of the merchant are untouched.
    Rotate {
        /// The merchant id (as shown by `merchant list`).
        id: String,
        /// Whose credentials: a merchant of a plugin holds only that plugin's (the
        /// default); an operator merchant holds a generic set (the default) and, for each
        /// plugin given here, that plugin's own set (issued on first use).
        #[arg(long)]
        plugin: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Display name of the merchant.
    #[arg(long)]
    pub name: String,
    /// The API dialect plugin this merchant belongs to; its manifest decides which
    /// credentials are issued. Without it the merchant is the operator's, served by every
    /// plugin, and gets one generic `api-key` credential; give it a plugin's own
    /// credentials with `merchant rotate ID --plugin NAME`.
    #[arg(long)]
    pub plugin: Option<String>,
    /// The merchant's settings for its plugin, a JSON object the plugin reads as the
    /// merchant's plugin data (e.g. `{"callback_url": "https://…"}`; which keys a dialect
    /// reads is in its docs). Needs `--plugin`.
    #[arg(long, requires = "plugin", value_parser = parse_plugin_data)]
    pub plugin_data: Option<serde_json::Value>,
}

/// A JSON object, for `--plugin-data`.
fn parse_plugin_data(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("must be a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

impl Cli {
    /// Runs the parsed command.
    pub async fn run(self) -> anyhow::Result<()> {
        if let Command::Dev(args) = self.command {
            if let Some(path) = &self.config {
                eprintln!(
                    "note: polypay dev writes its own config into its data directory; {} is not used",
                    path.display()
                );
            }
            return crate::dev::cli::run(args).await;
        }
        let config = Config::load(self.config.as_deref())?;
        crate::telemetry::init_logging(&config.log);
        match self.command {
            Command::Serve => {
                crate::app::Server::start(config)
                    .await?
                    .run_until_signal()
                    .await
            }
            Command::Migrate => {
                let store = crate::app::open_store(&config).await?;
                eprintln!(
                    "migrations applied to {}",
                    crate::app::redact_url(&config.database_url())
                );
                store.close().await;
                Ok(())
            }
            Command::Merchant(command) => run_merchant(config, command).await,
            Command::Webhook(command) => crate::webhook::cli::run(config, command).await,
            Command::Invoice(command) => crate::invoice::cli::run(config, command).await,
            Command::Ledger(command) => crate::ledger::cli::run(config, command).await,
            Command::Dev(_) => unreachable!("handled before the config is loaded"),
        }
    }
}

async fn run_merchant(config: Config, command: MerchantCommand) -> anyhow::Result<()> {
    let ctx = crate::app::context(config).await?;
    let mut out = std::io::stdout().lock();
    match command {
        MerchantCommand::Create(args) => {
            let specs = credential_specs(&ctx, args.plugin.as_deref()).await?;
            let created = ctx
                .merchants
                .create(
                    &args.name,
                    args.plugin.as_deref(),
                    args.plugin_data.unwrap_or_else(|| serde_json::json!({})),
                    &specs,
                )
                .await?;
            serde_json::to_writer_pretty(&mut out, &created)?;
            writeln!(out)?;
        }
        MerchantCommand::List => {
            let merchants = ctx.merchants.list().await?;
            if merchants.is_empty() {
                writeln!(
                    out,
                    "no merchants yet; create one with `polypay merchant create --name NAME`"
                )?;
            }
            for (merchant, credentials) in merchants {
                writeln!(
                    out,
                    "{}  {}  plugin={}  {}",
                    merchant.id,
                    merchant.name,
                    merchant.plugin.as_deref().unwrap_or("-"),
                    if merchant.disabled {
                        "disabled"
                    } else {
                        "active"
                    }
                )?;
                for credential in credentials {
                    let public = credential
                        .public_id
                        .map(|p| format!(" public_id={p}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "    credential {} plugin={} kind={}{}",
                        credential.id,
                        credential.plugin.as_deref().unwrap_or("-"),
                        credential.kind,
                        public
                    )?;
                }
            }
        }
        MerchantCommand::Rotate { id, plugin } => {
            let merchant = ctx
                .merchants
                .list()
                .await?
                .into_iter()
                .find(|(m, _)| m.id == id)
                .map(|(m, _)| m);
            let merchant = merchant.with_context(|| format!("merchant {id} not found"))?;
            let plugin = plugin.or(merchant.plugin);
            let specs = credential_specs(&ctx, plugin.as_deref()).await?;
            let issued = ctx.merchants.rotate(&id, plugin.as_deref(), &specs).await?;
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({ "merchant_id": id, "credentials": issued }),
            )?;
            writeln!(out)?;
        }
    }
    ctx.store.close().await;
    Ok(())
}

/// The credentials a merchant of `plugin` gets: what the plugin's manifest declares, so
/// loading it is needed; the host default for merchants of no plugin.
pub(crate) async fn credential_specs(
    ctx: &crate::app::AppContext,
    plugin: Option<&str>,
) -> anyhow::Result<Vec<CredentialSpec>> {
    let Some(plugin) = plugin else {
        return Ok(CredentialSpec::default_set());
    };
    let Some(config) = ctx.config.plugins.iter().find(|p| p.name == plugin) else {
        anyhow::bail!(
            "plugin `{plugin}` is not mounted: add it under [[plugins]] in the config first"
        );
    };
    // Only its manifest is needed: load this one plugin, without storage.
    let services = crate::plugin::PluginServices::new(ctx.config.public_base_url.clone());
    let runtime = crate::plugin::PluginRuntime::load(std::slice::from_ref(config), services)
        .await
        .map_err(|e| anyhow::anyhow!("plugins: {e}"))?;
    runtime
        .operator_credentials(plugin)
        .with_context(|| format!("plugin `{plugin}` did not load"))
}
