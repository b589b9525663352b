//! `polypay webhook list|show|replay`: the operator's view of callback delivery, straight
//! from the database (the server need not run; a running server picks a replay up on its
//! next poll). `--json` prints machine-readable output.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::store::outbox::{self, Delivery, DeliveryFilter, DeliveryState, ReplayError};
use crate::store::{now_ms, utc_text as timestamp};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// List deliveries (outbox events), newest first.
    List(ListArgs),
    /// Show one delivery with its payload and every attempt.
    Show {
        /// The delivery (event) id, as listed.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send a delivered or dead-lettered event again, now, with a fresh retry schedule.
    Replay {
        /// The delivery (event) id, as listed.
        id: i64,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this merchant's deliveries.
    #[arg(long)]
    pub merchant: Option<String>,
    /// Only this invoice's deliveries.
    #[arg(long)]
    pub invoice: Option<String>,
    /// Only this plugin's deliveries.
    #[arg(long)]
    pub plugin: Option<String>,
    /// Only deliveries in this state: pending, delivering, delivered, dead, skipped.
    #[arg(long)]
    pub state: Option<String>,
    /// Only deliveries with a smaller id (the next page).
    #[arg(long)]
    pub before: Option<i64>,
    /// At most this many (1..=1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `polypay webhook` command.
pub async fn run(config: Config, command: WebhookCommand) -> anyhow::Result<()> {
    let store = crate::app::open_store(&config).await?;
    let result = execute(&store, command, &mut std::io::stdout().lock()).await;
    store.close().await;
    result
}

async fn execute(
    store: &crate::store::Store,
    command: WebhookCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut conn = store.pool().acquire().await?;
    match command {
        WebhookCommand::List(args) => {
            anyhow::ensure!(
                (1..=1_000).contains(&args.limit),
                "--limit must be between 1 and 1000"
            );
            let filter = DeliveryFilter {
                merchant_id: args.merchant,
                invoice_id: args.invoice,
                plugin: args.plugin,
                state: DeliveryState::parse_filter(args.state.as_deref())
                    .map_err(anyhow::Error::msg)?,
                before_id: args.before,
                limit: args.limit,
            };
            let deliveries = outbox::list(&mut conn, &filter).await?;
            if args.json {
                serde_json::to_writer_pretty(&mut *out, &deliveries)?;
                writeln!(out)?;
            } else if deliveries.is_empty() {
                writeln!(out, "no deliveries match")?;
            } else {
                writeln!(
                    out,
                    "{:>8}  {:<10}  {:>8}  {:<24}  {:<20}  {:<36}  LAST ERROR",
                    "ID", "STATE", "ATTEMPTS", "KIND", "CREATED", "INVOICE"
                )?;
                for d in &deliveries {
                    writeln!(
                        out,
                        "{:>8}  {:<10}  {:>8}  {:<24}  {:<20}  {:<36}  {}",
                        d.id,
                        d.state.as_str(),
                        d.attempts,
                        d.kind,
                        timestamp(d.created_at),
                        d.invoice_id.as_deref().unwrap_or("-"),
                        d.last_error.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
        WebhookCommand::Show { id, json } => {
            let detail = outbox::detail(&mut conn, id)
                .await?
                .with_context(|| format!("webhook event {id} not found"))?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &detail)?;
                writeln!(out)?;
            } else {
                describe(out, &detail.delivery)?;
                writeln!(out, "attempts:")?;
                if detail.attempts.is_empty() {
                    writeln!(out, "  none yet")?;
                }
                for a in &detail.attempts {
                    let status = a
                        .status_code
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into());
                    let latency = a
                        .latency_ms
                        .map(|l| format!("{l} ms"))
                        .unwrap_or_else(|| "-".into());
                    writeln!(
                        out,
                        "  #{:<3} {}  {:<13} status {:<4} {:>8}  {}",
                        a.attempt,
                        timestamp(a.started_at),
                        a.outcome.as_str(),
                        status,
                        latency,
                        a.url
                    )?;
                    if let Some(error) = &a.error {
                        writeln!(out, "        error: {error}")?;
                    }
                    if let Some(body) = a.response_body.as_deref().filter(|b| !b.is_empty()) {
                        let more = if a.response_truncated {
                            " …(truncated)"
                        } else {
                            ""
                        };
                        writeln!(
                            out,
                            "        response: {}{more}",
                            body.chars().take(200).collect::<String>()
                        )?;
                    }
                }
            }
        }
        WebhookCommand::Replay { id } => match outbox::replay(store, id, now_ms()).await {
            Ok(delivery) => writeln!(
                out,
                "webhook event {} replayed: {}, due now (replay #{})",
                delivery.id, delivery.state, delivery.replays
            )?,
            Err(e @ (ReplayError::NotFound(_) | ReplayError::NotReplayable { .. })) => {
                anyhow::bail!(e)
            }
            Err(ReplayError::Store(e)) => return Err(e.into()),
        },
    }
    Ok(())
}

fn describe(out: &mut impl Write, d: &Delivery) -> std::io::Result<()> {
    writeln!(out, "webhook event {}  {}", d.id, d.kind)?;
    writeln!(out, "  state:      {}", d.state)?;
    writeln!(
        out,
        "  invoice:    {}",
        d.invoice_id.as_deref().unwrap_or("- (test event)")
    )?;
    writeln!(out, "  merchant:   {}", d.merchant_id)?;
    writeln!(out, "  plugin:     {}", d.plugin)?;
    writeln!(out, "  created:    {}", timestamp(d.created_at))?;
    writeln!(out, "  attempts:   {} (replays: {})", d.attempts, d.replays)?;
    if matches!(d.state, outbox::DeliveryState::Pending) {
        writeln!(out, "  next:       {}", timestamp(d.next_attempt_at))?;
    }
    if let Some(at) = d.delivered_at {
        writeln!(out, "  delivered:  {}", timestamp(at))?;
    }
    if let Some(error) = &d.last_error {
        writeln!(out, "  last error: {error}")?;
    }
    Ok(())
}
