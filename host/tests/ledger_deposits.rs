//! Ledger deposits on a real anvil node: a user's derived deposit address is watched by
//! the chain listener, a confirmed transfer to it credits the user once (however often
//! the listener reads its block), and a reorg that removes it reverses the credit, into
//! debt when it was already spent, with the ledger still reconciling.

mod common;

use std::time::{Duration, Instant};

use common::anvil::{Harness, TEST_XPUB, usdt};
use common::db::TestDb;
use polypay_host::invoice::Amount;
use polypay_host::ledger::{Balance, Ledger, NewOrder, NewOrderItem, NewUser, PayType};
use polypay_host::store::now_ms;

const PLUGIN: &str = "custodial";

async fn usdt_balance(ledger: &Ledger, user: i64) -> Option<Balance> {
    let balances = ledger.balances(PLUGIN, user).await.unwrap();
    balances.into_iter().find(|b| b.asset == "USDT")
}

async fn deposit_rows(h: &Harness) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(h.store.pool())
            .await
            .unwrap()
    };
    (
        count("SELECT COUNT(*) FROM ledger_deposits").await,
        count("SELECT COUNT(*) FROM ledger_postings WHERE memo = 'deposit'").await,
    )
}

async fn a_confirmed_deposit_credits_once_and_a_reorg_reverses_it_into_debt(db: TestDb) {
    let mut h = Harness::start(db).await; // 3 confirmations
    let ledger = Ledger::new(h.store.clone());
    let chain = h.config.clone();
    let user = ledger
        .create_user(PLUGIN, NewUser::default())
        .await
        .unwrap()
        .id;
    let payee = ledger
        .create_user(PLUGIN, NewUser::default())
        .await
        .unwrap()
        .id;
    let address = ledger
        .deposit_address(PLUGIN, user, &chain, TEST_XPUB)
        .await
        .unwrap();
    let deposit_to: alloy::primitives::Address = address.parse().unwrap();
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "100").await;
    h.spawn_listener();

    let before_deposit = h.chain.anvil.snapshot().await;
    let sent = h.chain.transfer_token(payer, deposit_to, usdt("10")).await;
    h.chain.anvil.mine(1).await; // 2 confirmations: not yet
    h.wait_caught_up().await;
    assert_eq!(usdt_balance(&ledger, user).await, None, "not confirmed yet");
    h.chain.anvil.mine(1).await; // 3 confirmations
    h.wait_caught_up().await;
    let credited = usdt_balance(&ledger, user).await.expect("credited");
    assert_eq!(credited.available, Amount::from(10_000_000));
    let deposits = ledger.deposits(PLUGIN, user, 10).await.unwrap();
    assert_eq!(deposits.len(), 1);
    assert_eq!(deposits[0].txn_hash, format!("{:#x}", sent.tx_hash));
    assert_eq!(deposits[0].address, address);

    // The listener reads the same blocks again: nothing changes.
    h.kill_listener();
    let deposit_block = sent.block_number as i64;
    h.store
        .rewind_chain_cursor(&chain.name, deposit_block - 1)
        .await
        .unwrap();
    h.spawn_listener();
    h.chain.anvil.mine(1).await;
    h.wait_caught_up().await;
    assert_eq!(
        deposit_rows(&h).await,
        (1, 2),
        "credited exactly once (one entry: external to available)"
    );
    assert_eq!(
        usdt_balance(&ledger, user).await.unwrap().available,
        Amount::from(10_000_000)
    );

    // The user spends 8 of it; then the deposit's block is orphaned.
    let order = ledger
        .create_order(
            PLUGIN,
            NewOrder {
                payer_user_id: user,
                payee_user_id: payee,
                client_order_id: "O-1".into(),
                items: vec![NewOrderItem {
                    pay_type: PayType::Pay,
                    chain: chain.name.clone(),
                    asset: "USDT".into(),
                    decimals: 6,
                    amount: "8".into(),
                }],
                expires_at: now_ms() + 600_000,
                notify_url: None,
                plugin_data: None,
            },
        )
        .await
        .unwrap();
    ledger.pay(PLUGIN, order.id).await.unwrap();
    h.chain.anvil.revert(before_deposit).await;
    h.chain.anvil.mine(6).await; // a longer chain without the deposit
    let deadline = Instant::now() + Duration::from_secs(60);
    let reversed = loop {
        let b = usdt_balance(&ledger, user).await.unwrap();
        if !b.debt.is_zero() {
            break b;
        }
        assert!(Instant::now() < deadline, "the reversal never came: {b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reversed.available, Amount::ZERO);
    assert_eq!(
        reversed.debt,
        Amount::from(8_000_000),
        "the spent part is debt"
    );
    let deposits = ledger.deposits(PLUGIN, user, 10).await.unwrap();
    assert_eq!(
        deposits[0].status,
        polypay_host::ledger::DepositStatus::Reversed
    );
    h.wait_caught_up().await;
    assert_eq!(deposit_rows(&h).await, (1, 2), "nothing credited again");

    let reconciled = ledger.reconcile().await.unwrap();
    assert!(!reconciled.is_empty());
    assert!(reconciled.iter().all(|r| r.balanced), "{reconciled:?}");
    assert!(ledger.recompute().await.unwrap().is_empty());
}

on_both_backends!(a_confirmed_deposit_credits_once_and_a_reorg_reverses_it_into_debt);
