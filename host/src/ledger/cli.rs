//! `polypay ledger ...`: the operator's view of the custodial ledger, straight from the
//! database (the server need not run). Users are created for a plugin (`--plugin`), as
//! a merchant's payee with `--merchant`. `--json` prints machine-readable output.
//!
//! Adjustments are the only way the operator moves money: a credit or debit of a user's
//! available balance posted against the plugin's external or outflow account (see the module docs
//! of `crate::ledger`, "Withdrawals"), so reconciliation still balances.

use std::io::Write;

use clap::Subcommand;

use super::{Contact, Ledger, NewUser};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Create a user of a plugin and print it as JSON.
    UserCreate {
        #[arg(long)]
        plugin: String,
        /// Make the user this merchant's payee.
        #[arg(long)]
        merchant: Option<String>,
        /// Country calling code, with --mobile.
        #[arg(long)]
        national_code: Option<String>,
        #[arg(long)]
        mobile: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users (of one plugin, or all).
    Users {
        #[arg(long)]
        plugin: Option<String>,
    },
    /// A user's balances per (chain, asset), in base units.
    Balances {
        #[arg(long)]
        plugin: String,
        user: i64,
    },
    /// A user's postings, newest first (without a user: the plugin's external accounts).
    Postings {
        #[arg(long)]
        plugin: String,
        user: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Per (plugin, chain, asset): what came in and went out against what users hold,
    /// and whether every entry balances and every cached balance equals its postings.
    /// Exits non-zero when anything does not balance.
    Reconcile {
        #[arg(long)]
        json: bool,
    },
    /// Credit (or with --debit, debit) a user's available balance against the plugin's
    /// external account: the operator's deposit or withdrawal outside the chain.
    Adjust {
        #[arg(long)]
        plugin: String,
        user: i64,
        #[arg(long)]
        chain: String,
        #[arg(long)]
        asset: String,
        /// In the asset's units, e.g. "12.5".
        amount: String,
        #[arg(long)]
        debit: bool,
    },
}

/// Runs a `polypay ledger` command.
pub async fn run(config: Config, command: LedgerCommand) -> anyhow::Result<()> {
    let store = crate::app::open_store(&config).await?;
    let ledger = Ledger::new(store.clone());
    let result = run_with(&config, &ledger, command).await;
    store.close().await;
    result
}

async fn run_with(config: &Config, ledger: &Ledger, command: LedgerCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        LedgerCommand::UserCreate {
            plugin,
            merchant,
            national_code,
            mobile,
            email,
        } => {
            let user = ledger
                .create_user(
                    &plugin,
                    NewUser {
                        merchant_id: merchant,
                        contact: Contact {
                            national_code,
                            mobile,
                            email,
                        },
                        plugin_data: None,
                    },
                )
                .await?;
            serde_json::to_writer_pretty(&mut out, &user)?;
        }
        LedgerCommand::Users { plugin } => {
            serde_json::to_writer_pretty(&mut out, &ledger.users(plugin.as_deref()).await?)?;
        }
        LedgerCommand::Balances { plugin, user } => {
            serde_json::to_writer_pretty(&mut out, &ledger.balances(&plugin, user).await?)?;
        }
        LedgerCommand::Postings {
            plugin,
            user,
            limit,
        } => {
            serde_json::to_writer_pretty(&mut out, &ledger.postings(&plugin, user, limit).await?)?;
        }
        LedgerCommand::Reconcile { json } => {
            let rows = ledger.reconcile().await?;
            let mismatches = ledger.recompute().await?;
            if json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({ "assets": rows, "mismatches": mismatches }),
                )?;
            } else {
                for r in &rows {
                    writeln!(
                        out,
                        "{}  {}/{}  in={}  out={}  held={}  debt={}  {}",
                        r.plugin,
                        r.chain,
                        r.asset,
                        r.external,
                        r.outflow,
                        r.held,
                        r.debt,
                        if r.balanced {
                            "balanced"
                        } else {
                            "NOT BALANCED"
                        }
                    )?;
                }
                for m in &mismatches {
                    writeln!(
                        out,
                        "account {}: cached {} but postings say {:?}",
                        m.account_id, m.cached, m.from_postings
                    )?;
                }
            }
            writeln!(out)?;
            if !mismatches.is_empty() || rows.iter().any(|r| !r.balanced) {
                anyhow::bail!("the ledger does not balance");
            }
            return Ok(());
        }
        LedgerCommand::Adjust {
            plugin,
            user,
            chain,
            asset,
            amount,
            debit,
        } => {
            let decimals = config
                .chains
                .iter()
                .find(|c| c.name == chain)
                .and_then(|c| c.asset(&asset))
                .map(|a| a.decimals)
                .ok_or_else(|| {
                    anyhow::anyhow!("no asset {asset} on chain {chain} in the config")
                })?;
            let units = super::parse_amount(&amount, decimals)?;
            let balance = ledger
                .adjust(&plugin, user, &chain, &asset, units, !debit)
                .await?;
            serde_json::to_writer_pretty(&mut out, &balance)?;
        }
    }
    writeln!(out)?;
    Ok(())
}
