//! The `polypay dev` command line: the start flags, and the subcommands that act on a
//! running dev setup (`pay`, `mine`, `reorg`). The subcommands read the setup's generated
//! config (`<data dir>/polypay.toml`) to find the database, the dev chain and the wallet.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::rpc::AnvilRpc;
use super::setup::{CONFIG_FILE, NETWORK, SetupError, TRON_NETWORK};
use super::tron_node::control::DevTronClient;
use super::wallet::{self, DevNode, PayAmount, PayRequest};
use crate::config::Config;
use crate::http::checkout::CheckoutView;
use crate::invoice::Amount;
use crate::store::utc_text;

/// Where a dev setup lives unless `--data-dir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "data/dev";

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the dev setup keeps its chain, database, config and demo merchants.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub start: StartArgs,
    #[command(subcommand)]
    pub command: Option<DevCommand>,
}

/// How `polypay dev` starts.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Delete the data directory's dev setup first and start over.
    #[arg(long)]
    pub reset: bool,
    /// Port of the public listener (plugin APIs, checkout pages).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the admin listener.
    #[arg(long, default_value_t = 9090)]
    pub admin_port: u16,
    /// Port of the dev chain's JSON-RPC.
    #[arg(long, default_value_t = 8545)]
    pub node_port: u16,
    /// Port of the dev TRON node's HTTP API (java-tron's paths).
    #[arg(long, default_value_t = 8091)]
    pub tron_port: u16,
    /// Port of the demo callback inbox, which prints the callbacks it gets.
    #[arg(long, default_value_t = 8090)]
    pub callback_port: u16,
    /// Send demo invoices' callbacks to URL/<plugin> instead of the inbox.
    #[arg(long, value_name = "URL")]
    pub notify_url: Option<String>,
    /// Blocks deep, counting the paying block, before an invoice is paid.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub confirmations: u32,
    /// Also mine a block every SECS seconds (default: a block per transaction, and on
    /// `polypay dev mine`). The chain's state file grows with every block.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub block_time: Option<u64>,
    /// The dialect plugin crates (each with a demo.toml).
    #[arg(long, value_name = "DIR", default_value = "plugins")]
    pub plugins: PathBuf,
    /// Where the plugins' components are built (`cargo build -p polypay-plugin-artifacts`).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "target/wasm-plugins/wasm32-wasip2/release"
    )]
    pub plugin_wasm_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Pay an invoice from the dev wallet, as a payer's wallet would: approve and call the
    /// payment contract, or transfer the token or the native coin to the invoice's address.
    Pay(PayArgs),
    /// Mine blocks on the dev chain (confirmations for what was paid).
    Mine {
        /// How many.
        #[arg(default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        blocks: u64,
        /// Which dev chain: `anvil` (EVM) or `tron-dev`.
        #[arg(long, default_value = NETWORK)]
        network: String,
    },
    /// Replace the newest DEPTH blocks of the dev chain with empty ones: their transactions
    /// are gone, as in a chain reorganisation, and the server rolls back what they paid.
    Reorg {
        #[arg(value_parser = clap::value_parser!(u64).range(1..=64))]
        depth: u64,
        /// Which dev chain: `anvil` (EVM) or `tron-dev`.
        #[arg(long, default_value = NETWORK)]
        network: String,
    },
}

#[derive(Debug, Args)]
pub struct PayArgs {
    /// The invoice id, or its checkout page URL (…/pay/<id>).
    pub invoice: String,
    /// Pay this much instead of what is due: a decimal in the invoice's asset, e.g. 2.5.
    #[arg(long, conflicts_with_all = ["underpay", "overpay"])]
    pub amount: Option<String>,
    /// Pay half of what is due.
    #[arg(long, conflicts_with = "overpay")]
    pub underpay: bool,
    /// Pay a tenth more than what is due.
    #[arg(long)]
    pub overpay: bool,
    /// Mine the payment with a block time after the invoice's deadline.
    #[arg(long)]
    pub late: bool,
}

/// Runs `polypay dev [COMMAND]`.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    match args.command {
        None => super::start::run(&args.data_dir, &args.start).await,
        Some(command) => {
            let config = load_config(&args.data_dir)?;
            crate::telemetry::init_logging(&crate::config::LogConfig {
                filter: "warn".into(),
                ..config.log.clone()
            });
            match command {
                DevCommand::Pay(pay_args) => pay(&config, &pay_args).await,
                DevCommand::Mine { blocks, network } => match network.as_str() {
                    TRON_NETWORK => mine_tron(&config, blocks).await,
                    _ => mine(&config, &network, blocks).await,
                },
                DevCommand::Reorg { depth, network } => match network.as_str() {
                    TRON_NETWORK => reorg_tron(&config, depth).await,
                    _ => reorg(&config, &network, depth).await,
                },
            }
        }
    }
}

/// The config a dev setup wrote.
fn load_config(data_dir: &Path) -> anyhow::Result<Config> {
    let path = data_dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(SetupError::Missing {
            dir: data_dir.to_path_buf(),
        }
        .into());
    }
    Ok(Config::load(Some(&path))?)
}

/// The URL of the dev config's chain `network`.
fn chain_url<'a>(config: &'a Config, network: &str) -> anyhow::Result<&'a str> {
    config
        .chains
        .iter()
        .find(|c| c.name == network)
        .map(|c| c.rpc_url.as_str())
        .with_context(|| {
            let names: Vec<&str> = config.chains.iter().map(|c| c.name.as_str()).collect();
            format!(
                "the dev config has no `{network}` chain (it has: {})",
                names.join(", ")
            )
        })
}

/// The EVM dev chain `network`'s client, checked to answer.
async fn dev_chain(config: &Config, network: &str) -> anyhow::Result<AnvilRpc> {
    let url = chain_url(config, network)?;
    let rpc = AnvilRpc::new(url)?;
    rpc.block_number().await.with_context(|| {
        format!("the dev chain does not answer at {url}: is `polypay dev` running?")
    })?;
    Ok(rpc)
}

/// The invoice id in `text`: an id, or a URL whose path ends in `/pay/<id>`.
pub fn invoice_id(text: &str) -> &str {
    let text = text.trim();
    let Some((_, rest)) = text.rsplit_once("/pay/") else {
        return text;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

async fn pay(config: &Config, args: &PayArgs) -> anyhow::Result<()> {
    let id = invoice_id(&args.invoice);
    let store = crate::app::open_store(config).await?;
    let invoice = store.invoice(id).await;
    store.close().await;
    let invoice = invoice?.with_context(|| format!("there is no invoice `{id}`"))?;
    let view = CheckoutView::of(&invoice, &config.chains, crate::store::now_ms());
    let node = DevNode::of(config, &invoice.chain)?;
    let amount = match (&args.amount, args.underpay, args.overpay) {
        (Some(text), _, _) => PayAmount::Exact(
            Amount::parse_decimal(text, invoice.decimals)
                .with_context(|| format!("--amount {text}"))?,
        ),
        (None, true, _) => PayAmount::Underpay,
        (None, _, true) => PayAmount::Overpay,
        (None, false, false) => PayAmount::Remaining,
    };
    let paid = wallet::pay(
        &node,
        &view,
        PayRequest {
            amount,
            late: args.late,
        },
    )
    .await?;

    let symbol = &invoice.asset;
    println!(
        "paid {} {symbol} to invoice {id} from the dev wallet {}",
        paid.amount.format_decimal(invoice.decimals),
        match &node {
            DevNode::Evm { wallet, .. } => wallet.to_string(),
            DevNode::Tron(_) => super::tron_node::control::dev_wallet().to_base58(),
        }
    );
    if let Some(minted) = paid.minted {
        println!(
            "  minted {} {symbol} to the dev wallet first (it held too little)",
            minted.format_decimal(invoice.decimals)
        );
    }
    if let Some(approval) = &paid.approval {
        println!("  approve  {}  block {}", approval.tx, approval.block);
    }
    println!(
        "  payment  {}  block {}  time {}",
        paid.payment.tx,
        paid.payment.block,
        utc_text(paid.block_timestamp as i64 * 1000)
    );
    let block_ms = paid.block_timestamp as i64 * 1000;
    if block_ms >= invoice.expires_at {
        println!(
            "  the block is {} s past the invoice's deadline ({}): the payment is late",
            (block_ms - invoice.expires_at) / 1000,
            utc_text(invoice.expires_at)
        );
    }
    let ahead_ms = block_ms - crate::store::now_ms();
    if args.late && ahead_ms > 1_000 {
        println!(
            "  the dev chain's clock now runs {} s ahead of yours: invoices due before {} count as late until then",
            ahead_ms / 1000,
            utc_text(block_ms)
        );
    }
    let confirmations = invoice.confirmations_required;
    if confirmations > 1 {
        println!(
            "the invoice needs {confirmations} confirmations: `polypay dev mine {}` adds the missing blocks",
            confirmations - 1
        );
    }
    Ok(())
}

async fn mine(config: &Config, network: &str, blocks: u64) -> anyhow::Result<()> {
    let rpc = dev_chain(config, network).await?;
    rpc.mine(blocks).await?;
    println!(
        "mined {blocks} block{}: the dev chain is at block {}",
        if blocks == 1 { "" } else { "s" },
        rpc.block_number().await?
    );
    Ok(())
}

async fn reorg(config: &Config, network: &str, depth: u64) -> anyhow::Result<()> {
    let rpc = dev_chain(config, network).await?;
    let head = rpc.block_number().await?;
    if depth >= head {
        anyhow::bail!(
            "the dev chain is at block {head}: a reorg can replace at most {} blocks",
            head.saturating_sub(1)
        );
    }
    let first = head - depth + 1;
    let mut gone = Vec::new();
    for number in first..=head {
        gone.extend(rpc.block_transactions(number).await?);
    }
    rpc.reorg(depth).await?;
    println!("replaced blocks {first}..={head} with empty ones");
    if gone.is_empty() {
        println!("they held no transactions");
    } else {
        println!("these transactions are gone:");
        for tx in gone {
            println!("  {tx}");
        }
        println!("the server rolls back what they paid when it sees the reorg");
    }
    Ok(())
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn mine_tron(config: &Config, blocks: u64) -> anyhow::Result<()> {
    let client = DevTronClient::new(chain_url(config, TRON_NETWORK)?);
    let head = client.mine(blocks).await?;
    println!(
        "mined {blocks} block{} on {TRON_NETWORK}: it is at block {head}",
        plural(blocks)
    );
    Ok(())
}

async fn reorg_tron(config: &Config, depth: u64) -> anyhow::Result<()> {
    let client = DevTronClient::new(chain_url(config, TRON_NETWORK)?);
    let reorged = client.reorg(depth).await?;
    let first = reorged.head - depth + 1;
    println!(
        "replaced blocks {first}..={} of {TRON_NETWORK} with empty ones",
        reorged.head
    );
    if reorged.orphaned.is_empty() {
        println!("they held no transactions");
    } else {
        println!("these transactions are gone:");
        for tx in &reorged.orphaned {
            println!("  {tx}");
        }
        println!("the server rolls back what they paid when it sees the reorg");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_is_an_id_or_a_checkout_url() {
        let id = "6f1e9a8e-3f7b-4c1d-9a55-0c2f4a8b9d10";
        assert_eq!(invoice_id(id), id);
        assert_eq!(invoice_id(&format!(" {id}\n")), id);
        assert_eq!(invoice_id(&format!("http://127.0.0.1:8080/pay/{id}")), id);
        assert_eq!(
            invoice_id(&format!("https://pay.example/shop/pay/{id}/?lang=zh#top")),
            id
        );
    }
}
