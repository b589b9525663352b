//! The ledger of custodial dialects on both backends: order flows, every refusal writing
//! nothing, balances recomputed from postings, plugin scoping, and concurrent pays that
//! never overspend.

mod common;

use polypay_host::invoice::Amount;
use polypay_host::ledger::{
    Contact, DepositStatus, DepositTransfer, Ledger, LedgerError, NewOrder, NewOrderItem, NewUser,
    OrderFilter, OrderStatus, PayType,
};
use polypay_host::store::now_ms;
use sqlx::Row;
use std::sync::Arc;

use common::db::TestDb;

const P: &str = "bhop";

async fn ledger(db: &TestDb) -> Ledger {
    Ledger::new(db.store().await)
}

async fn user(l: &Ledger, plugin: &str) -> i64 {
    l.create_user(
        plugin,
        NewUser {
            contact: Contact {
                national_code: Some("86".into()),
                mobile: Some("18600000001".into()),
                email: None,
            },
            ..NewUser::default()
        },
    )
    .await
    .unwrap()
    .id
}

fn usdt(pay_type: PayType, amount: &str) -> NewOrderItem {
    NewOrderItem {
        pay_type,
        chain: "ethereum".into(),
        asset: "USDT".into(),
        decimals: 6,
        amount: amount.into(),
    }
}

fn order(payer: i64, payee: i64, client: &str, items: Vec<NewOrderItem>) -> NewOrder {
    NewOrder {
        payer_user_id: payer,
        payee_user_id: payee,
        client_order_id: client.into(),
        items,
        expires_at: now_ms() + 600_000,
        notify_url: Some("https://org.example/cb".into()),
        plugin_data: None,
    }
}

async fn fund(l: &Ledger, u: i64, units: u64) {
    l.adjust(P, u, "ethereum", "USDT", Amount::from(units), true)
        .await
        .unwrap();
}

async fn available(l: &Ledger, plugin: &str, u: i64) -> (u64, u64) {
    let b = l.balances(plugin, u).await.unwrap();
    let b = b.iter().find(|b| b.asset == "USDT");
    b.map_or((0, 0), |b| {
        (
            b.available.to_base_units_string().parse().unwrap(),
            b.locked.to_base_units_string().parse().unwrap(),
        )
    })
}

async fn count(l: &Ledger, table: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(l.store().pool())
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

fn conflict(r: Result<impl std::fmt::Debug, LedgerError>, token: &str) {
    match r {
        Err(LedgerError::Conflict(text)) => assert!(text.starts_with(token), "{text}"),
        other => panic!("expected conflict `{token}`, got {other:?}"),
    }
}

async fn a_pay_moves_the_money_and_writes_balanced_postings_with_its_event(db: TestDb) {
    let l = ledger(&db).await;
    let (payer, payee) = (user(&l, P).await, user(&l, P).await);
    fund(&l, payer, 1_000_000).await;
    let o = l
        .create_order(
            P,
            order(payer, payee, "A-1", vec![usdt(PayType::Pay, "0.1575")]),
        )
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Waiting);
    let events_before = count(&l, "outbox_events").await;
    let paid = l.pay(P, o.id).await.unwrap();
    assert_eq!(paid.status, OrderStatus::Completed);
    assert_eq!(paid.items[0].paid, Amount::from(157_500u64));
    assert_eq!(available(&l, P, payer).await, (842_500, 0));
    assert_eq!(available(&l, P, payee).await, (157_500, 0));
    assert_eq!(count(&l, "outbox_events").await, events_before + 1);
    let kind: String = sqlx::query("SELECT kind FROM outbox_events ORDER BY id DESC LIMIT 1")
        .fetch_one(l.store().pool())
        .await
        .unwrap()
        .try_get("kind")
        .unwrap();
    assert_eq!(kind, "ledger.order.paid");
    assert_eq!(l.recompute().await.unwrap(), vec![]);
    let rec = l.reconcile().await.unwrap();
    assert!(rec.iter().all(|r| r.balanced), "{rec:?}");
    assert_eq!(rec[0].external, Amount::from(1_000_000u64));
    // The payer's postings: the adjustment credit and the pay debit.
    let postings = l.postings(P, Some(payer), 10).await.unwrap();
    assert_eq!(postings.len(), 2);
    assert_eq!(postings[0].memo, "pay");
    assert_eq!(postings[0].side, "debit");
}

async fn prepay_locks_then_settles_and_unlocks_per_item(db: TestDb) {
    let l = ledger(&db).await;
    let (payer, payee) = (user(&l, P).await, user(&l, P).await);
    fund(&l, payer, 10_000_000).await;
    let o = l
        .create_order(
            P,
            order(
                payer,
                payee,
                "PRE-1",
                vec![usdt(PayType::Prepay, "5"), usdt(PayType::Pay, "1")],
            ),
        )
        .await
        .unwrap();
    let o = l.pay(P, o.id).await.unwrap();
    assert_eq!(o.status, OrderStatus::Processing);
    assert_eq!(available(&l, P, payer).await, (4_000_000, 5_000_000));
    let item = o.items[0].id.to_string();
    conflict(
        l.settle(P, o.id, &[(item.clone(), "6".into())]).await,
        "over-lock",
    );
    let o = l
        .settle(P, o.id, &[(item.clone(), "2".into())])
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Processing);
    assert_eq!(available(&l, P, payee).await, (3_000_000, 0));
    let o = l.unlock(P, o.id, &[]).await.unwrap();
    assert_eq!(o.status, OrderStatus::Completed);
    assert_eq!(o.items[0].paid, Amount::from(2_000_000u64));
    assert_eq!(o.items[0].unlocked, Amount::from(3_000_000u64));
    assert_eq!(available(&l, P, payer).await, (7_000_000, 0));
    // A partial refund of the settled part, then no more than what is left.
    let o = l
        .refund(P, o.id, &[(item.clone(), "1.5".into())])
        .await
        .unwrap();
    assert_eq!(o.items[0].refunded, Amount::from(1_500_000u64));
    conflict(
        l.refund(P, o.id, &[(item.clone(), "0.500001".into())])
            .await,
        "over-refund",
    );
    let o = l.refund(P, o.id, &[]).await.unwrap();
    assert_eq!(o.items[0].refunded, o.items[0].paid);
    assert_eq!(o.items[1].refunded, o.items[1].paid);
    assert_eq!(available(&l, P, payer).await, (10_000_000, 0));
    conflict(l.refund(P, o.id, &[]).await, "over-refund");
    assert_eq!(l.recompute().await.unwrap(), vec![]);
}

async fn cancel_and_expiry_release_locks_and_end_the_order(db: TestDb) {
    let l = ledger(&db).await;
    let (payer, payee) = (user(&l, P).await, user(&l, P).await);
    fund(&l, payer, 3_000_000).await;
    let waiting = l
        .create_order(P, order(payer, payee, "C-1", vec![usdt(PayType::Pay, "1")]))
        .await
        .unwrap();
    let postings = count(&l, "ledger_postings").await;
    let cancelled = l.cancel(P, waiting.id).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        count(&l, "ledger_postings").await,
        postings,
        "unpaid: nothing moves"
    );
    conflict(l.pay(P, waiting.id).await, "status");

    let prepaid = l
        .create_order(
            P,
            order(payer, payee, "C-2", vec![usdt(PayType::Prepay, "2")]),
        )
        .await
        .unwrap();
    l.pay(P, prepaid.id).await.unwrap();
    assert_eq!(available(&l, P, payer).await, (1_000_000, 2_000_000));
    let cancelled = l.cancel(P, prepaid.id).await.unwrap();
    assert_eq!(cancelled.items[0].unlocked, Amount::from(2_000_000u64));
    assert_eq!(available(&l, P, payer).await, (3_000_000, 0));

    // Expiry: a locked order past its expiry is expired by the task, its lock released.
    let mut short = order(payer, payee, "C-3", vec![usdt(PayType::Prepay, "1")]);
    short.expires_at = now_ms() + 60_000;
    let short = l.create_order(P, short).await.unwrap();
    l.pay(P, short.id).await.unwrap();
    assert_eq!(l.expire_due(now_ms(), 100).await.unwrap(), 0, "not due yet");
    assert_eq!(l.expire_due(now_ms() + 60_001, 100).await.unwrap(), 1);
    let expired = l.order(P, short.id).await.unwrap();
    assert_eq!(expired.status, OrderStatus::Expired);
    assert_eq!(available(&l, P, payer).await, (3_000_000, 0));
    assert_eq!(l.recompute().await.unwrap(), vec![]);
}

async fn every_refusal_writes_nothing(db: TestDb) {
    let l = ledger(&db).await;
    let (payer, payee) = (user(&l, P).await, user(&l, P).await);
    fund(&l, payer, 1_000_000).await;
    let postings = count(&l, "ledger_postings").await;
    let events = count(&l, "outbox_events").await;
    for bad in ["-1", "0", "0.0000001", "1e2", "1,5"] {
        let r = l
            .create_order(P, order(payer, payee, "BAD", vec![usdt(PayType::Pay, bad)]))
            .await;
        assert!(matches!(r, Err(LedgerError::Invalid(_))), "{bad}: {r:?}");
    }
    assert_eq!(count(&l, "ledger_orders").await, 0);
    // Overspend: the whole order is refused, including its affordable item.
    let big = l
        .create_order(
            P,
            order(
                payer,
                payee,
                "BIG",
                vec![usdt(PayType::Pay, "0.5"), usdt(PayType::Pay, "0.500001")],
            ),
        )
        .await
        .unwrap();
    conflict(l.pay(P, big.id).await, "insufficient-balance");
    assert_eq!(
        l.order(P, big.id).await.unwrap().status,
        OrderStatus::Waiting
    );
    // Refund of an unpaid order, over-precise refund, unknown item.
    conflict(l.refund(P, big.id, &[]).await, "over-refund");
    let item = big.items[0].id.to_string();
    assert!(matches!(
        l.refund(P, big.id, &[(item, "0.0000001".into())]).await,
        Err(LedgerError::Invalid(_))
    ));
    // Expired by its time even before the expiry task ran.
    let mut soon = order(payer, payee, "SOON", vec![usdt(PayType::Pay, "0.1")]);
    soon.expires_at = now_ms() + 200;
    let soon = l.create_order(P, soon).await.unwrap();
    while now_ms() <= soon.expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    conflict(l.pay(P, soon.id).await, "expired");
    // Duplicate client order id for the payee.
    conflict(
        l.create_order(
            P,
            order(payer, payee, "BIG", vec![usdt(PayType::Pay, "0.1")]),
        )
        .await,
        "duplicate",
    );
    assert_eq!(count(&l, "ledger_postings").await, postings);
    // Only the two creations wrote events.
    assert_eq!(count(&l, "outbox_events").await, events + 2);
    assert_eq!(available(&l, P, payer).await, (1_000_000, 0));
}

async fn a_plugin_sees_nothing_of_another_plugins_ledger(db: TestDb) {
    let l = ledger(&db).await;
    let (payer, payee) = (user(&l, P).await, user(&l, P).await);
    fund(&l, payer, 1_000_000).await;
    let o = l
        .create_order(P, order(payer, payee, "S-1", vec![usdt(PayType::Pay, "1")]))
        .await
        .unwrap();
    let other = "rogue";
    assert!(matches!(
        l.user(other, payer).await,
        Err(LedgerError::NotFound)
    ));
    assert!(matches!(
        l.balances(other, payer).await,
        Err(LedgerError::NotFound)
    ));
    assert!(matches!(
        l.order(other, o.id).await,
        Err(LedgerError::NotFound)
    ));
    assert!(matches!(
        l.pay(other, o.id).await,
        Err(LedgerError::NotFound)
    ));
    assert!(matches!(
        l.cancel(other, o.id).await,
        Err(LedgerError::NotFound)
    ));
    assert!(matches!(
        l.find_order(other, payee, "S-1").await,
        Err(LedgerError::NotFound)
    ));
    let thief = user(&l, other).await;
    // An order of its own naming the other plugin's users finds no such users.
    assert!(matches!(
        l.create_order(
            other,
            order(payer, thief, "S-2", vec![usdt(PayType::Pay, "1")])
        )
        .await,
        Err(LedgerError::NotFound)
    ));
    assert!(
        l.list_orders(other, &OrderFilter::default(), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        l.list_orders(P, &OrderFilter::default(), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(available(&l, P, payer).await, (1_000_000, 0));
}

async fn listing_filters_by_payer_status_ids_and_time_inclusively(db: TestDb) {
    let l = ledger(&db).await;
    let (a, b, payee) = (user(&l, P).await, user(&l, P).await, user(&l, P).await);
    fund(&l, a, 10_000_000).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let payer = if i % 2 == 0 { a } else { b };
        let o = l
            .create_order(
                P,
                order(
                    payer,
                    payee,
                    &format!("L-{i}"),
                    vec![usdt(PayType::Pay, "1")],
                ),
            )
            .await
            .unwrap();
        ids.push(o);
    }
    l.pay(P, ids[0].id).await.unwrap();
    let of_a = OrderFilter {
        payer_user_id: Some(a),
        ..OrderFilter::default()
    };
    let listed = l.list_orders(P, &of_a, 100).await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![ids[4].id, ids[2].id, ids[0].id],
        "newest first"
    );
    let completed = OrderFilter {
        statuses: vec![OrderStatus::Completed],
        ..of_a.clone()
    };
    assert_eq!(l.list_orders(P, &completed, 100).await.unwrap().len(), 1);
    let range = OrderFilter {
        min_id: Some(ids[1].id),
        max_id: Some(ids[3].id),
        created_from: Some(ids[1].created_at),
        created_to: Some(ids[3].created_at),
        ..OrderFilter::default()
    };
    let listed = l.list_orders(P, &range, 100).await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![ids[3].id, ids[2].id, ids[1].id],
        "bounds inclusive"
    );
    assert_eq!(l.list_orders(P, &range, 2).await.unwrap().len(), 2);
}

/// Many tasks pay one order, and two orders that one balance covers only once: exactly
/// one pay wins each race, and the balance never goes below zero.
async fn concurrent_pays_never_overspend(db: TestDb) {
    let l = Arc::new(ledger(&db).await);
    let payee = user(&l, P).await;
    for round in 0..5 {
        let payer = user(&l, P).await;
        fund(&l, payer, 1_000_000).await;
        let one = l
            .create_order(
                P,
                order(
                    payer,
                    payee,
                    &format!("H1-{round}"),
                    vec![usdt(PayType::Pay, "0.6")],
                ),
            )
            .await
            .unwrap();
        let two = l
            .create_order(
                P,
                order(
                    payer,
                    payee,
                    &format!("H2-{round}"),
                    vec![usdt(PayType::Prepay, "0.6")],
                ),
            )
            .await
            .unwrap();
        let (payee_before, _) = available(&l, P, payee).await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let l = l.clone();
            let id = if i % 2 == 0 { one.id } else { two.id };
            tasks.push(tokio::spawn(async move { l.pay(P, id).await }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(LedgerError::Conflict(_)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one pay wins");
        // The winner took 0.6: moved to the payee (PAY) or locked (PREPAY).
        let (avail, locked) = available(&l, P, payer).await;
        let (received, _) = available(&l, P, payee).await;
        assert_eq!(avail, 400_000, "round {round}");
        assert_eq!(received - payee_before + locked, 600_000, "round {round}");
    }
    assert_eq!(l.recompute().await.unwrap(), vec![]);
}

fn transfer(hash: &str, units: u64) -> DepositTransfer {
    DepositTransfer {
        chain: "ethereum".into(),
        asset: "USDT".into(),
        amount: Amount::from(units),
        address: "0x00000000000000000000000000000000000000d1".into(),
        txn_hash: hash.into(),
        log_index: 3,
    }
}

/// A transfer credits once however often it is reported; its reversal after the money
/// was spent leaves a debt that blocks paying until a new deposit covers it.
async fn a_deposit_credits_once_and_a_spent_reversal_becomes_debt(db: TestDb) {
    let l = ledger(&db).await;
    let (payer, payee) = (user(&l, P).await, user(&l, P).await);
    let first = l
        .credit_deposit(P, payer, &transfer("0xaa", 1_000_000))
        .await
        .unwrap();
    assert!(first.is_some());
    for _ in 0..3 {
        assert_eq!(
            l.credit_deposit(P, payer, &transfer("0xaa", 1_000_000))
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(available(&l, P, payer).await, (1_000_000, 0));
    // Spend most of it, then the deposit's block is reorged away.
    let o = l
        .create_order(
            P,
            order(payer, payee, "D-1", vec![usdt(PayType::Pay, "0.7")]),
        )
        .await
        .unwrap();
    l.pay(P, o.id).await.unwrap();
    let reversed = l
        .reverse_deposit("ethereum", "0xaa", 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reversed.status, DepositStatus::Reversed);
    assert_eq!(
        l.reverse_deposit("ethereum", "0xaa", 3).await.unwrap(),
        None
    );
    let b = &l.balances(P, payer).await.unwrap()[0];
    assert_eq!(
        (b.available, b.debt),
        (Amount::ZERO, Amount::from(700_000u64))
    );
    // Spending is blocked while in debt, even of money that would be available.
    l.credit_deposit(P, payer, &transfer("0xbb", 500_000))
        .await
        .unwrap()
        .unwrap();
    let b = &l.balances(P, payer).await.unwrap()[0];
    assert_eq!(
        (b.available, b.debt),
        (Amount::ZERO, Amount::from(200_000u64))
    );
    let small = l
        .create_order(
            P,
            order(payer, payee, "D-2", vec![usdt(PayType::Pay, "0.1")]),
        )
        .await
        .unwrap();
    l.credit_deposit(P, payer, &transfer("0xcc", 300_000))
        .await
        .unwrap()
        .unwrap();
    let b = &l.balances(P, payer).await.unwrap()[0];
    assert_eq!(
        (b.available, b.debt),
        (Amount::from(100_000u64), Amount::ZERO)
    );
    l.pay(P, small.id).await.unwrap();
    // The first transfer mined again is credited again.
    assert!(
        l.credit_deposit(P, payer, &transfer("0xaa", 1_000_000))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(available(&l, P, payer).await, (1_000_000, 0));
    assert_eq!(l.deposits(P, payer, 10).await.unwrap().len(), 3);
    assert!(matches!(
        l.deposits("rogue", payer, 10).await,
        Err(LedgerError::NotFound)
    ));
    assert_eq!(l.recompute().await.unwrap(), vec![]);
    let rec = l.reconcile().await.unwrap();
    assert!(rec.iter().all(|r| r.balanced), "{rec:?}");
    // In: 0xaa twice, 0xbb, 0xcc; out: 0xaa's reversal. Held: what the users have now.
    assert_eq!(rec[0].external, Amount::from(2_800_000u64));
    assert_eq!(rec[0].outflow, Amount::from(1_000_000u64));
    assert_eq!(rec[0].held, Amount::from(1_800_000u64));
}

async fn a_pay_while_in_debt_is_refused(db: TestDb) {
    let l = ledger(&db).await;
    let (payer, payee) = (user(&l, P).await, user(&l, P).await);
    l.credit_deposit(P, payer, &transfer("0x01", 1_000_000))
        .await
        .unwrap();
    l.adjust(
        P,
        payer,
        "ethereum",
        "USDT",
        Amount::from(1_000_000u64),
        false,
    )
    .await
    .unwrap();
    l.reverse_deposit("ethereum", "0x01", 3).await.unwrap();
    l.adjust(
        P,
        payer,
        "ethereum",
        "USDT",
        Amount::from(5_000_000u64),
        true,
    )
    .await
    .unwrap();
    let o = l
        .create_order(
            P,
            order(payer, payee, "DEBT-1", vec![usdt(PayType::Pay, "1")]),
        )
        .await
        .unwrap();
    let postings = count(&l, "ledger_postings").await;
    conflict(l.pay(P, o.id).await, "debt");
    assert_eq!(count(&l, "ledger_postings").await, postings);
}

on_both_backends!(
    a_deposit_credits_once_and_a_spent_reversal_becomes_debt,
    a_pay_while_in_debt_is_refused,
    a_pay_moves_the_money_and_writes_balanced_postings_with_its_event,
    prepay_locks_then_settles_and_unlocks_per_item,
    cancel_and_expiry_release_locks_and_end_the_order,
    every_refusal_writes_nothing,
    a_plugin_sees_nothing_of_another_plugins_ledger,
    listing_filters_by_payer_status_ids_and_time_inclusively,
    concurrent_pays_never_overspend,
);
