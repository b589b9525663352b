//! End-to-end payments on a real anvil node: a listener follows the chain into a real
//! database (SQLite and PostgreSQL), the matcher attributes transfers by strategy, and
//! invoices move through the lifecycle with their outbox events.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use alloy::primitives::U256;
use common::anvil::{Harness, TEST_XPUB, eth, usdt};
use common::db::TestDb;
use polypay_host::invoice::{Amount, InvoiceStatus, MatchStrategy};
use polypay_host::matcher::TargetSpec;

use InvoiceStatus::*;

fn address(a: alloy::primitives::Address) -> String {
    a.to_checksum(None)
}

async fn erc20_payment_to_a_unique_amount_invoice_is_confirming_then_paid_after_the_confirmations(
    db: TestDb,
) {
    let mut h = Harness::start(db).await;
    let (payer, merchant) = (h.chain.account(1), h.chain.account(2));
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    let shared = || TargetSpec::UniqueAmount {
        address: address(merchant),
    };
    let first = h.open_for_an_hour("USDT", "10", shared()).await;
    let second = h.open_for_an_hour("USDT", "10", shared()).await;
    assert_eq!(first.amount_due, Amount::from(10_000_000));
    assert_eq!(
        second.amount_due,
        Amount::from(10_000_001),
        "the second open invoice gets the next free amount"
    );
    assert_eq!(second.pay_address, address(merchant));
    assert_eq!(second.strategy, MatchStrategy::UniqueAmount);

    let paid = h
        .chain
        .transfer_token(payer, merchant, second.amount_due.as_u256())
        .await;

    let confirming = h
        .wait_for(&second.id, "confirming", |i| i.status == Confirming)
        .await;
    assert_eq!(confirming.amount_paid, second.amount_due);
    assert_eq!(confirming.txn_hash, Some(format!("{:#x}", paid.tx_hash)));
    h.chain.anvil.mine(2).await; // the paying block + 2 = 3 confirmations
    let done = h.wait_for(&second.id, "paid", |i| i.status == Paid).await;
    assert_eq!(done.outcome, Default::default());
    assert_eq!(done.amount_confirmed, second.amount_due);
    assert_eq!(
        h.event_kinds(&second.id).await,
        ["invoice.created", "invoice.confirming", "invoice.paid"]
    );
    h.wait_caught_up().await;
    assert_eq!(
        h.invoice(&first.id).await.status,
        Pending,
        "the other amount was not paid"
    );

    // Paid ends the reservation: the amount is free for the next invoice again.
    let third = h.open_for_an_hour("USDT", "10", shared()).await;
    assert_eq!(third.amount_due, Amount::from(10_000_001));
}

async fn concurrent_unique_amount_invoices_never_get_the_same_amount(db: TestDb) {
    let h = Harness::start(db).await;
    let merchant = address(h.chain.account(2));
    let h = std::sync::Arc::new(h);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let h = h.clone();
            let spec = TargetSpec::UniqueAmount {
                address: merchant.clone(),
            };
            tokio::spawn(async move { h.open_for_an_hour("USDT", "5", spec).await })
        })
        .collect();
    let mut amounts = BTreeSet::new();
    for task in tasks {
        let invoice = task.await.expect("task");
        assert!(
            amounts.insert(invoice.amount_due),
            "amount {} handed out twice",
            invoice.amount_due
        );
    }
    let expected: BTreeSet<Amount> = (0..16).map(|k| Amount::from(5_000_000 + k)).collect();
    assert_eq!(amounts, expected);

    // Cancelling releases the reservation for reuse.
    let spec = || TargetSpec::UniqueAmount {
        address: merchant.clone(),
    };
    let invoice = h.open_for_an_hour("USDT", "5", spec()).await;
    assert_eq!(invoice.amount_due, Amount::from(5_000_016));
    polypay_host::invoice::InvoiceService::new(h.store.clone())
        .cancel(&invoice.id)
        .await
        .expect("cancel");
    assert_eq!(
        h.open_for_an_hour("USDT", "5", spec()).await.amount_due,
        Amount::from(5_000_016)
    );
}

async fn native_eth_to_a_derived_address_pays_the_invoice(db: TestDb) {
    let mut h = Harness::start(db).await;
    let payer = h.chain.account(3);
    h.spawn_listener();
    let spec = || TargetSpec::DerivedAddress {
        xpub: TEST_XPUB.into(),
    };
    let invoice = h.open_for_an_hour("ETH", "0.5", spec()).await;
    let other = h.open_for_an_hour("ETH", "0.5", spec()).await;
    assert_ne!(
        invoice.pay_address, other.pay_address,
        "each invoice gets a fresh address"
    );

    let to = invoice.pay_address.parse().expect("derived address");
    h.chain.anvil.send_eth(payer, to, eth("0.5")).await;
    h.wait_for(&invoice.id, "confirming", |i| i.status == Confirming)
        .await;
    h.chain.anvil.mine(2).await;

    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, Amount::parse_decimal("0.5", 18).unwrap());
    let transfers = h.store.transfers_of_invoice(&invoice.id).await.unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].log_index, -1);
    assert_eq!(h.invoice(&other.id).await.status, Pending);
}

async fn a_contract_pay_event_pays_the_invoice_it_names(db: TestDb) {
    let mut h = Harness::start(db).await;
    let (payer, merchant, stranger) = (h.chain.account(4), h.chain.account(5), h.chain.account(6));
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    let spec = TargetSpec::ContractReference {
        recipient: address(merchant),
        reference: None,
    };
    let invoice = h.open_for_an_hour("USDT", "25", spec).await;
    assert_eq!(invoice.pay_reference.as_deref(), Some(invoice.id.as_str()));

    // Naming the invoice but paying someone else is not a payment of it.
    h.chain
        .pay_through_contract(payer, &invoice.id, stranger, usdt("25"))
        .await;
    h.chain
        .pay_through_contract(payer, &invoice.id, merchant, usdt("25"))
        .await;
    h.chain.anvil.mine(2).await;

    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, Amount::from(25_000_000));
    let transfers = h.store.transfers_of_invoice(&invoice.id).await.unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].reference.as_deref(), Some(invoice.id.as_str()));
    assert_eq!(transfers[0].from_address, address(payer));
    let unmatched: Vec<_> = h
        .store
        .observed_transfers(&h.config.name)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.invoice_id.is_none())
        .collect();
    assert_eq!(
        unmatched.len(),
        1,
        "the misdirected payment is kept, unmatched"
    );
    assert_eq!(unmatched[0].to_address, address(stranger));
}

async fn an_underpaid_invoice_stays_pending_and_underpaid_until_a_top_up_pays_it(db: TestDb) {
    let mut h = Harness::start(db).await;
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    let invoice = h.open_derived_usdt("10").await;
    let merchant = invoice.pay_address.parse().unwrap();

    h.chain.transfer_token(payer, merchant, usdt("6")).await;
    h.chain.anvil.mine(3).await;
    let partial = h
        .wait_for(&invoice.id, "partly paid", |i| {
            i.amount_paid == Amount::from(6_000_000)
        })
        .await;
    h.wait_caught_up().await;
    let partial = h
        .wait_for(&partial.id, "confirmed partly", |i| {
            i.amount_confirmed == Amount::from(6_000_000)
        })
        .await;
    assert_eq!(partial.status, Pending);
    assert!(partial.outcome.underpaid, "{partial:?}");
    assert!(
        h.event_kinds(&invoice.id)
            .await
            .contains(&"invoice.payment_detected".to_string())
    );

    h.chain.transfer_token(payer, merchant, usdt("4")).await;
    h.chain.anvil.mine(2).await;
    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, Amount::from(10_000_000));
    assert!(!paid.outcome.underpaid && !paid.outcome.overpaid);
    assert_eq!(
        h.store
            .transfers_of_invoice(&invoice.id)
            .await
            .unwrap()
            .len(),
        2,
        "partial payments accumulate"
    );
}

async fn an_overpaid_invoice_is_paid_with_the_overpaid_flag(db: TestDb) {
    let mut h = Harness::start(db).await;
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    let invoice = h.open_derived_usdt("10").await;
    let merchant = invoice.pay_address.parse().unwrap();

    h.chain.transfer_token(payer, merchant, usdt("12.5")).await;
    h.chain.anvil.mine(2).await;

    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert!(paid.outcome.overpaid, "{paid:?}");
    assert!(!paid.outcome.underpaid);
    assert_eq!(paid.amount_paid, Amount::from(12_500_000));
}

async fn a_payment_after_expiry_inside_the_monitoring_window_is_paid_late(db: TestDb) {
    let mut h = Harness::start(db).await;
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    h.spawn_expiry();
    // A derived address stays watched through the monitoring window (a shared target
    // nothing was paid to is released at the deadline instead).
    let spec = TargetSpec::DerivedAddress {
        xpub: TEST_XPUB.into(),
    };
    let invoice = h
        .open(
            "USDT",
            "10",
            spec,
            Duration::from_millis(800),
            Duration::from_secs(3600),
        )
        .await;

    let expired = h
        .wait_for(&invoice.id, "expired", |i| i.status == Expired)
        .await;
    assert_eq!(
        h.event_kinds(&invoice.id).await,
        ["invoice.created", "invoice.expired"]
    );
    assert!(!expired.outcome.paid_late);

    // Lateness is the block's time: make the paying block clearly after the deadline.
    h.chain
        .anvil
        .set_next_block_time(expired.expires_at + 2_000)
        .await;
    let merchant = expired.pay_address.parse().unwrap();
    h.chain.transfer_token(payer, merchant, usdt("10")).await;
    h.chain.anvil.mine(2).await;

    let paid = h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;
    assert!(paid.outcome.paid_late, "{paid:?}");
    assert_eq!(
        h.event_kinds(&invoice.id).await.last().map(String::as_str),
        Some("invoice.paid")
    );
}

async fn the_expiry_scheduler_expires_an_unpaid_invoice_with_its_event(db: TestDb) {
    let mut h = Harness::start(db).await;
    h.spawn_listener();
    h.spawn_expiry();
    let spec = TargetSpec::UniqueAmount {
        address: address(h.chain.account(2)),
    };
    let invoice = h
        .open(
            "USDT",
            "3",
            spec,
            Duration::from_millis(500),
            Duration::ZERO,
        )
        .await;
    let lasting = h
        .open_for_an_hour(
            "USDT",
            "3",
            TargetSpec::UniqueAmount {
                address: address(h.chain.account(2)),
            },
        )
        .await;

    let expired = h
        .wait_for(&invoice.id, "expired", |i| i.status == Expired)
        .await;
    let events = h.events(&invoice.id).await;
    let event = events
        .iter()
        .find(|(e, _)| e.kind == "invoice.expired")
        .expect("an invoice.expired event");
    assert!(event.0.created_at >= expired.expires_at, "expired early");
    assert_eq!(event.1.invoice.status, Expired);
    assert_eq!(h.invoice(&lasting.id).await.status, Pending);

    // Nothing was paid: the reservation ends with the deadline, once the chain has been
    // read past it (a block after the deadline is processed).
    h.chain
        .anvil
        .set_next_block_time(expired.expires_at + 1_000)
        .await;
    h.chain.anvil.mine(1).await;
    let spec = TargetSpec::UniqueAmount {
        address: address(h.chain.account(2)),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let next = h.open_for_an_hour("USDT", "3", spec.clone()).await;
        if next.amount_due == invoice.amount_due {
            break;
        }
        polypay_host::invoice::InvoiceService::new(h.store.clone())
            .cancel(&next.id)
            .await
            .unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "the expired invoice's amount was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_payment_to_nobody_we_watch_is_not_stored(db: TestDb) {
    let mut h = Harness::start(db).await;
    let (payer, merchant, stranger) = (h.chain.account(1), h.chain.account(2), h.chain.account(3));
    h.mint_usdt(payer, "10").await;
    h.spawn_listener();
    h.open_fixed_usdt(merchant, "1").await;
    h.chain.transfer_token(payer, stranger, usdt("1")).await;
    h.chain.anvil.send_eth(payer, stranger, U256::from(1)).await;
    h.wait_caught_up().await;
    assert!(
        h.store
            .observed_transfers(&h.config.name)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_damaged_invoice_does_not_stall_its_chain(db: TestDb) {
    let mut h = Harness::start(db).await;
    let (payer, merchant) = (h.chain.account(1), h.chain.account(2));
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    let shared = || TargetSpec::UniqueAmount {
        address: address(merchant),
    };
    let broken = h.open_for_an_hour("USDT", "10", shared()).await;
    let healthy = h.open_for_an_hour("USDT", "10", shared()).await;
    // A row the service cannot read (as after a bad manual edit or a failed migration).
    sqlx::query("UPDATE invoices SET status = 'bogus' WHERE id = $1")
        .bind(&broken.id)
        .execute(h.store.pool())
        .await
        .unwrap();

    h.chain
        .transfer_token(payer, merchant, broken.amount_due.as_u256())
        .await;
    h.chain
        .transfer_token(payer, merchant, healthy.amount_due.as_u256())
        .await;
    h.chain.anvil.mine(3).await;

    let paid = h.wait_for(&healthy.id, "paid", |i| i.status == Paid).await;
    assert_eq!(paid.amount_paid, healthy.amount_due);
    h.wait_caught_up().await;
    let mut conn = h.store.pool().acquire().await.unwrap();
    let quarantined = polypay_host::store::invoices::quarantined(&mut conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].id, broken.id);
    let kept = h.store.transfers_of_invoice(&broken.id).await.unwrap();
    assert_eq!(kept.len(), 1, "its payment is kept, attributed to it");

    // The chain keeps moving: a later invoice is paid too.
    let later = h.open_for_an_hour("USDT", "7", shared()).await;
    h.chain
        .transfer_token(payer, merchant, later.amount_due.as_u256())
        .await;
    h.chain.anvil.mine(3).await;
    h.wait_for(&later.id, "paid", |i| i.status == Paid).await;

    // Repaired, the operator's retry settles it from the stored payment.
    sqlx::query("UPDATE invoices SET status = 'pending' WHERE id = $1")
        .bind(&broken.id)
        .execute(h.store.pool())
        .await
        .unwrap();
    let retried = polypay_host::invoice::InvoiceService::new(h.store.clone())
        .retry_quarantined(&broken.id)
        .await
        .unwrap();
    assert_eq!(retried.status, Paid);
}

async fn a_second_payment_to_a_fixed_address_after_the_first_pays_nothing(db: TestDb) {
    let mut h = Harness::start(db).await;
    let (payer, merchant) = (h.chain.account(1), h.chain.account(5));
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();
    let invoice = h.open_fixed_usdt(merchant, "10").await;
    h.chain.transfer_token(payer, merchant, usdt("10")).await;
    h.chain.anvil.mine(3).await;
    h.wait_for(&invoice.id, "paid", |i| i.status == Paid).await;

    // The merchant's wallet keeps receiving: nothing more is credited to the paid invoice,
    // and the address is free for the merchant's next invoice.
    h.chain.transfer_token(payer, merchant, usdt("10")).await;
    h.chain.anvil.mine(3).await;
    h.wait_caught_up().await;
    assert_eq!(
        h.invoice(&invoice.id).await.amount_paid,
        Amount::from(10_000_000)
    );
    let next = h.open_fixed_usdt(merchant, "10").await;
    assert_eq!(
        h.invoice(&next.id).await.status,
        Pending,
        "an earlier transfer never pays a newer invoice"
    );
}

on_both_backends!(
    erc20_payment_to_a_unique_amount_invoice_is_confirming_then_paid_after_the_confirmations,
    concurrent_unique_amount_invoices_never_get_the_same_amount,
    native_eth_to_a_derived_address_pays_the_invoice,
    a_contract_pay_event_pays_the_invoice_it_names,
    an_underpaid_invoice_stays_pending_and_underpaid_until_a_top_up_pays_it,
    an_overpaid_invoice_is_paid_with_the_overpaid_flag,
    a_payment_after_expiry_inside_the_monitoring_window_is_paid_late,
    the_expiry_scheduler_expires_an_unpaid_invoice_with_its_event,
    a_payment_to_nobody_we_watch_is_not_stored,
    a_damaged_invoice_does_not_stall_its_chain,
    a_second_payment_to_a_fixed_address_after_the_first_pays_nothing,
);
