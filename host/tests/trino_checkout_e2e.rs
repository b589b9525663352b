//! End to end, as a merchant and a payer live it with the Trino dialect:
//!
//! 1. a local chain (anvil) with a USDT-like token and the payment contract;
//! 2. polypay (the real binary) following that chain with the `trino` plugin mounted, and a
//!    Trino merchant created with `polypay merchant create --plugin trino`;
//! 3. the merchant's site: a callback endpoint and the order page payers return to;
//! 4. the merchant creates an invoice with the seed document's curl request;
//! 5. the payer opens `jump_url` in headless Chromium with a wallet (an injected EIP-1193
//!    provider backed by an anvil account) and clicks pay: approve, then `pay(...)`;
//! 6. the page shows the payment complete and returns the payer to the merchant;
//! 7. the merchant got the callback, its signature checks out, and
//!    `GET /api/v1/invoices/{id}` says `notified` with the real transaction hash.
//!
//! Screenshots before and after paying are saved in `target/screenshots/`.

mod common;
mod trino_support;
mod webhook_support;

use std::time::Duration;

use alloy::primitives::U256;
use common::anvil::TestChain;
use common::browser;
use serde_json::{Value, json};
use trino_support::*;
use webhook_support::{Receiver, Reply, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payer_pays_a_trino_invoice_with_a_browser_wallet_and_the_merchant_is_notified() {
    // 1. The chain. The paying block and one more make a payment final here.
    let chain = TestChain::start().await;
    let merchant_wallet = chain.account(5);
    let payer = chain.account(1);
    chain.mint(payer, U256::from(100_000_000u64)).await; // 100 USDT

    // 2. polypay with the trino plugin, and a merchant with its token.
    let server = TrinoServer::start(&chain, 2).await;

    // 3. The merchant's site.
    let shop = Receiver::start(|request, _| match request.method.as_str() {
        "POST" => Reply::Status(200),
        _ => Reply::Body(200, "merchant order page".into()),
    })
    .await;
    let order_page = shop.url("/#/order/2022062214060769050");

    // 4. The seed's create request, with our server, token, merchant site and wallet.
    let mut request = seed_create_request();
    request["jump_url"] = json!(order_page);
    request["notify_url"] = json!(shop.url("/pay/notify"));
    request["recipient"] = json!(merchant_wallet.to_checksum(None));
    let curl = tokio::process::Command::new("curl")
        .args(["-sS", "-X", "POST"])
        .arg(server.url("/api/v1/invoices/create"))
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {}", server.token)])
        .args(["-d", &request.to_string()])
        .output()
        .await
        .expect("run curl");
    assert!(curl.status.success(), "{curl:?}");
    let created: Value = serde_json::from_slice(&curl.stdout).expect("create answers JSON");
    let invoice_id = created["invoice_id"]
        .as_str()
        .expect("invoice_id")
        .to_owned();
    let jump_url = created["jump_url"].as_str().expect("jump_url").to_owned();
    assert_eq!(jump_url, server.url(&format!("/pay/{invoice_id}")));

    // 5 and 6. The payer, in Chromium. When the wallet has sent the payment, the chain
    // moves on by one block, which makes it final.
    let scenario = json!({
        "payUrl": jump_url,
        "rpcUrl": chain.anvil.url,
        "payer": payer.to_checksum(None),
        "returnUrl": order_page,
        "screenshots": browser::screenshots_dir(),
        "expect": { "title": request["title"], "amount": "10", "symbol": "USDT" },
    });
    let payment_contract = chain.payment_contract.to_checksum(None);
    let mut payment_tx = None;
    let ok = browser::run_script("wallet-payment.mjs", &scenario, async |line: &str| {
        if let ["TX", to, hash] = line.split(' ').collect::<Vec<_>>()[..]
            && to.eq_ignore_ascii_case(&payment_contract)
        {
            payment_tx = Some(hash.to_owned());
            chain.anvil.mine(1).await;
        }
    })
    .await;
    assert!(
        ok,
        "the payer's browser run failed (see wallet-browser lines above); server log:\n{}",
        server.process.log_text()
    );
    let payment_tx = payment_tx.expect("the wallet sent the payment to the payment contract");

    // 7. The merchant's view: one callback, signed with its token; the invoice notified.
    let status = eventually(
        "the invoice to read notified",
        Duration::from_secs(30),
        || async {
            let read: Value = reqwest::Client::new()
                .get(server.url(&format!("/api/v1/invoices/{invoice_id}")))
                .header("authorization", format!("Bearer {}", server.token))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (read["status"] == "notified").then_some(read)
        },
    )
    .await;
    assert_eq!(status["txn_hash"], payment_tx.as_str());
    assert_eq!(status["metadata"], request["metadata"]);

    let callbacks: Vec<_> = shop
        .received()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(callbacks.len(), 1, "exactly one callback, accepted at once");
    let callback = &callbacks[0];
    assert_eq!(callback.path, "/pay/notify");
    assert_eq!(
        callback.json(),
        json!({ "invoice_id": invoice_id, "status": "paid" })
    );
    assert_eq!(
        callback.header("trino-pay-sig"),
        Some(expected_signature(&server.token, &callback.body).as_str()),
        "the signature is HMAC-SHA256 of the body keyed with the merchant's token"
    );

    // The payment really is on chain: the merchant's wallet holds the 10 USDT.
    let receipt = chain
        .anvil
        .rpc("eth_getTransactionReceipt", json!([payment_tx]))
        .await;
    assert_eq!(receipt["status"], "0x1");
    let balance = chain.token_balance(merchant_wallet).await;
    assert_eq!(balance, U256::from(10_000_000u64));
}
