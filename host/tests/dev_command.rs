//! `polypay dev` end to end, as a newcomer uses it: the real binary started in the
//! repository root (a real anvil node from `node_modules`, the real server, the `trino`
//! plugin), its printed walkthrough followed literally — its `curl` commands and its
//! `polypay dev pay` command run with `sh -c` as printed — the merchant's callback
//! received by a local HTTP server, and `polypay dev reorg` taking a payment back.

mod common;
mod trino_support;
mod webhook_support;

use std::time::Duration;

use common::dev::{DevProcess, Ports, at_path, run_dev, sh, sh_json};
use polypay_host::dev::rpc::AnvilRpc;
use serde_json::{Value, json};
use trino_support::expected_signature;
use webhook_support::{Receiver, Reply, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// Reads an invoice's checkout view (what the payer's page shows).
async fn checkout(public: &str, invoice: &str) -> Value {
    reqwest::get(format!("{public}/api/checkout/{invoice}"))
        .await
        .expect("checkout view")
        .json()
        .await
        .expect("checkout JSON")
}

/// Waits until the invoice's checkout view satisfies `check`.
async fn checkout_until(
    public: &str,
    invoice: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, WAIT, || async {
        let view = checkout(public, invoice).await;
        check(&view).then_some(view)
    })
    .await
}

/// "payment  0x…  block N  time …" from `polypay dev pay`'s output: (tx hash, block).
fn payment_line(output: &str) -> (String, u64) {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("payment "))
        .unwrap_or_else(|| panic!("no payment line in:\n{output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (
        words[1].to_string(),
        words[3].parse().expect("block number"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newcomer_follows_the_walkthrough_is_paid_and_notified_and_a_reorg_reverses_the_payment() {
    let shop = Receiver::accepting().await;
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let hooks = shop.url("/hooks");
    let mut dev =
        DevProcess::start(&dir.path().join("dev"), &ports, &["--notify-url", &hooks]).await;
    let trino = dev.walkthrough.section("trino").clone();
    let token = trino.credential("bearer").to_string();
    let public = dev
        .walkthrough
        .row("checkout pages")
        .split("/pay/")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(public, format!("http://127.0.0.1:{}", ports.public));

    // 1. Create an invoice with the printed curl, and keep it as the walkthrough says.
    let created = sh_json(trino.command(1), &[]).await;
    let (variable, path) = trino.steps[0].keep.clone().expect("where the invoice is");
    let invoice = at_path(&created, &path);
    assert_eq!(created["jump_url"], format!("{public}/pay/{invoice}"));
    let vars = [(variable.as_str(), invoice.as_str())];
    let view = checkout(&public, &invoice).await;
    assert_eq!(view["status"], "pending");
    assert_eq!(view["amount_display"], "10");
    assert_eq!(
        view["dev_wallet"], true,
        "development mode offers the dev wallet"
    );

    // 2. Pay it with the printed command.
    let paid = sh(trino.command(2), &vars).await;
    let (tx, block) = payment_line(&paid);
    assert!(
        paid.contains("approve "),
        "a contract payment is approved first: {paid}"
    );

    // The merchant's callback: trino's body, signed with the printed token.
    let callback = eventually("the paid callback", WAIT, || async {
        shop.received()
            .into_iter()
            .find(|r| r.path == "/hooks/trino")
    })
    .await;
    assert_eq!(
        callback.json(),
        json!({ "invoice_id": invoice, "status": "paid" })
    );
    assert_eq!(
        callback.header("trino-pay-sig"),
        Some(expected_signature(&token, &callback.body).as_str())
    );

    // 3. The printed status command: paid, and notified once the callback was accepted.
    let status = eventually("the invoice to be notified", WAIT, || async {
        let status = sh_json(trino.command(3), &vars).await;
        (status["status"] == "notified").then_some(status)
    })
    .await;
    assert_eq!(status["txn_hash"], tx.as_str());

    // A reorg through `polypay dev reorg` takes the payment's block back.
    let rpc = AnvilRpc::new(dev.walkthrough.row("dev chain")).unwrap();
    let depth = rpc.block_number().await.unwrap() - block + 1;
    let reorged = sh(&format!("{} reorg {depth}", trino.polypay_dev()), &[]).await;
    assert!(
        reorged.contains(&tx),
        "the payment is among what is gone: {reorged}"
    );
    assert!(
        rpc.call("eth_getTransactionReceipt", json!([tx]))
            .await
            .unwrap()
            .is_null(),
        "the payment is no longer on the chain"
    );

    // The reversal, in the dialect's API …
    let status = eventually("the invoice to be unpaid again", WAIT, || async {
        let status = sh_json(trino.command(3), &vars).await;
        (status["status"] == "unpaid").then_some(status)
    })
    .await;
    assert_eq!(status["txn_hash"], "");
    assert_eq!(checkout(&public, &invoice).await["status"], "pending");
    // … and in the webhook deliveries (pay-srv has no callback for a reversal, so the
    // event is recorded and skipped).
    let admin = dev.walkthrough.row("admin API").to_string();
    // Development mode generated the admin token into the data directory, as printed.
    let token_file = dev.walkthrough.rows["admin API"]
        .split("$(cat ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the admin API row names its token file")
        .to_string();
    let admin_token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let kinds = eventually("the reversal among the deliveries", WAIT, || async {
        let url = format!("{admin}/webhooks/deliveries?invoice_id={invoice}");
        let deliveries: Value = reqwest::Client::new()
            .get(url)
            .bearer_auth(&admin_token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let kinds: Vec<(String, String)> = deliveries["deliveries"]
            .as_array()?
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap().into(),
                    d["state"].as_str().unwrap().into(),
                )
            })
            .collect();
        kinds
            .iter()
            .any(|(kind, state)| kind == "invoice.reverted" && state == "skipped")
            .then_some(kinds)
    })
    .await;
    let kinds: Vec<(&str, &str)> = kinds
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_str()))
        .collect();
    assert!(kinds.contains(&("invoice.paid", "delivered")), "{kinds:?}");

    // The payer pays again: paid again, and the merchant is told again.
    let repaid = sh(trino.command(2), &vars).await;
    let (second_tx, _) = payment_line(&repaid);
    eventually("the second paid callback", WAIT, || async {
        (shop
            .received()
            .iter()
            .filter(|r| r.path == "/hooks/trino")
            .count()
            == 2)
            .then_some(())
    })
    .await;
    let status = eventually("the invoice to be notified again", WAIT, || async {
        let status = sh_json(trino.command(3), &vars).await;
        (status["status"] == "notified").then_some(status)
    })
    .await;
    assert_eq!(status["txn_hash"], second_tx.as_str());

    // Ctrl-C stops the server and the chain: no anvil is left behind.
    let exit = dev.interrupt().await;
    assert!(exit.success(), "{exit}: {}", dev.stderr());
    assert!(dev.stdout().contains("stopped."), "{}", dev.stdout());
    assert!(
        rpc.block_number().await.is_err(),
        "the dev chain is stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_pay_underpays_overpays_pays_an_exact_amount_and_pays_late() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let mut dev = DevProcess::start(&dir.path().join("dev"), &ports, &[]).await;
    let trino = dev.walkthrough.section("trino").clone();
    let public = format!("http://127.0.0.1:{}", ports.public);
    let polypay = trino.polypay_dev();
    let path = trino.steps[0].keep.clone().unwrap().1;
    let mut invoices = Vec::new();
    for _ in 0..4 {
        invoices.push(at_path(&sh_json(trino.command(1), &[]).await, &path));
    }

    // Half of what is due: still pending, underpaid; the rest then pays it.
    let out = sh(&format!("{polypay} pay --underpay {}", invoices[0]), &[]).await;
    assert!(out.starts_with("paid 5 USDT"), "{out}");
    let view = checkout_until(&public, &invoices[0], "an underpayment", |v| {
        v["amount_paid"] == "5000000"
    })
    .await;
    assert_eq!(view["status"], "pending");
    assert_eq!(view["outcome"]["underpaid"], true);
    // By its checkout URL this time, as a payer would copy it.
    sh(&format!("{polypay} pay {public}/pay/{}", invoices[0]), &[]).await;
    let view = checkout_until(&public, &invoices[0], "paid", |v| v["status"] == "paid").await;
    assert_eq!(view["amount_paid"], "10000000");
    assert_eq!(view["outcome"]["underpaid"], false);

    // A tenth more: paid, overpaid.
    let out = sh(&format!("{polypay} pay --overpay {}", invoices[1]), &[]).await;
    assert!(out.starts_with("paid 11 USDT"), "{out}");
    let view = checkout_until(&public, &invoices[1], "paid", |v| v["status"] == "paid").await;
    assert_eq!(view["outcome"]["overpaid"], true);
    assert_eq!(view["amount_paid"], "11000000");

    // An exact amount in the asset's units.
    sh(&format!("{polypay} pay --amount 2.5 {}", invoices[2]), &[]).await;
    let view = checkout_until(&public, &invoices[2], "a partial payment", |v| {
        v["amount_paid"] == "2500000"
    })
    .await;
    assert_eq!(view["amount_remaining_display"], "7.5");

    // Late: mined with a block time past the invoice's deadline. (Last: the dev chain's
    // clock stays ahead afterwards.)
    let deadline = checkout(&public, &invoices[3]).await["expires_at"]
        .as_i64()
        .unwrap();
    let out = sh(&format!("{polypay} pay --late {}", invoices[3]), &[]).await;
    assert!(out.contains("past the invoice's deadline"), "{out}");
    let (_, block) = payment_line(&out);
    let rpc = AnvilRpc::new(dev.walkthrough.row("dev chain")).unwrap();
    let block_ms = rpc.block_timestamp(block).await.unwrap() as i64 * 1000;
    assert!(
        block_ms > deadline,
        "block time {block_ms} is after the deadline {deadline}"
    );
    // Lateness is judged by block time: paid, and flagged late.
    let view = checkout_until(&public, &invoices[3], "the late payment seen", |v| {
        v["amount_paid"] == "10000000"
    })
    .await;
    assert_eq!(view["outcome"]["paid_late"], true, "{view}");
    assert!(out.contains("clock now runs"), "{out}");

    // Refusals say why.
    let (status, _, stderr) = run_dev(
        &[
            "--data-dir".into(),
            dir.path().join("dev").display().to_string(),
            "pay".into(),
            invoices[0].clone(),
        ],
        &[],
        &common::browser::repo_root(),
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("nothing is due"), "{stderr}");
    let (status, _, stderr) = run_dev(
        &[
            "--data-dir".into(),
            dir.path().join("dev").display().to_string(),
            "pay".into(),
            "no-such-invoice".into(),
        ],
        &[],
        &common::browser::repo_root(),
    )
    .await;
    assert!(!status.success());
    assert!(
        stderr.contains("there is no invoice `no-such-invoice`"),
        "{stderr}"
    );

    assert!(dev.interrupt().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_resumes_the_same_chain_and_invoices_and_reset_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let ports = Ports::free();
    let mut dev = DevProcess::start(&data, &ports, &[]).await;
    let first = dev.walkthrough.section("trino").clone();
    let path = first.steps[0].keep.clone().unwrap().1;
    let invoice = at_path(&sh_json(first.command(1), &[]).await, &path);
    let vars = [("INVOICE", invoice.as_str())];
    let (tx, _) = payment_line(&sh(first.command(2), &vars).await);
    // Notified: the callback went to the built-in inbox, which printed it.
    eventually("notified", WAIT, || async {
        (sh_json(first.command(3), &vars).await["status"] == "notified").then_some(())
    })
    .await;
    assert!(
        dev.stdout().contains("<- callback: POST /callbacks/trino"),
        "{}",
        dev.stdout()
    );
    assert!(dev.interrupt().await.success());

    // Again: the same merchant and token, the same chain, the invoice still paid.
    let mut dev = DevProcess::start(&data, &ports, &[]).await;
    assert!(
        dev.stdout().contains("resumed the dev chain"),
        "{}",
        dev.stdout()
    );
    let second = dev.walkthrough.section("trino").clone();
    assert_eq!(second.credential("bearer"), first.credential("bearer"));
    let status = sh_json(second.command(3), &vars).await;
    assert_eq!(
        status,
        json!({ "metadata": "order-1", "status": "notified", "txn_hash": tx })
    );
    let rpc = AnvilRpc::new(dev.walkthrough.row("dev chain")).unwrap();
    let receipt = rpc
        .call("eth_getTransactionReceipt", json!([tx]))
        .await
        .unwrap();
    assert_eq!(
        receipt["status"], "0x1",
        "the payment is still on the resumed chain"
    );
    // A later payment still works on the resumed setup.
    let another = at_path(&sh_json(second.command(1), &[]).await, &path);
    sh(second.command(2), &[("INVOICE", another.as_str())]).await;
    eventually("the second invoice paid", WAIT, || async {
        let status = sh_json(second.command(3), &[("INVOICE", another.as_str())]).await;
        (status["status"] != "unpaid").then_some(())
    })
    .await;
    assert!(dev.interrupt().await.success());

    // --reset: a new chain, a new merchant, the old invoice gone.
    let mut dev = DevProcess::start(&data, &ports, &["--reset"]).await;
    let third = dev.walkthrough.section("trino").clone();
    assert_ne!(third.credential("bearer"), first.credential("bearer"));
    let gone = sh_json(third.command(3), &vars).await;
    assert_eq!(gone["type"], "INVOICE_NOT_FOUND", "{gone}");
    let rpc = AnvilRpc::new(dev.walkthrough.row("dev chain")).unwrap();
    assert!(
        rpc.call("eth_getTransactionReceipt", json!([tx]))
            .await
            .unwrap()
            .is_null()
    );
    assert!(dev.interrupt().await.success());
}

#[tokio::test]
async fn start_refuses_a_taken_port_a_missing_anvil_and_a_foreign_reset_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev").display().to_string();
    let root = common::browser::repo_root();
    let ports = Ports::free();
    let mut args = vec!["--data-dir".to_string(), data.clone()];
    args.extend(ports.args());

    // A port in use.
    let taken = std::net::TcpListener::bind(("127.0.0.1", ports.node)).unwrap();
    let (status, _, stderr) = run_dev(&args, &[], &root).await;
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "port {} (the dev chain) is already in use",
            ports.node
        )) && stderr.contains("--node-port"),
        "{stderr}"
    );
    drop(taken);
    assert!(
        !std::path::Path::new(&data).exists(),
        "a refused start writes nothing"
    );

    // No anvil: neither in node_modules (a directory outside the repository) nor on PATH.
    let elsewhere = tempfile::tempdir().unwrap();
    let plugins = root.join("plugins").display().to_string();
    let mut outside = args.clone();
    outside.extend(["--plugins".to_string(), plugins]);
    let (status, _, stderr) = run_dev(
        &outside,
        &[("PATH", "/usr/bin:/bin"), ("POLYPAY_ANVIL", "")],
        elsewhere.path(),
    )
    .await;
    assert!(!status.success());
    assert!(
        stderr.contains("anvil not found") && stderr.contains("scripts/install-test-tools.sh"),
        "{stderr}"
    );
    assert!(!std::path::Path::new(&data).exists());

    // --reset refuses a directory that is not a dev setup.
    let foreign = dir.path().join("precious");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let mut reset = vec![
        "--data-dir".to_string(),
        foreign.display().to_string(),
        "--reset".into(),
    ];
    reset.extend(ports.args());
    let (status, _, stderr) = run_dev(&reset, &[], &root).await;
    assert!(!status.success());
    assert!(stderr.contains("not a polypay dev directory"), "{stderr}");
    assert!(foreign.join("notes.txt").is_file(), "nothing was deleted");

    // The subcommands need a running setup.
    let (status, _, stderr) =
        run_dev(&["--data-dir".into(), data, "mine".into()], &[], &root).await;
    assert!(!status.success());
    assert!(
        stderr.contains("start one with `polypay dev` first"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_page_pays_with_the_dev_wallet_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let mut dev = DevProcess::start(&dir.path().join("dev"), &ports, &[]).await;
    let trino = dev.walkthrough.section("trino").clone();
    let created = sh_json(trino.command(1), &[]).await;
    let invoice = at_path(&created, &trino.steps[0].keep.clone().unwrap().1);
    let return_url = format!("http://127.0.0.1:{}/shop/trino", ports.callback);

    let scenario = json!({
        "payUrl": created["jump_url"],
        "returnUrl": return_url,
        "screenshots": common::browser::screenshots_dir(),
        "expect": { "title": "Demo order 1", "amount": "10", "symbol": "USDT" },
    });
    let mut paid_by = None;
    let ok = common::browser::run_script("dev-wallet.mjs", &scenario, async |line: &str| {
        if let Some(hash) = line.strip_prefix("PAID ") {
            paid_by = Some(hash.to_owned());
        }
    })
    .await;
    assert!(
        ok,
        "the payer's browser run failed (see dev-wallet-browser lines above):\n{}",
        dev.stderr()
    );

    // The merchant's view agrees: notified, by the transaction the page showed.
    let vars = [("INVOICE", invoice.as_str())];
    let status = eventually("the invoice to be notified", WAIT, || async {
        let status = sh_json(trino.command(3), &vars).await;
        (status["status"] == "notified").then_some(status)
    })
    .await;
    assert_eq!(
        status["txn_hash"],
        paid_by.expect("the page showed the payment").as_str()
    );
    assert!(dev.interrupt().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_starting_stops_cleanly_even_when_the_shell_ignored_sigint() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let wasm_dir = std::path::Path::new(polypay_plugin_artifacts::TRINO)
        .parent()
        .unwrap();
    // A shell that starts a command in the background leaves SIGINT ignored in it; the
    // command must catch the signal itself from its first moment, or a Ctrl-C is lost.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#"trap "" INT; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_polypay"))
        .args(["dev", "--data-dir"])
        .arg(dir.path().join("dev"))
        .args(ports.args())
        .arg("--plugin-wasm-dir")
        .arg(wasm_dir)
        .current_dir(common::browser::repo_root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        printed.push(line.clone());
        if line.starts_with("==> starting the dev chain") {
            break;
        }
    }
    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("polypay dev stops on Ctrl-C while starting")
        .unwrap();
    while let Some(line) = lines.next_line().await.unwrap() {
        printed.push(line);
    }
    assert!(exit.success(), "{exit}: {printed:#?}");
    assert!(
        printed
            .iter()
            .any(|l| l.contains("interrupted while starting")),
        "{printed:#?}"
    );
    assert!(
        !polypay_host::dev::node::port_is_taken(ports.node),
        "no dev chain is left running"
    );
}

/// A TRON dialect's demo, declared with `chain = "tron"`: the echo test plugin with a demo
/// file of its own, in a plugins directory of the test's.
fn tron_demo_plugins(dir: &std::path::Path) -> std::path::PathBuf {
    let plugins = dir.join("plugins");
    let echo = plugins.join("echo");
    std::fs::create_dir_all(&echo).unwrap();
    std::fs::copy(
        common::browser::repo_root().join("plugins/test-programs/echo/Cargo.toml"),
        echo.join("Cargo.toml"),
    )
    .unwrap();
    std::fs::write(
        echo.join("demo.toml"),
        r#"
about = "Echo on TRON"
chain = "tron"
merchant = "Echo TRON shop"
default_merchant = true
settings = { receiving_address = "{recipient}" }

[create]
say = "Create an invoice of 2.5 USDT-TRC20:"
run = '''
curl -sS -X POST {public_url}/echo/invoices -H 'Content-Type: application/json' \
  -d '{"amount": "2500000", "chain": "{network}", "asset": "{token_symbol}", "notify_url": "{notify_url}"}'
'''
invoice = "/id"

[status]
say = "Its status:"
run = "curl -sS {public_url}/echo/invoices/$INVOICE"
"#,
    )
    .unwrap();
    plugins
}

/// Asks the dev TRON node (java-tron's API) for a transaction's info: `{}` when the chain
/// does not hold it.
async fn tron_transaction_info(node: &str, txid: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{node}/wallet/gettransactioninfobyid"))
        .json(&json!({ "value": txid }))
        .send()
        .await
        .expect("the dev TRON node answers")
        .json()
        .await
        .expect("java-tron JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tron_demo_is_paid_on_the_dev_tron_node_a_reorg_reverses_it_and_a_restart_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let plugins = tron_demo_plugins(dir.path());
    let ports = Ports::free();
    let flags = ["--plugins", plugins.to_str().unwrap()];
    let mut dev = DevProcess::start(&data, &ports, &flags).await;
    let node = dev.walkthrough.row("dev TRON node").to_string();
    assert_eq!(node, format!("http://127.0.0.1:{}", ports.tron));
    let echo = dev.walkthrough.section("echo").clone();
    let public = format!("http://127.0.0.1:{}", ports.public);

    // The printed create command makes a TRON invoice at the demo merchant's address.
    let created = sh_json(echo.command(1), &[]).await;
    let invoice = at_path(&created, "id");
    assert_eq!(created["chain"], "tron-dev");
    let vars = [("INVOICE", invoice.as_str())];
    let view = checkout(&public, &invoice).await;
    assert_eq!(view["chain_kind"], "tron");
    assert!(
        view["pay_address"].as_str().unwrap().starts_with('T'),
        "a base58 TRON address: {view}"
    );
    assert_eq!(view["dev_wallet"], true, "the dev wallet pays TRON too");

    // The printed pay command: a TRC20 transfer mined on the dev TRON node.
    let paid = sh(echo.command(2), &vars).await;
    assert!(paid.starts_with("paid 2.5"), "{paid}");
    let (txid, block) = payment_line(&paid);
    assert_eq!(txid.len(), 64, "a TRON transaction id: {paid}");
    let info = tron_transaction_info(&node, &txid).await;
    assert_eq!(info["blockNumber"], block);
    assert_eq!(info["receipt"]["result"], "SUCCESS");
    let view = checkout_until(&public, &invoice, "the TRON payment seen", |v| {
        v["status"] == "paid"
    })
    .await;
    assert_eq!(view["txn_hash"], txid.as_str());
    assert_eq!(view["amount_paid"], view["amount"]);

    // `polypay dev reorg --network tron-dev` drops the paying block: the server rolls the
    // payment back.
    let head = tron_head(&node).await;
    let depth = head - block + 1;
    let reorged = sh(
        &format!("{} reorg {depth} --network tron-dev", echo.polypay_dev()),
        &[],
    )
    .await;
    assert!(reorged.contains(&txid), "the payment is gone: {reorged}");
    assert_eq!(tron_transaction_info(&node, &txid).await, json!({}));
    checkout_until(&public, &invoice, "the payment reversed", |v| {
        v["status"] == "pending" && v["amount_paid"] == "0"
    })
    .await;

    // Paid again, then a restart: the same TRON chain (its journal) and the same invoice.
    let (again, _) = payment_line(&sh(echo.command(2), &vars).await);
    checkout_until(&public, &invoice, "paid again", |v| v["status"] == "paid").await;
    let head = tron_head(&node).await;
    assert!(dev.interrupt().await.success());
    let mut dev = DevProcess::start(&data, &ports, &flags).await;
    assert_eq!(tron_head(&node).await, head, "the resumed TRON chain");
    assert_eq!(
        tron_transaction_info(&node, &again).await["receipt"]["result"],
        "SUCCESS",
        "the payment is still on the resumed TRON chain"
    );
    assert_eq!(tron_transaction_info(&node, &txid).await, json!({}));
    let mined = sh(
        &format!("{} mine 2 --network tron-dev", echo.polypay_dev()),
        &[],
    )
    .await;
    assert!(mined.contains(&format!("at block {}", head + 2)), "{mined}");
    let status = sh_json(echo.command(3), &vars).await;
    assert_eq!(status["status"], "paid", "{status}");
    assert!(dev.interrupt().await.success());
}

/// The dev TRON node's head block number.
async fn tron_head(node: &str) -> u64 {
    let block: Value = reqwest::get(format!("{node}/wallet/getnowblock"))
        .await
        .expect("the dev TRON node answers")
        .json()
        .await
        .expect("java-tron JSON");
    block["block_header"]["raw_data"]["number"]
        .as_u64()
        .expect("a block number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tron_php_walkthrough_is_paid_on_the_dev_tron_node_and_calls_back() {
    let shop = Receiver::accepting().await;
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let hooks = shop.url("/hooks");
    let mut dev = DevProcess::start(
        &dir.path().join("dev"),
        &ports,
        &["--notify-url", &hooks, "--confirmations", "2"],
    )
    .await;
    let section = dev.walkthrough.section("tron-php").clone();
    let public = format!("http://127.0.0.1:{}", ports.public);

    // The printed create command: an order of 0.1 TRX (plus its unique step).
    let created = sh_json(section.command(1), &[]).await;
    assert_eq!(created["status"], "success", "{created}");
    let (variable, path) = section.steps[0].keep.clone().expect("where the order is");
    let token = at_path(&created, &path);
    let order_id = created["data"]["order_id"].as_str().unwrap().to_string();
    let vars = [(variable.as_str(), token.as_str())];
    // The checkout page knows the order by its payment token.
    let view = checkout(&public, &token).await;
    assert_eq!(view["network"], "tron-dev");
    assert_eq!(view["dev_wallet"], true);

    // Paid with the printed command: seen (`paid`), then final after one more block.
    let paid = sh(section.command(2), &vars).await;
    assert!(paid.starts_with("paid 0.1"), "{paid}");
    let (txid, _) = payment_line(&paid);
    let status = eventually("the order seen paid", WAIT, || async {
        let status = sh_json(section.command(3), &vars).await;
        (status["data"]["status"] == "paid").then_some(status)
    })
    .await;
    assert_eq!(status["data"]["transaction_hash"], txid.as_str());
    sh(
        &format!("{} mine 1 --network tron-dev", section.polypay_dev()),
        &[],
    )
    .await;
    eventually("the order confirmed", WAIT, || async {
        let status = sh_json(section.command(3), &vars).await;
        (status["data"]["status"] == "confirmed").then_some(())
    })
    .await;

    // The demo merchant's callbacks, at the URL its plugin data names: paid, then
    // confirmed, each signed the seed's way.
    let callbacks = eventually("both callbacks", WAIT, || async {
        let received: Vec<Value> = shop
            .received()
            .into_iter()
            .filter(|r| r.path == "/hooks/tron-php")
            .map(|r| r.json())
            .collect();
        (received.len() >= 2).then_some(received)
    })
    .await;
    let statuses: Vec<&str> = callbacks
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["paid", "confirmed"]);
    for callback in &callbacks {
        assert_eq!(callback["order_id"], order_id.as_str());
        let day: String = callback["timestamp"].as_str().unwrap()[..10]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let status = callback["status"].as_str().unwrap();
        let expected = hex_sha256(&format!("{order_id}{status}{day}"));
        assert_eq!(callback["signature"], expected.as_str());
    }
    assert!(dev.interrupt().await.success());
}

fn hex_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_orders_walkthrough_signs_prices_in_fiat_pays_and_calls_back() {
    // The merchant answers `ok`, the only answer pay-orders accepts.
    let shop = Receiver::start(|_, _| Reply::Body(200, "ok".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let hooks = shop.url("/hooks");
    let mut dev =
        DevProcess::start(&dir.path().join("dev"), &ports, &["--notify-url", &hooks]).await;
    let section = dev.walkthrough.section("pay-orders").clone();

    // The printed create command signs as the seed says (shell md5sum) and prices the
    // order in USD: 20.00 USD at the dev config's 1 USD per USDT is 20 USDT (plus the
    // order's unique step).
    let created = sh_json(section.command(1), &[]).await;
    assert_eq!(created["code"], 200, "{created}");
    let order = &created["result"];
    assert_eq!(order["fee"], 2000);
    assert_eq!(order["pay_currency"], 2);
    let (variable, path) = section.steps[0].keep.clone().expect("where the order is");
    let page = at_path(&created, &path);
    assert!(page.contains("/pay/"), "the checkout page: {page}");
    let vars = [(variable.as_str(), page.as_str())];

    // Paid with the printed command; the callback carries the whole order, paid.
    let paid = sh(section.command(2), &vars).await;
    assert!(paid.starts_with("paid 20"), "{paid}");
    let callback = eventually("the paid order's callback", WAIT, || async {
        shop.received()
            .into_iter()
            .find(|r| r.path == "/hooks/pay-orders")
    })
    .await;
    let body = callback.json();
    assert_eq!(body["id"], order["id"]);
    assert_eq!(body["pay_status"], 3, "{body}");

    // pay_currency 3: TRC20 USDT on the dev TRON node, to a base58 receipt account. The
    // printed command, with the currency changed as a merchant would.
    let trc20 = section.command(1).replace(
        r#"\"currency\": 1"#,
        r#"\"currency\": 1, \"pay_currency\": 3"#,
    );
    assert_ne!(
        trc20,
        section.command(1),
        "the create command names the currency"
    );
    let created = sh_json(&trc20, &[]).await;
    let order = &created["result"];
    assert_eq!(order["pay_currency"], 3, "{created}");
    assert!(
        order["receipt_account"].as_str().unwrap().starts_with('T'),
        "a TRON address: {order}"
    );
    let page = at_path(&created, &path);
    let paid = sh(section.command(2), &[(variable.as_str(), page.as_str())]).await;
    assert!(paid.starts_with("paid 20"), "{paid}");
    let (txid, _) = payment_line(&paid);
    assert_eq!(txid.len(), 64, "a TRON transaction: {paid}");
    let callback = eventually("the TRC20 order's callback", WAIT, || async {
        shop.received()
            .into_iter()
            .map(|r| r.json())
            .find(|b| b["id"] == order["id"])
    })
    .await;
    assert_eq!(callback["pay_status"], 3, "{callback}");
    assert!(dev.interrupt().await.success());
}
