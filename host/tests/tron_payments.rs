//! End-to-end TRON payments against the java-tron simulator: a listener follows the chain
//! into a real database (SQLite and PostgreSQL), the matcher attributes TRX and TRC20
//! transfers by strategy, and invoices move through the lifecycle with their outbox
//! events, final only once their block is solidified.

mod common;

use common::db::TestDb;
use common::tron::{Outcome, SimChain};
use common::tron_chain::{TronHarness, units, usdt};
use polypay_host::invoice::{Amount, InvoiceStatus, MatchStrategy};
use polypay_host::matcher::TargetSpec;

use InvoiceStatus::*;

/// The key at m/44'/195'/0'/0 of Trezor's test mnemonic ("all" twelve times), whose
/// receiving addresses trezor-firmware's TRON fixtures list.
const XPUB: &str = "xpub6ELZXDeBLpoCg4dSVZAmcmjhRyTo4fy7fyCeKz4ntuMybyjyFanpmnq3M5195DetSS1vf9MTAJpoGXpABNBmjjxeFRa425JHuDgP3LW5Pcf";

async fn trx_and_usdt_to_one_shared_address_pay_the_invoices_their_unique_amounts_name(db: TestDb) {
    let mut h = TronHarness::start(db).await;
    let (payer, shop, stranger) = (
        SimChain::account(1),
        SimChain::account(10),
        SimChain::account(11),
    );
    h.spawn_listener();
    let shared = || TargetSpec::UniqueAmount {
        address: shop.to_string(),
    };
    let usdt_first = h.open_for_an_hour("USDT", "10", shared()).await;
    let usdt_second = h.open_for_an_hour("USDT", "10", shared()).await;
    let trx_first = h.open_for_an_hour("TRX", "25", shared()).await;
    let trx_second = h.open_for_an_hour("TRX", "25", shared()).await;
    assert_eq!(usdt_second.amount_due, units("10.000001"));
    assert_eq!(trx_second.amount_due, units("25.000001"));
    assert_eq!(usdt_second.pay_address, shop.to_string());
    assert_eq!(usdt_second.strategy, MatchStrategy::UniqueAmount);

    let chain = h.chain();
    let paid_usdt = chain.transfer_trc20(
        usdt(),
        payer,
        shop,
        usdt_second.amount_due.as_u256(),
        Outcome::Success,
    );
    let paid_trx = chain.transfer_trx(payer, shop, 25_000_000);
    // The other USDT amount, sent elsewhere: not a payment to the shop.
    chain.transfer_trc20(
        usdt(),
        payer,
        stranger,
        units("10").as_u256(),
        Outcome::Success,
    );
    chain.transfer_trx(payer, stranger, 25_000_001);
    let block = chain.mine();

    let confirming = h
        .wait_for(&usdt_second.id, "confirming", |i| i.status == Confirming)
        .await;
    assert_eq!(confirming.amount_paid, usdt_second.amount_due);
    assert_eq!(confirming.txn_hash.as_deref(), Some(paid_usdt.id.as_str()));
    let trx = h
        .wait_for(&trx_first.id, "confirming", |i| i.status == Confirming)
        .await;
    assert_eq!(trx.txn_hash.as_deref(), Some(paid_trx.id.as_str()));

    // One confirmation is configured, but the block is not solidified yet.
    chain.mine_blocks(3);
    h.wait_caught_up().await;
    assert_eq!(h.invoice(&usdt_second.id).await.status, Confirming);

    h.solidify(block.number).await;
    for id in [&usdt_second.id, &trx_first.id] {
        let paid = h.wait_for(id, "paid", |i| i.status == Paid).await;
        assert_eq!(paid.amount_confirmed, paid.amount_due);
        assert_eq!(
            h.event_kinds(id).await,
            ["invoice.created", "invoice.confirming", "invoice.paid"]
        );
    }
    for untouched in [&usdt_first.id, &trx_second.id] {
        assert_eq!(h.invoice(untouched).await.status, Pending);
    }
    let stored = h.observed_transfers().await;
    assert_eq!(
        stored.len(),
        2,
        "transfers to an unwatched address are not kept: {stored:#?}"
    );
    assert!(stored.iter().all(|t| t.to_address == shop.to_string()));

    // Paid ends the reservation: the amount is free for the next invoice again.
    let next = h.open_for_an_hour("USDT", "10", shared()).await;
    assert_eq!(next.amount_due, units("10.000001"));
}

async fn a_reverted_or_out_of_energy_trc20_transfer_pays_nothing(db: TestDb) {
    let mut h = TronHarness::start(db).await;
    let (payer, shop) = (SimChain::account(1), SimChain::account(10));
    h.chain().set_solidified_lag(0);
    h.spawn_listener();
    let invoice = h.open_fixed("USDT", shop, "42").await;

    for outcome in [Outcome::Revert, Outcome::OutOfEnergy] {
        h.chain()
            .transfer_trc20(usdt(), payer, shop, units("42").as_u256(), outcome);
    }
    h.chain().mine();
    h.chain().mine();
    h.wait_caught_up().await;
    let after = h.invoice(&invoice.id).await;
    assert_eq!(after.status, Pending);
    assert_eq!(after.amount_paid, Amount::ZERO);
    assert!(h.observed_transfers().await.is_empty());

    // The payer tries again, with enough energy.
    h.chain()
        .transfer_trc20(usdt(), payer, shop, units("42").as_u256(), Outcome::Success);
    h.chain().mine();
    h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(h.observed_transfers().await.len(), 1);
}

async fn derived_addresses_are_the_wallets_tron_addresses_and_get_paid(db: TestDb) {
    let mut h = TronHarness::start(db).await;
    h.chain().set_solidified_lag(0);
    h.spawn_listener();
    let spec = || TargetSpec::DerivedAddress { xpub: XPUB.into() };
    let first = h.open_for_an_hour("USDT", "5", spec()).await;
    let second = h.open_for_an_hour("TRX", "1.5", spec()).await;
    // trezor-firmware's fixtures for m/44'/195'/0'/0/0 and /1.
    assert_eq!(first.pay_address, "TY72iA3SBtrds3QLYsS7LwYfkzXwAXCRWT");
    assert_eq!(second.pay_address, "TFz2CJn9CJb8C4i1Gke3jmZX2fRMJxniH2");

    let payer = SimChain::account(1);
    let to = |i: &polypay_host::invoice::Invoice| i.pay_address.parse().unwrap();
    h.chain().transfer_trc20(
        usdt(),
        payer,
        to(&first),
        units("5").as_u256(),
        Outcome::Success,
    );
    h.chain().transfer_trx(payer, to(&second), 1_500_000);
    h.chain().mine();

    for id in [&first.id, &second.id] {
        let paid = h.wait_for(id, "paid", |i| i.status == Paid).await;
        assert_eq!(paid.amount_paid, paid.amount_due);
    }
    let transfers = h.store.transfers_of_invoice(&second.id).await.unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].log_index, -1, "TRX has no log");
    assert_eq!(transfers[0].asset, "TRX");
}

async fn a_payment_is_final_once_solidified_plus_the_configured_depth(db: TestDb) {
    let mut h = TronHarness::start_with(db, 0, |c| c.solidified_depth = 2).await;
    let (payer, shop) = (SimChain::account(1), SimChain::account(10));
    h.spawn_listener();
    let invoice = h.open_fixed("TRX", shop, "3").await;
    h.chain().transfer_trx(payer, shop, 3_000_000);
    let paying = h.chain().mine().number;
    h.chain().mine_blocks(2);
    h.wait_caught_up().await;
    h.wait_for(&invoice.id, "confirming", |i| i.status == Confirming)
        .await;

    // The node solidifies everything at once, without a new block: the paying block is
    // solidified, but only one block lies below the solidified head, not two.
    h.chain().set_solidified_lag(1);
    assert_eq!(h.chain().solidified(), paying + 1);
    let mut status = h.status.clone().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while status.borrow().final_block != Some(paying - 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            *status.borrow()
        );
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), status.changed()).await;
    }
    assert_eq!(h.invoice(&invoice.id).await.status, Confirming);
    h.chain().set_solidified_lag(0);
    h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
}

on_both_backends!(
    trx_and_usdt_to_one_shared_address_pay_the_invoices_their_unique_amounts_name,
    a_reverted_or_out_of_energy_trc20_transfer_pays_nothing,
    derived_addresses_are_the_wallets_tron_addresses_and_get_paid,
    a_payment_is_final_once_solidified_plus_the_configured_depth,
);
