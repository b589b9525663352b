//! `polypay invoice quarantined|retry`: the operator's view of invoices set aside because
//! settling them failed (see `crate::invoice::service`, "Quarantine"), straight from the
//! database (the server need not run). `--json` prints machine-readable output.

use std::io::Write;

use clap::Subcommand;

use crate::config::Config;
use crate::invoice::{InvoiceError, InvoiceService};

#[derive(Debug, Subcommand)]
pub enum InvoiceCommand {
    /// List the invoices set aside, with why.
    Quarantined {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Take a quarantined invoice back and settle it from its stored payments (after
    /// repairing what made it fail); it stays quarantined if settling fails again.
    Retry {
        /// The invoice id, as listed.
        id: String,
    },
}

/// Runs a `polypay invoice` command.
pub async fn run(config: Config, command: InvoiceCommand) -> anyhow::Result<()> {
    let store = crate::app::open_store(&config).await?;
    let service = InvoiceService::new(store.clone());
    let mut out = std::io::stdout().lock();
    let result = match command {
        InvoiceCommand::Quarantined { json } => {
            let mut conn = store.pool().acquire().await?;
            let listed = crate::store::invoices::quarantined(&mut conn).await?;
            if json {
                serde_json::to_writer_pretty(&mut out, &listed)?;
                writeln!(out)?;
            } else if listed.is_empty() {
                writeln!(out, "no invoice is quarantined")?;
            } else {
                for q in &listed {
                    writeln!(
                        out,
                        "{}  chain={}  plugin={}  status={}  since={}\n    {}",
                        q.id, q.chain, q.plugin, q.status, q.quarantined_at, q.reason
                    )?;
                }
            }
            Ok(())
        }
        InvoiceCommand::Retry { id } => match service.retry_quarantined(&id).await {
            Ok(invoice) => {
                writeln!(out, "invoice {id} settled: {}", invoice.status)?;
                Ok(())
            }
            Err(InvoiceError::NotFound(_)) => {
                Err(anyhow::anyhow!("invoice {id} is not quarantined"))
            }
            Err(e) => Err(anyhow::anyhow!(
                "invoice {id} still fails to settle and stays quarantined: {e}"
            )),
        },
    };
    store.close().await;
    result
}
