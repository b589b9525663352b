//! The TRON listener's guarantees against the java-tron simulator: a reorg near the head
//! rolls the payment back and the re-mined payment pays once; failing nodes hand over to
//! the next without a block skipped or a transfer doubled; a restart resumes from the
//! stored cursor.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::db::TestDb;
use common::tron::{Fault, Outcome, SimChain};
use common::tron_chain::{TronHarness, units, usdt};
use polypay_host::invoice::{Amount, InvoiceStatus};
use polypay_host::matcher::TargetSpec;

use InvoiceStatus::*;

const XPUB: &str = "xpub6ELZXDeBLpoCg4dSVZAmcmjhRyTo4fy7fyCeKz4ntuMybyjyFanpmnq3M5195DetSS1vf9MTAJpoGXpABNBmjjxeFRa425JHuDgP3LW5Pcf";

/// Waits until the listener's status satisfies `condition` (up to 60 s).
async fn wait_status(
    h: &TronHarness,
    what: &str,
    condition: impl Fn(&polypay_host::chain::ChainStatus) -> bool,
) {
    let mut status = h.status.clone().expect("listener spawned");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition(&status.borrow()) {
        assert!(
            Instant::now() < deadline,
            "never {what}: {:?}",
            *status.borrow()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
}

/// Waits until the listener has published a state with a final block (it settled).
async fn wait_settled(status: &tokio::sync::watch::Receiver<polypay_host::chain::ChainStatus>) {
    let mut status = status.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status.borrow().final_block.is_none() {
        assert!(
            Instant::now() < deadline,
            "no final block: {:?}",
            *status.borrow()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
}

/// The listener stored, for every block from `from` to the head, the id the chain has.
async fn every_block_recorded(h: &TronHarness, from: u64) {
    let head = h.chain().head();
    let stored = h
        .store
        .chain_block_hashes(&h.config.name, from as i64, head as i64)
        .await
        .unwrap();
    let expected: Vec<(i64, String)> = (from..=head)
        .rev()
        .map(|n| (n as i64, h.chain().block(n).unwrap().id_hex()))
        .collect();
    assert_eq!(
        stored, expected,
        "a block was skipped or kept from another branch"
    );
}

async fn a_reorg_near_the_head_rolls_the_payment_back_and_the_remined_payment_pays_once(
    db: TestDb,
) {
    let mut h = TronHarness::start(db).await;
    let (payer, shop) = (SimChain::account(1), SimChain::account(10));
    h.spawn_listener();
    let invoice = h
        .open_for_an_hour(
            "USDT",
            "20",
            TargetSpec::UniqueAmount {
                address: shop.to_string(),
            },
        )
        .await;
    h.chain().mine_blocks(2);
    let payment = h.chain().transfer_trc20(
        usdt(),
        payer,
        shop,
        invoice.amount_due.as_u256(),
        Outcome::Success,
    );
    let paying = h.chain().mine();
    h.chain().mine();
    h.wait_for(&invoice.id, "confirming", |i| i.status == Confirming)
        .await;
    h.wait_caught_up().await;

    // The two newest blocks are replaced by a longer branch without the payment.
    let orphaned = h.chain().fork(2);
    assert_eq!(orphaned, std::slice::from_ref(&payment));
    h.chain().mine_blocks(3);

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
    assert!(transfers[0].removed, "kept, marked removed");
    assert!(h.status.as_ref().unwrap().borrow().reorgs >= 1);

    // The payer's wallet broadcasts the same transaction again; it lands in a new block.
    h.chain().resubmit(&payment);
    let remined = h.chain().mine();
    assert_ne!(remined.id, paying.id);
    h.wait_for(&invoice.id, "confirming again", |i| i.status == Confirming)
        .await;
    h.solidify(remined.number).await;
    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, invoice.amount_due, "counted once");
    let transfers = h.store.transfers_of_invoice(&invoice.id).await.unwrap();
    assert_eq!(
        transfers.len(),
        1,
        "the same transfer, revived: {transfers:#?}"
    );
    assert!(!transfers[0].removed);
    assert_eq!(transfers[0].block_hash, remined.id_hex());
    every_block_recorded(&h, h.config.start_block.unwrap()).await;
}

async fn failing_nodes_hand_over_without_a_skipped_block_or_a_doubled_transfer(db: TestDb) {
    let metrics = polypay_host::telemetry::metrics_handle();
    // Ranges of up to four blocks behind a two-block window: failures land mid-range too.
    let mut h = TronHarness::start_with(db, 1, |c| {
        c.reorg_window = 2;
        c.max_block_range = 4;
    })
    .await;
    let start = h.config.start_block.unwrap();
    h.chain().set_solidified_lag(0);
    let payer = SimChain::account(1);
    let mut invoices = Vec::new();
    for _ in 0..4 {
        invoices.push(
            h.open_for_an_hour(
                "USDT",
                "3",
                TargetSpec::DerivedAddress { xpub: XPUB.into() },
            )
            .await,
        );
    }
    let pay_round = |h: &TronHarness| {
        for invoice in &invoices {
            let to = invoice.pay_address.parse().unwrap();
            h.chain()
                .transfer_trc20(usdt(), payer, to, units("1").as_u256(), Outcome::Success);
            h.chain().mine();
        }
    };
    h.spawn_listener();
    // Every state the listener publishes, to see that a failover costs it no failed step.
    let seen_unhealthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recorder = {
        let mut status = h.status.clone().unwrap();
        let seen = seen_unhealthy.clone();
        tokio::spawn(async move {
            while status.changed().await.is_ok() {
                if !status.borrow_and_update().healthy {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };

    // Round 1: the preferred node answers 503s; the fallback serves.
    h.node.fail(Fault::Unavailable);
    pay_round(&h);
    h.wait_caught_up().await;
    // Round 2: the preferred node is back, the fallback rate-limits.
    h.node.heal();
    h.fallbacks[0].fail(Fault::RateLimited);
    pay_round(&h);
    h.wait_caught_up().await;
    recorder.abort();
    assert!(
        !seen_unhealthy.load(std::sync::atomic::Ordering::SeqCst),
        "one failing node failed a step instead of handing the request over"
    );
    // Round 3: the preferred node refuses connections, the fallback is a lite full node
    // for one kind of request only.
    h.fallbacks[0].heal();
    h.node.stop().await;
    h.fallbacks[0].fail_path("/wallet/gettransactioninfobyblocknum", Fault::LiteFullNode);
    let waiting_from = h.chain().head() + 1;
    pay_round(&h);
    // Now every node fails something: the listener waits, reports it, and moves nothing.
    wait_status(&h, "unhealthy", |s| !s.healthy && s.last_error.is_some()).await;
    let cursor = h.store.chain_cursor(&h.config.name).await.unwrap().unwrap();
    assert!(
        cursor.processed_block.unwrap() < waiting_from as i64,
        "no block with a token transfer passed without its transaction infos: {cursor:?}"
    );
    h.fallbacks[0].heal();
    h.node.restart().await;
    h.wait_caught_up().await;
    wait_status(&h, "healthy again", |s| s.healthy && s.last_error.is_none()).await;

    for invoice in &invoices {
        let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
        assert_eq!(
            paid.amount_paid,
            units("3"),
            "no transfer missed or counted twice"
        );
    }
    let transfers = h.observed_transfers().await;
    let keys: BTreeSet<_> = transfers
        .iter()
        .map(|t| (t.tx_hash.clone(), t.log_index))
        .collect();
    assert_eq!((transfers.len(), keys.len()), (12, 12));
    every_block_recorded(&h, start).await;

    let exported = metrics.render();
    for name in [
        "polypay_chain_rpc_errors_total{chain=\"tron\"}",
        "polypay_chain_head_block{chain=\"tron\"}",
        "polypay_chain_final_block{chain=\"tron\"}",
        "polypay_chain_processed_block{chain=\"tron\"}",
        "polypay_chain_lag_blocks{chain=\"tron\"}",
        "polypay_chain_endpoint_errors_total{chain=\"tron\",endpoint=",
    ] {
        assert!(exported.contains(name), "{name} missing:\n{exported}");
    }
}

async fn a_restarted_listener_resumes_from_the_stored_cursor(db: TestDb) {
    let mut h = TronHarness::start_with(db, 0, |c| {
        c.reorg_window = 0;
        c.max_block_range = 3;
    })
    .await;
    h.chain().set_solidified_lag(0);
    let payer = SimChain::account(1);
    // A derived address: partial payments accumulate.
    let invoice = h
        .open_for_an_hour(
            "TRX",
            "10",
            TargetSpec::DerivedAddress { xpub: XPUB.into() },
        )
        .await;
    let shop = invoice.pay_address.parse().unwrap();
    h.spawn_listener();
    h.chain().transfer_trx(payer, shop, 4_000_000);
    h.chain().mine_blocks(5);
    h.wait_caught_up().await;
    h.kill_listener();
    let cursor = h
        .store
        .chain_cursor(&h.config.name)
        .await
        .unwrap()
        .unwrap()
        .processed_block
        .unwrap() as u64;

    // While it is down: more payments, many blocks.
    h.chain().transfer_trx(payer, shop, 6_000_000);
    h.chain().mine_blocks(10);
    let requests_before = h.node.request_log().len();
    h.spawn_listener();
    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, units("10"));
    h.wait_caught_up().await;

    // Read from the block after the cursor, each block once (the head may be asked again
    // while idle, to check it is still on the chain).
    let head = h.chain().head();
    let mut asked = h.node.blocks_requested(requests_before);
    assert_eq!(asked.iter().min(), Some(&(cursor + 1)), "{asked:?}");
    asked.retain(|&n| n < head);
    assert_eq!(asked, (cursor + 1..head).collect::<Vec<_>>());
    assert_eq!(h.observed_transfers().await.len(), 2);
}

async fn a_listener_killed_at_random_points_counts_every_transfer_exactly_once(db: TestDb) {
    let mut h = TronHarness::start_with(db, 0, |c| {
        c.reorg_window = 0;
        c.max_block_range = 3;
    })
    .await;
    h.chain().set_solidified_lag(0);
    let payer = SimChain::account(1);
    let mut invoices = Vec::new();
    for _ in 0..5 {
        invoices.push(
            h.open_for_an_hour("TRX", "3", TargetSpec::DerivedAddress { xpub: XPUB.into() })
                .await,
        );
    }
    for round in 0..3 {
        for invoice in &invoices {
            h.chain()
                .transfer_trx(payer, invoice.pay_address.parse().unwrap(), 1_000_000);
        }
        h.chain().mine_blocks(round + 1);
    }
    let head = h.chain().head();

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
            .chain_cursor(&h.config.name)
            .await
            .unwrap()
            .and_then(|c| c.processed_block);
        if processed.is_some_and(|p| p >= head as i64) || kills > 300 {
            break;
        }
    }
    h.spawn_listener();
    h.wait_processed(head).await;

    let transfers = h.observed_transfers().await;
    assert_eq!(
        transfers.len(),
        15,
        "every transfer stored once after {kills} kills"
    );
    for invoice in &invoices {
        let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
        assert_eq!(paid.amount_paid, units("3"));
    }
}

async fn a_node_with_a_lagging_solidified_view_never_unconfirms_a_paid_invoice(db: TestDb) {
    let mut h = TronHarness::start(db).await;
    let (payer, shop) = (SimChain::account(1), SimChain::account(10));
    h.chain().set_solidified_lag(0);
    h.spawn_listener();
    let invoice = h.open_fixed("TRX", shop, "2").await;
    h.chain().transfer_trx(payer, shop, 2_000_000);
    h.chain().mine();
    h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;

    // Restarted against a node whose solidified block lags far behind the paying block,
    // the listener settles the invoices paid in recent blocks again.
    h.kill_listener();
    h.chain().set_solidified_lag(19);
    h.spawn_listener();
    h.chain().mine_blocks(2);
    h.wait_caught_up().await;
    wait_settled(h.status.as_ref().unwrap()).await;
    let after = h.invoice(&invoice.id).await;
    assert_eq!(after.status, Paid);
    assert_eq!(after.amount_confirmed, Amount::from(2_000_000));
    let kinds = h.event_kinds(&invoice.id).await;
    assert!(
        !kinds.contains(&"invoice.reverted".to_string()),
        "{kinds:?}"
    );
}

on_both_backends!(
    a_node_with_a_lagging_solidified_view_never_unconfirms_a_paid_invoice,
    a_reorg_near_the_head_rolls_the_payment_back_and_the_remined_payment_pays_once,
    failing_nodes_hand_over_without_a_skipped_block_or_a_doubled_transfer,
    a_restarted_listener_resumes_from_the_stored_cursor,
    a_listener_killed_at_random_points_counts_every_transfer_exactly_once,
);
