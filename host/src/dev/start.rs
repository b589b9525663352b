//! `polypay dev` without a subcommand: starts the dev chain, deploys (first start) or
//! checks (later starts) the contracts, writes the config, creates the demo merchants,
//! runs the server and the callback inbox, prints the walkthrough, and on Ctrl-C stops
//! the server and then the chain (which writes its state for the next start).
//!
//! Every check that can fail without side effects runs first (ports, anvil, plugins),
//! so a refusal leaves nothing running and nothing written.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::cli::StartArgs;
use super::contracts::{Contracts, TOKEN_DECIMALS, TOKEN_SYMBOL};
use super::demo::{self, DemoChain, DemoSpec, Dialect, INVOICE_VARIABLE, Placeholders};
use super::inbox::{self, Inbox};
use super::node::{self, AnvilNode, AnvilOptions};
use super::setup::{
    self, CHAIN_DIR, CONFIG_FILE, DemoMerchant, DevAccounts, DevOptions, DevState, Mount,
    STATE_FILE, TRON_JOURNAL, TRON_NETWORK,
};
use super::tron_node::control::{dev_usdt, dev_wallet};
use super::tron_node::{SimChain, SimNode};
use crate::app::ShutdownSignals;
use crate::config::Config;
use crate::invoice::Amount;

/// The walkthrough's last line.
pub const WALKTHROUGH_END: &str =
    "Callbacks to the demo merchants are printed below as they arrive.";
/// Test tokens the dev wallet gets at the first start.
const WALLET_FUNDING: &str = "1000000";
/// The file whose lock says a `polypay dev` runs on a data directory.
const LOCK_FILE: &str = ".lock";

/// Progress lines, on stdout with the walkthrough.
fn progress(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "==> {}", line.as_ref());
    let _ = out.flush();
}

/// A dialect that takes part in the demo.
struct Demo<'a> {
    dialect: &'a Dialect,
    spec: &'a DemoSpec,
}

/// A dialect plugin left out of the demo, and why.
struct Skipped {
    name: String,
    why: String,
}

/// Runs `polypay dev`. `data_dir` is as the user gave it (for messages).
pub async fn run(data_dir: &Path, args: &StartArgs) -> anyhow::Result<()> {
    // From here on Ctrl-C stops the setup cleanly, even while it starts.
    let mut signals = ShutdownSignals::install().context("installing signal handlers")?;
    let shown_dir = data_dir.display().to_string();
    let data_dir =
        std::path::absolute(data_dir).with_context(|| format!("data directory {shown_dir}"))?;

    // Checks without side effects first.
    if let Some(url) = &args.notify_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!("--notify-url {url}: not an http(s) URL");
    }
    check_ports(args)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let anvil = node::anvil_binary(&cwd)?;
    let wasm_dir = std::path::absolute(&args.plugin_wasm_dir)?;
    let dialects = demo::discover(&args.plugins, &wasm_dir).with_context(|| {
        format!(
            "no dialect plugins under {}: run polypay dev from the repository root, or pass --plugins DIR",
            args.plugins.display()
        )
    })?;
    let (demos, skipped) = select_demos(&dialects)?;

    if args.reset {
        reset(&data_dir, &shown_dir)?;
    }
    std::fs::create_dir_all(data_dir.join(CHAIN_DIR))
        .with_context(|| format!("creating {shown_dir}"))?;
    let _lock = lock(&data_dir, &shown_dir)?;

    progress(format!(
        "starting the dev chain: anvil on http://127.0.0.1:{} (chain id {})",
        args.node_port,
        setup::CHAIN_ID
    ));
    let chain_dir = data_dir.join(CHAIN_DIR);
    let starting = AnvilNode::start(AnvilOptions {
        state: Some(chain_dir.join("state.json")),
        block_time_secs: args.block_time,
        ..AnvilOptions::new(
            anvil,
            args.node_port,
            setup::CHAIN_ID,
            chain_dir.join("anvil.log"),
        )
    });
    let mut node = tokio::select! {
        node = starting => node.map_err(|e| match e {
            node::NodeError::PortTaken { port } => anyhow::anyhow!(
                "port {port} (the dev chain) is already in use: stop what listens there, or choose another with --node-port"
            ),
            other => other.into(),
        })?,
        // Dropping the start kills a node that was spawned.
        _ = signals.recv() => {
            println!("interrupted while starting; nothing runs.");
            return Ok(());
        }
    };
    let tron = match start_tron(&data_dir, args).await {
        Ok(tron) => tron,
        Err(e) => {
            node.stop();
            return Err(e);
        }
    };
    let prepared = tokio::select! {
        prepared = prepare(&node, &data_dir, &shown_dir, args, &demos, &skipped) => Some(prepared),
        _ = signals.recv() => None,
    };
    let result = match prepared {
        Some(Ok(prepared)) => {
            print!("{}", prepared.walkthrough);
            let _ = std::io::stdout().flush();
            prepared.server.run_until(signals).await
        }
        Some(Err(e)) => Err(e),
        None => {
            progress("interrupted while starting");
            Ok(())
        }
    };
    progress("stopping the dev chain (it writes its state for the next start)");
    node.stop();
    drop(tron);
    result?;
    println!(
        "stopped. Everything is kept in {shown_dir}: run the same command to resume, add --reset to start over."
    );
    Ok(())
}

/// Starts the dev TRON node on its journal (a second start resumes the same chain).
async fn start_tron(data_dir: &Path, args: &StartArgs) -> anyhow::Result<SimNode> {
    let journal = data_dir.join(TRON_JOURNAL);
    let chain = SimChain::open(&journal)?;
    // Blocks are final as soon as they are deep enough (`--confirmations`), as on the
    // EVM dev chain: the node serves its head as solidified.
    if chain.solidified_lag() != 0 {
        chain.set_solidified_lag(0);
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.tron_port));
    let node = SimNode::serve_dev(chain, addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "port {} (the dev TRON node) is already in use: stop what listens there, or choose another with --tron-port",
                args.tron_port
            )
        } else {
            anyhow::Error::new(e).context("starting the dev TRON node")
        }
    })?;
    progress(format!(
        "started the dev TRON node: {} (java-tron HTTP API, network \"{TRON_NETWORK}\", block {})",
        node.url(),
        node.chain.head()
    ));
    Ok(node)
}

/// A setup ready to serve.
struct Prepared {
    server: crate::app::Server,
    /// Prints the demo callbacks while it lives.
    _inbox: Inbox,
    walkthrough: String,
}

/// Everything after the node is up and before serving, so that the caller stops the node
/// however this ends.
async fn prepare(
    node: &AnvilNode,
    data_dir: &Path,
    shown_dir: &str,
    args: &StartArgs,
    demos: &[Demo<'_>],
    skipped: &[Skipped],
) -> anyhow::Result<Prepared> {
    let rpc = node.rpc().clone();
    let mut state = match DevState::load(data_dir)? {
        Some(state) => {
            if !state.contracts().are_deployed(&rpc).await? {
                bail!(
                    "the dev chain in {shown_dir}/{CHAIN_DIR} does not hold the contracts that {shown_dir}/{STATE_FILE} records \
                     (its state was lost or is from another setup): start over with --reset"
                );
            }
            progress(format!(
                "resumed the dev chain at block {}; USDT {}, payment contract {}",
                rpc.block_number().await?,
                state.token,
                state.payment_contract
            ));
            state
        }
        None => first_start(&rpc).await?,
    };
    state.save(data_dir)?;

    let options = DevOptions {
        data_dir: data_dir.to_path_buf(),
        public_port: args.port,
        admin_port: args.admin_port,
        node_port: args.node_port,
        tron_port: args.tron_port,
        callback_port: args.callback_port,
        confirmations: args.confirmations,
        block_time_secs: args.block_time,
    };
    let notify_base = args
        .notify_url
        .clone()
        .unwrap_or_else(|| format!("{}/callbacks", options.callback_url()));
    let config_path = data_dir.join(CONFIG_FILE);
    let mut config = write_config(&config_path, &options, &state, demos, &notify_base)?;
    crate::telemetry::init_logging(&config.log);

    let names: Vec<&str> = demos.iter().map(|d| d.dialect.name.as_str()).collect();
    progress(format!("mounting dialect plugins: {}", names.join(", ")));
    let placeholders = |demo: &Demo<'_>| {
        chain_placeholders(
            &options,
            &state,
            demo.spec,
            &demo.dialect.name,
            &notify_base,
        )
    };
    let merchant_data = demos
        .iter()
        .map(|demo| {
            placeholders(demo)
                .render_json(&demo.spec.merchant_data)
                .map_err(|placeholder| demo::DemoError::UnknownPlaceholder {
                    path: demo.dialect.dir.join(demo::DEMO_FILE),
                    field: "merchant_data".into(),
                    name: placeholder.0,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if create_merchants(&config, &mut state, demos, &merchant_data).await? {
        state.save(data_dir)?;
        // Default merchants name the merchants just created.
        config = write_config(&config_path, &options, &state, demos, &notify_base)?;
    }
    // Rendered before anything serves, so a bad demo declaration stops the start.
    let walkthrough = walkthrough(&options, &state, demos, skipped, &notify_base, shown_dir)?;

    progress(format!(
        "starting polypay: public {}, admin {}",
        options.public_url(),
        options.admin_url()
    ));
    let inbox = Inbox::start(args.callback_port).await.with_context(|| {
        format!(
            "binding the demo callback inbox on port {}",
            args.callback_port
        )
    })?;
    Ok(Prepared {
        server: crate::app::Server::start(config).await?,
        _inbox: inbox,
        walkthrough,
    })
}

/// Deploys the contracts and funds the dev wallet.
async fn first_start(rpc: &super::rpc::AnvilRpc) -> anyhow::Result<DevState> {
    let accounts = DevAccounts::from_node(&rpc.accounts().await?)
        .context("the dev chain has fewer than three development accounts")?;
    progress("deploying the test token (USDT, 6 decimals) and the payment contract");
    let contracts = Contracts::deploy(rpc, accounts.deployer).await?;
    let funding = Amount::parse_decimal(WALLET_FUNDING, TOKEN_DECIMALS)
        .expect("the funding amount is a valid decimal");
    contracts
        .mint(rpc, accounts.deployer, accounts.wallet, funding.as_u256())
        .await?;
    let head = rpc.block_number().await?;
    progress(format!(
        "deployed USDT {}, payment contract {}; the dev wallet {} holds {WALLET_FUNDING} USDT",
        contracts.token, contracts.payment_contract, accounts.wallet
    ));
    Ok(DevState::new(accounts, contracts, head + 1))
}

/// The dialects that take part, and those that do not with the reason.
fn select_demos(dialects: &[Dialect]) -> anyhow::Result<(Vec<Demo<'_>>, Vec<Skipped>)> {
    let mut demos = Vec::new();
    let mut skipped = Vec::new();
    for dialect in dialects {
        let Some(spec) = &dialect.demo else {
            skipped.push(Skipped {
                name: dialect.name.clone(),
                why: format!("it has no {}", demo::DEMO_FILE),
            });
            continue;
        };
        if !dialect.wasm.is_file() {
            bail!(
                "plugin `{}`: its component {} is not built: run `cargo build -p polypay-plugin-artifacts` \
                 (scripts/run-dev.sh does), or pass --plugin-wasm-dir",
                dialect.name,
                dialect.wasm.display()
            );
        }
        demos.push(Demo { dialect, spec });
    }
    if demos.is_empty() {
        bail!(
            "no dialect plugin can be demonstrated: none under the plugins directory has a {} for the dev chain",
            demo::DEMO_FILE
        );
    }
    Ok((demos, skipped))
}

/// Refuses ports in use (or given twice), naming the flag that moves each.
fn check_ports(args: &StartArgs) -> anyhow::Result<()> {
    let ports = [
        (args.port, "the public listener", "--port"),
        (args.admin_port, "the admin listener", "--admin-port"),
        (args.node_port, "the dev chain", "--node-port"),
        (args.tron_port, "the dev TRON node", "--tron-port"),
        (
            args.callback_port,
            "the demo callback inbox",
            "--callback-port",
        ),
    ];
    for (i, (port, what, flag)) in ports.iter().enumerate() {
        if let Some((_, other, _)) = ports[..i].iter().find(|(p, _, _)| p == port) {
            bail!("port {port} is given for both {other} and {what}: choose another with {flag}");
        }
        if node::port_is_taken(*port) {
            bail!(
                "port {port} ({what}) is already in use: stop what listens there, or choose another with {flag}"
            );
        }
    }
    Ok(())
}

/// Takes the data directory's lock for as long as the returned file lives.
fn lock(data_dir: &Path, shown_dir: &str) -> anyhow::Result<File> {
    let path = data_dir.join(LOCK_FILE);
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "another polypay dev is running on {shown_dir}: stop it first (Ctrl-C in its terminal)"
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// `--reset`: removes a previous dev setup, refusing a directory that is not one.
fn reset(data_dir: &Path, shown_dir: &str) -> anyhow::Result<()> {
    if !data_dir.exists() {
        return Ok(());
    }
    let is_empty = std::fs::read_dir(data_dir)
        .with_context(|| format!("reading {shown_dir}"))?
        .next()
        .is_none();
    if !is_empty && !data_dir.join(STATE_FILE).is_file() {
        bail!(
            "--reset: {shown_dir} is not a polypay dev directory (it has no {STATE_FILE}); not deleting it"
        );
    }
    drop(lock(data_dir, shown_dir)?);
    progress(format!(
        "--reset: deleting {shown_dir} (dev chain, database, demo merchants)"
    ));
    std::fs::remove_dir_all(data_dir).with_context(|| format!("deleting {shown_dir}"))
}

/// Placeholders every part of a demo may use (see [`demo`]): those of its chain.
fn chain_placeholders(
    options: &DevOptions,
    state: &DevState,
    spec: &DemoSpec,
    plugin: &str,
    notify_base: &str,
) -> Placeholders {
    let mut p = Placeholders::default();
    p.set("public_url", options.public_url())
        .set("token_symbol", TOKEN_SYMBOL)
        // The dev TRON chain, for a demo on either chain that also offers TRON.
        .set("tron_network", TRON_NETWORK)
        .set("tron_token", dev_usdt().to_base58())
        .set("tron_recipient", tron_recipient().to_base58());
    match spec.chain {
        DemoChain::Evm => {
            p.set("network", setup::NETWORK)
                .set("chain_id", state.chain_id.to_string())
                .set("token", state.token.to_checksum(None))
                .set("payment_contract", state.payment_contract.to_checksum(None))
                .set("recipient", state.recipient.to_checksum(None));
        }
        DemoChain::Tron => {
            p.set("network", TRON_NETWORK)
                .set("token", dev_usdt().to_base58())
                .set("recipient", tron_recipient().to_base58());
        }
    }
    p.set(
        "notify_url",
        format!("{}/{plugin}", notify_base.trim_end_matches('/')),
    )
    .set(
        "return_url",
        inbox::shop_url(&options.callback_url(), plugin),
    );
    p
}

/// Where demo merchants are paid on the dev TRON node.
fn tron_recipient() -> crate::chain::tron::TronAddress {
    SimChain::account(2)
}

/// Writes the config file and loads it as `polypay serve` would.
fn write_config(
    path: &Path,
    options: &DevOptions,
    state: &DevState,
    demos: &[Demo<'_>],
    notify_base: &str,
) -> anyhow::Result<Config> {
    let mut mounts = Vec::new();
    for demo in demos {
        let name = &demo.dialect.name;
        let settings = chain_placeholders(options, state, demo.spec, name, notify_base)
            .render_json(&demo.spec.settings)
            .map_err(|placeholder| demo::DemoError::UnknownPlaceholder {
                path: demo.dialect.dir.join(demo::DEMO_FILE),
                field: "settings".into(),
                name: placeholder.0,
            })?;
        mounts.push(Mount {
            name: name.clone(),
            wasm: demo.dialect.wasm.clone(),
            settings,
            default_merchant: demo
                .spec
                .default_merchant
                .then(|| state.merchants.get(name).map(|m| m.id.clone()))
                .flatten(),
        });
    }
    setup::write_atomically(path, &setup::config_text(options, state, &mounts))?;
    Config::load(Some(path)).with_context(|| format!("the generated config {}", path.display()))
}

/// Creates the demo merchant of every dialect that has none yet, with its plugin data
/// (`merchant_data[i]` for `demos[i]`); true if any was created.
async fn create_merchants(
    config: &Config,
    state: &mut DevState,
    demos: &[Demo<'_>],
    merchant_data: &[serde_json::Value],
) -> anyhow::Result<bool> {
    let missing: Vec<(&Demo, &serde_json::Value)> = demos
        .iter()
        .zip(merchant_data)
        .filter(|(d, _)| !state.merchants.contains_key(&d.dialect.name))
        .collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let ctx = crate::app::context(config.clone()).await?;
    for (demo, data) in missing {
        let name = &demo.dialect.name;
        let specs = crate::cli::credential_specs(&ctx, Some(name)).await?;
        let created = ctx
            .merchants
            .create(&demo.spec.merchant, Some(name), data.clone(), &specs)
            .await
            .with_context(|| format!("creating the demo merchant of `{name}`"))?;
        progress(format!(
            "created the demo merchant of {name}: \"{}\" ({})",
            created.merchant.name, created.merchant.id
        ));
        state.merchants.insert(
            name.clone(),
            DemoMerchant {
                id: created.merchant.id,
                name: created.merchant.name,
                credentials: created.credentials,
            },
        );
    }
    ctx.store.close().await;
    Ok(true)
}

/// How the reader runs this binary: its path relative to the current directory when it
/// is below it (`target/debug/polypay`), else absolute.
fn polypay_program() -> String {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("polypay"));
    let cwd = std::env::current_dir().unwrap_or_default();
    let exe = exe.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(exe);
    shell_word(&exe.display().to_string())
}

/// `polypay dev`, with `--data-dir` when it is not the default.
fn polypay_command(shown_dir: &str) -> String {
    let mut command = format!("{} dev", polypay_program());
    if Path::new(shown_dir) != Path::new(super::cli::DEFAULT_DATA_DIR) {
        let _ = write!(command, " --data-dir {}", shell_word(shown_dir));
    }
    command
}

/// `text` quoted for a POSIX shell when it needs to be.
fn shell_word(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%".contains(c));
    if plain && !text.is_empty() {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Prints a command as the walkthrough shows it: `$ ` before the first line.
fn command_lines(out: &mut String, command: &str) {
    for (i, line) in command.trim().lines().enumerate() {
        let prefix = if i == 0 { "     $ " } else { "       " };
        let _ = writeln!(out, "{prefix}{}", line.trim_end());
    }
}

/// The text printed once everything runs.
fn walkthrough(
    options: &DevOptions,
    state: &DevState,
    demos: &[Demo<'_>],
    skipped: &[Skipped],
    notify_base: &str,
    shown_dir: &str,
) -> anyhow::Result<String> {
    let polypay = polypay_command(shown_dir);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\npolypay dev is ready. Ctrl-C stops it; {shown_dir} keeps everything for the next start.\n"
    );
    let rows = [
        (
            "checkout pages",
            format!("{}/pay/<invoice id>", options.public_url()),
        ),
        (
            "API docs",
            format!("{}/polypay/plugins", options.public_url()),
        ),
        (
            "dev chain",
            format!(
                "{} (anvil, chain id {}, network \"{}\")",
                options.node_url(),
                state.chain_id,
                setup::NETWORK
            ),
        ),
        (
            "USDT",
            format!(
                "{} (6 decimals); payment contract {}",
                state.token, state.payment_contract
            ),
        ),
        (
            "dev TRON node",
            format!(
                "{} (java-tron HTTP API, network \"{TRON_NETWORK}\"); USDT-TRC20 {}",
                options.tron_url(),
                dev_usdt()
            ),
        ),
        (
            "dev wallet",
            format!(
                "{} (TRON {}): pays on checkout pages and with `{polypay} pay`",
                state.wallet,
                dev_wallet()
            ),
        ),
        (
            "callbacks",
            format!("{}/<plugin>", notify_base.trim_end_matches('/')),
        ),
        (
            "admin API",
            format!(
                "{} (send `Authorization: Bearer $(cat {})`)",
                options.admin_url(),
                shell_word(&format!("{shown_dir}/admin.token"))
            ),
        ),
        ("config", format!("{shown_dir}/{CONFIG_FILE}")),
        (
            "deliveries",
            format!(
                "{} --config {} webhook list",
                polypay_program(),
                shell_word(&format!("{shown_dir}/{CONFIG_FILE}"))
            ),
        ),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<15} {value}");
    }
    for demo in demos {
        let name = &demo.dialect.name;
        let merchant = state
            .merchants
            .get(name)
            .with_context(|| format!("no demo merchant for `{name}`"))?;
        let mut p = chain_placeholders(options, state, demo.spec, name, notify_base);
        p.set("merchant_id", merchant.id.clone());
        let _ = writeln!(out, "\n{name} — {}", demo.spec.about);
        let _ = writeln!(
            out,
            "  merchant \"{}\" ({}), credentials:",
            merchant.name, merchant.id
        );
        for credential in &merchant.credentials {
            p.set(
                format!("credential.{}", credential.kind),
                credential.secret.clone(),
            );
            let public = match &credential.public_id {
                Some(public_id) => {
                    p.set(
                        format!("credential.{}.public_id", credential.kind),
                        public_id.clone(),
                    );
                    format!("  public id {public_id}")
                }
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "    {:<10} {}{public}",
                credential.kind, credential.secret
            );
        }
        let render = |field: &str, text: &str| {
            p.render(text)
                .map_err(|placeholder| demo::DemoError::UnknownPlaceholder {
                    path: demo.dialect.dir.join(demo::DEMO_FILE),
                    field: field.into(),
                    name: placeholder.0,
                })
        };
        let create = &demo.spec.create;
        let _ = writeln!(out, "\n  1. {}", create.say);
        command_lines(&mut out, &render("create.run", &create.run)?);
        let pointer = create.invoice.as_deref().unwrap_or("/");
        let _ = writeln!(
            out,
            "     Keep the invoice it answers: {INVOICE_VARIABLE}=<{}>",
            demo::pointer_words(pointer)
        );
        let _ = writeln!(
            out,
            "  2. Pay it: open its checkout page ({}/pay/${INVOICE_VARIABLE}) and click \"Pay with the dev wallet\", or:",
            options.public_url()
        );
        command_lines(&mut out, &format!("{polypay} pay \"${INVOICE_VARIABLE}\""));
        let network = match demo.spec.chain {
            DemoChain::Evm => String::new(),
            DemoChain::Tron => format!(" --network {TRON_NETWORK}"),
        };
        let _ = writeln!(
            out,
            "     (--underpay, --overpay, --late or --amount 2.5 try the other outcomes; \
             `{polypay} mine 3{network}` adds blocks, `{polypay} reorg 2{network}` takes the last two back)"
        );
        if let Some(status) = &demo.spec.status {
            let _ = writeln!(out, "  3. {}", status.say);
            command_lines(&mut out, &render("status.run", &status.run)?);
        }
    }
    for Skipped { name, why } in skipped {
        let _ = writeln!(out, "\nnot mounted: {name} ({why})");
    }
    let _ = writeln!(out, "\n{WALKTHROUGH_END}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("target/debug/polypay"), "target/debug/polypay");
        assert_eq!(shell_word("/tmp/my dir"), "'/tmp/my dir'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn funding_is_a_valid_amount() {
        let funding = Amount::parse_decimal(WALLET_FUNDING, TOKEN_DECIMALS).unwrap();
        assert_eq!(funding.as_u256(), U256::from(1_000_000_000_000u64));
    }
}
