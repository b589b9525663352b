//! The EVM listener's guarantees on a real anvil node: reorgs roll payments back, a
//! killed or replayed listener never misses or double-counts a transfer, and a node
//! outage is waited out without skipping a block.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::anvil::{Harness, TestChain, usdt};
use common::db::TestDb;
use polypay_host::invoice::{Amount, InvoiceStatus};
use polypay_host::matcher::TargetSpec;
use serde_json::{Value, json};

use InvoiceStatus::*;

fn address(a: alloy::primitives::Address) -> String {
    a.to_checksum(None)
}

async fn a_reorg_that_removes_the_paying_block_moves_a_confirming_invoice_back_with_an_event(
    db: TestDb,
) {
    let mut h = Harness::start_with(db, TestChain::start().await, |c| c.confirmations = 5).await;
    let (payer, merchant) = (h.chain.account(1), h.chain.account(2));
    h.mint_usdt(payer, "50").await;
    h.spawn_listener();
    let invoice = h.open_fixed_usdt(merchant, "20").await;

    let before_payment = h.chain.anvil.snapshot().await;
    h.chain.transfer_token(payer, merchant, usdt("20")).await;
    h.chain.anvil.mine(1).await;
    h.wait_for(&invoice.id, "confirming", |i| i.status == Confirming)
        .await;

    // The paying block is orphaned: the chain continues from before it, longer than before.
    h.chain.anvil.revert(before_payment).await;
    h.chain.anvil.mine(4).await;

    let back = h
        .wait_for(&invoice.id, "pending again", |i| i.status == Pending)
        .await;
    assert_eq!(back.amount_paid, Amount::ZERO);
    assert_eq!(
        h.event_kinds(&invoice.id).await,
        ["invoice.created", "invoice.confirming", "invoice.reverted"]
    );
    let reverted = h.events(&invoice.id).await.pop().unwrap();
    assert_eq!(reverted.1.previous_status, Some(Confirming));
    let transfers = h.store.transfers_of_invoice(&invoice.id).await.unwrap();
    assert_eq!(transfers.len(), 1);
    assert!(
        transfers[0].removed,
        "the orphaned transfer is kept, marked removed"
    );
    let status = h.status.as_ref().unwrap().borrow().clone();
    assert!(status.reorgs >= 1, "{status:?}");

    // Paid again on the new chain, it counts once.
    h.chain.transfer_token(payer, merchant, usdt("20")).await;
    h.chain.anvil.mine(4).await;
    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, Amount::from(20_000_000));
}

async fn a_reorg_after_the_invoice_was_paid_moves_it_back_and_reserves_its_amount_again(
    db: TestDb,
) {
    let mut h = Harness::start_with(db, TestChain::start().await, |c| c.confirmations = 2).await;
    let (payer, merchant) = (h.chain.account(1), h.chain.account(2));
    h.mint_usdt(payer, "50").await;
    h.spawn_listener();
    let spec = || TargetSpec::UniqueAmount {
        address: address(merchant),
    };
    let invoice = h.open_for_an_hour("USDT", "7", spec()).await;

    let before_payment = h.chain.anvil.snapshot().await;
    h.chain
        .transfer_token(payer, merchant, invoice.amount_due.as_u256())
        .await;
    h.chain.anvil.mine(1).await;
    h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;

    h.chain.anvil.revert(before_payment).await;
    h.chain.anvil.mine(3).await;

    h.wait_for(&invoice.id, "pending again", |i| i.status == Pending)
        .await;
    let kinds = h.event_kinds(&invoice.id).await;
    assert_eq!(kinds.first().map(String::as_str), Some("invoice.created"));
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("invoice.reverted"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"invoice.paid".to_string()), "{kinds:?}");
    let reverted = h.events(&invoice.id).await.pop().unwrap();
    assert_eq!(reverted.1.previous_status, Some(Paid));
    // Its unique amount is reserved again: a new invoice does not get it.
    let next = h.open_for_an_hour("USDT", "7", spec()).await;
    assert_ne!(next.amount_due, invoice.amount_due);
}

async fn a_listener_killed_at_random_points_and_restarted_counts_every_transfer_exactly_once(
    db: TestDb,
) {
    // Ranges of three blocks, no single-block window: kills land mid-range too.
    let chain = TestChain::start().await;
    let mut h = Harness::start_with(db, chain, |c| {
        c.reorg_window = 0;
        c.max_block_range = 3;
        c.confirmations = 1;
    })
    .await;
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "1000").await;
    let mut invoices = Vec::new();
    for _ in 0..5 {
        invoices.push(h.open_derived_usdt("3").await);
    }
    // Three partial payments of 1 USDT to each, spread over many blocks.
    for round in 0..3 {
        for invoice in &invoices {
            h.chain
                .transfer_token(payer, invoice.pay_address.parse().unwrap(), usdt("1"))
                .await;
        }
        h.chain.anvil.mine(round + 1).await;
    }
    let head = h.chain.anvil.block_number().await;

    let mut kills = 0;
    let mut delay = 0u64;
    loop {
        h.spawn_listener();
        tokio::time::sleep(Duration::from_millis(delay % 23)).await;
        h.kill_listener();
        kills += 1;
        delay += 7;
        let processed = h
            .store
            .chain_cursor("anvil")
            .await
            .unwrap()
            .and_then(|c| c.processed_block);
        if processed.is_some_and(|p| p >= head as i64) || kills > 300 {
            break;
        }
    }
    h.spawn_listener();
    h.wait_processed(head).await;

    let transfers = h.store.observed_transfers("anvil").await.unwrap();
    assert_eq!(
        transfers.len(),
        15,
        "every transfer stored once after {kills} kills"
    );
    let keys: BTreeSet<_> = transfers
        .iter()
        .map(|t| (t.tx_hash.clone(), t.log_index))
        .collect();
    assert_eq!(keys.len(), 15);
    for invoice in &invoices {
        let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
        assert_eq!(
            paid.amount_paid,
            Amount::from(3_000_000),
            "no transfer missed or counted twice"
        );
    }
}

async fn a_replayed_block_range_never_credits_twice(db: TestDb) {
    let mut h = Harness::start_with(db, TestChain::start().await, |c| c.reorg_window = 2).await;
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "100").await;
    let start = h.config.start_block.unwrap();
    h.spawn_listener();
    let invoice = h.open_derived_usdt("10").await;
    let to = invoice.pay_address.parse().unwrap();
    h.chain.transfer_token(payer, to, usdt("4")).await;
    h.chain.anvil.mine(5).await;
    h.wait_for(&invoice.id, "partly paid", |i| {
        i.amount_paid == Amount::from(4_000_000)
    })
    .await;
    h.wait_caught_up().await;
    let events_before = h.event_kinds(&invoice.id).await;

    h.kill_listener();
    h.store
        .rewind_chain_cursor("anvil", start as i64 - 1)
        .await
        .unwrap();
    h.spawn_listener();
    h.chain.anvil.mine(1).await;
    h.wait_caught_up().await;

    let after = h.invoice(&invoice.id).await;
    assert_eq!(after.amount_paid, Amount::from(4_000_000));
    assert_eq!(h.store.observed_transfers("anvil").await.unwrap().len(), 1);
    assert_eq!(h.event_kinds(&invoice.id).await, events_before);
}

async fn the_listener_waits_out_a_node_outage_and_catches_up(db: TestDb) {
    let metrics = polypay_host::telemetry::metrics_handle();
    let mut h = Harness::start_with(db, TestChain::start_persistent().await, |_| {}).await;
    let (payer, merchant) = (h.chain.account(1), h.chain.account(2));
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    let invoice = h.open_fixed_usdt(merchant, "10").await;
    h.chain.transfer_token(payer, merchant, usdt("10")).await;
    h.wait_for(&invoice.id, "confirming", |i| i.status == Confirming)
        .await;

    h.chain.anvil.stop();
    let mut status = h.status.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status.borrow().healthy {
        assert!(Instant::now() < deadline, "the outage was never reported");
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
    let down = status.borrow().clone();
    assert!(
        down.last_error.is_some() && down.consecutive_errors >= 1,
        "{down:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.invoice(&invoice.id).await.status, Confirming);

    h.chain.anvil.restart().await;
    h.chain.anvil.mine(2).await;

    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, Amount::from(10_000_000));
    h.wait_caught_up().await;
    let up = status.borrow().clone();
    assert!(up.healthy && up.last_error.is_none(), "{up:?}");
    assert_eq!(up.processed_block, Some(h.chain.anvil.block_number().await));
    let exported = metrics.render();
    for name in [
        "polypay_chain_rpc_errors_total",
        "polypay_chain_head_block",
        "polypay_chain_processed_block",
        "polypay_chain_lag_blocks",
    ] {
        assert!(
            exported.contains(&format!("{name}{{chain=\"anvil\"}}")),
            "{name} missing:\n{exported}"
        );
    }
}

/// A JSON-RPC proxy in front of `upstream` that refuses `eth_getLogs` over more than
/// `max_range` blocks, as hosted nodes do; returns its URL and how many it refused.
async fn range_capping_proxy(upstream: String, max_range: u64) -> (String, Arc<AtomicU64>) {
    use axum::{Json, Router, extract::State, routing::post};
    type ProxyState = (String, u64, Arc<AtomicU64>, reqwest::Client);
    async fn forward(
        State((upstream, max, refused, client)): State<ProxyState>,
        Json(call): Json<Value>,
    ) -> Json<Value> {
        if call["method"] == "eth_getLogs" {
            let number = |key: &str| {
                call["params"][0][key]
                    .as_str()
                    .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok())
            };
            if let (Some(from), Some(to)) = (number("fromBlock"), number("toBlock"))
                && to - from + 1 > max
            {
                refused.fetch_add(1, Ordering::SeqCst);
                let error = json!({ "code": -32005, "message": format!("query exceeds max block range {max}") });
                return Json(json!({ "jsonrpc": "2.0", "id": call["id"], "error": error }));
            }
        }
        let response = client
            .post(&upstream)
            .json(&call)
            .send()
            .await
            .expect("upstream");
        Json(response.json().await.expect("upstream JSON"))
    }
    let refused = Arc::new(AtomicU64::new(0));
    let state: ProxyState = (upstream, max_range, refused.clone(), reqwest::Client::new());
    let app = Router::new().route("/", post(forward)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("proxy address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("proxy") });
    (url, refused)
}

async fn a_node_that_caps_log_ranges_is_followed_with_smaller_ranges(db: TestDb) {
    let chain = TestChain::start().await;
    let (proxy, refused) = range_capping_proxy(chain.anvil.url.clone(), 4).await;
    let mut h = Harness::start_with(db, chain, |c| {
        c.rpc_url = proxy;
        c.reorg_window = 0;
        c.max_block_range = 64;
        c.confirmations = 1;
    })
    .await;
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "100").await;
    let invoice = h.open_derived_usdt("6").await;
    let to = invoice.pay_address.parse().unwrap();
    for _ in 0..6 {
        h.chain.transfer_token(payer, to, usdt("1")).await;
        h.chain.anvil.mine(5).await;
    }

    h.spawn_listener();

    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(
        paid.amount_paid,
        Amount::from(6_000_000),
        "every transfer counted once"
    );
    // Halving finds the node's limit in a few refusals; growth then stops below it.
    let refused = refused.load(Ordering::SeqCst);
    assert!((1..=5).contains(&refused), "{refused} ranges refused");
    assert_eq!(h.store.observed_transfers("anvil").await.unwrap().len(), 6);
}

async fn a_listener_pointed_at_another_chain_reports_it_and_reads_nothing(db: TestDb) {
    let mut h = Harness::start_with(db, TestChain::start().await, |c| c.chain_id = Some(1)).await;
    h.spawn_listener();
    let mut status = h.status.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status.borrow().last_error.is_none() {
        assert!(
            Instant::now() < deadline,
            "the wrong chain was never reported"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
    let error = status.borrow().last_error.clone().unwrap();
    assert!(
        error.contains("chain id 31337") && error.contains("configured with 1"),
        "{error}"
    );
    assert_eq!(
        h.store.chain_cursor("anvil").await.unwrap(),
        None,
        "nothing was processed"
    );
}

on_both_backends!(
    a_reorg_that_removes_the_paying_block_moves_a_confirming_invoice_back_with_an_event,
    a_reorg_after_the_invoice_was_paid_moves_it_back_and_reserves_its_amount_again,
    a_listener_killed_at_random_points_and_restarted_counts_every_transfer_exactly_once,
    a_replayed_block_range_never_credits_twice,
    the_listener_waits_out_a_node_outage_and_catches_up,
    a_node_that_caps_log_ranges_is_followed_with_smaller_ranges,
    a_listener_pointed_at_another_chain_reports_it_and_reads_nothing,
);
