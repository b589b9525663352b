//! The invoice service against a real database (SQLite and PostgreSQL): the lateness and
//! tolerance rules, quarantine, fixed-address and contract-reference matching, idempotent
//! creation, reservations, and a property test over random sequences of chain events.
//!
//! Chain events are fed the way a listener feeds them ([`Chain::mine`]): the block's
//! transfers are attributed by the matcher, the cursor advances, and the touched invoices
//! are settled by the service, all in one transaction.

mod common;

use std::collections::BTreeSet;

use common::db::TestDb;
use polypay_host::invoice::{
    Allocation, Amount, ChainView, EventKind, Idempotency, Invoice, InvoiceError, InvoiceService,
    InvoiceStatus, MatchStrategy, NewInvoice, ObservedTransfer, covers_due,
};
use polypay_host::store::{Store, chain_queries, now_ms, outbox};
use proptest::prelude::*;

use InvoiceStatus::*;

on_both_backends!(
    a_payment_mined_before_the_deadline_but_read_after_it_is_on_time,
    a_payment_mined_in_time_pays_even_after_the_monitoring_window_has_passed,
    a_payment_mined_after_the_deadline_is_late,
    a_payment_full_only_thanks_to_the_tolerance_is_dated_by_its_block,
    a_damaged_invoice_is_set_aside_and_the_chain_moves_on,
    an_unrelated_transfer_to_a_fixed_address_pays_nothing,
    a_batch_counts_a_repeated_transfer_once_and_earlier_credits_against_a_fixed_address,
    a_long_batch_with_quotes_and_unicode_in_its_keys_is_matched_whole_and_stored_in_order,
    a_second_open_invoice_at_a_fixed_address_is_refused,
    a_payment_reference_names_one_invoice_per_chain,
    an_idempotent_create_happens_once_per_key,
    an_unpaid_unique_amount_is_released_once_the_chain_is_read_past_the_deadline,
    a_derived_address_is_watched_through_the_monitoring_window,
    a_recently_released_unique_amount_is_not_handed_out_again,
    a_requote_reserves_the_new_amount_and_holds_the_replaced_one_through_the_grace,
    invoice_lifecycle_properties_hold_over_random_chain_events,
);

const USDT: (&str, u8) = ("USDT", 6);
const SHARED: &str = "0x00000000000000000000000000000000000000aa";

/// One chain as a listener would feed it: blocks with times, transfers attributed and
/// settled in one transaction per block.
struct Chain {
    store: Store,
    service: InvoiceService,
    name: String,
    /// Times of the blocks mined so far; index = block number.
    times: Vec<i64>,
    next_tx: u64,
}

impl Chain {
    async fn start(store: &Store, name: &str, genesis_time: i64) -> Chain {
        store.init_chain_cursor(name, 0, 0).await.unwrap();
        Chain {
            store: store.clone(),
            service: InvoiceService::new(store.clone()),
            name: name.to_string(),
            times: vec![genesis_time],
            next_tx: 0,
        }
    }

    fn tip(&self) -> u64 {
        (self.times.len() - 1) as u64
    }

    /// A transfer of `amount` to `to`, for the next block.
    fn transfer(&mut self, to: &str, amount: u64) -> ObservedTransfer {
        self.next_tx += 1;
        ObservedTransfer {
            chain: self.name.clone(),
            tx_hash: format!("0x{:064x}", self.next_tx),
            log_index: 0,
            block_number: 0,
            block_hash: String::new(),
            block_time: 0,
            from: "0x00000000000000000000000000000000000000bb".into(),
            to: to.to_string(),
            asset: "USDT".into(),
            amount: Amount::from(amount),
            reference: None,
        }
    }

    /// Mines one block at `time` holding `transfers`, processed by the host at `now`;
    /// settles the invoices the block credited and `also`.
    async fn mine(
        &mut self,
        time: i64,
        mut transfers: Vec<ObservedTransfer>,
        also: &[String],
        now: i64,
    ) -> polypay_host::invoice::service::Settlement {
        self.times.push(time);
        let number = self.tip();
        for t in &mut transfers {
            t.block_number = number;
            t.block_hash = format!("0x{number:064x}");
            t.block_time = time;
        }
        let mut tx = self.store.begin().await.unwrap();
        let mut touched = polypay_host::matcher::record_transfers(&mut tx, &transfers, now)
            .await
            .unwrap();
        touched.extend(also.iter().cloned());
        chain_queries::set_processed(
            &mut tx,
            &self.name,
            (number as i64, Some(time)),
            number,
            now,
        )
        .await
        .unwrap();
        let view = ChainView {
            processed_block: number as i64,
            final_block: None,
        };
        let settled = self
            .service
            .settle_in(&mut tx, &touched, view, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        settled
    }

    /// A reorg back to block `ancestor`: its later transfers are removed and the invoices
    /// they paid re-settled.
    async fn reorg(&mut self, ancestor: u64, also: &[String], now: i64) {
        self.times.truncate(ancestor as usize + 1);
        let mut tx = self.store.begin().await.unwrap();
        let mut touched: BTreeSet<String> =
            chain_queries::roll_back_above(&mut tx, &self.name, ancestor as i64)
                .await
                .unwrap()
                .into_iter()
                .collect();
        touched.extend(also.iter().cloned());
        let time = self.times[ancestor as usize];
        chain_queries::set_processed(
            &mut tx,
            &self.name,
            (ancestor as i64, Some(time)),
            ancestor,
            now,
        )
        .await
        .unwrap();
        let view = ChainView {
            processed_block: ancestor as i64,
            final_block: None,
        };
        self.service
            .settle_in(&mut tx, &touched, view, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn merchant(store: &Store) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO merchants (id, name, plugin, profile, disabled, created_at, updated_at) \
         VALUES ($1, 'shop', NULL, '{}', 0, 0, 0)",
    )
    .bind(&id)
    .execute(store.pool())
    .await
    .unwrap();
    id
}

/// A 10 USDT invoice on `chain` due at `expires_at`, watched for late payments for an
/// hour after it.
fn new_invoice(merchant: &str, chain: &str, expires_at: i64) -> NewInvoice {
    let mut new = NewInvoice::new(
        merchant,
        "test",
        chain,
        USDT,
        Amount::from(10_000_000u64),
        expires_at,
    );
    new.monitor_until = expires_at + 3_600_000;
    new
}

fn fixed(new: &NewInvoice, address: &str, confirmations: u32) -> Allocation {
    Allocation::fixed_address(new, address, confirmations)
}

fn unique(new: &NewInvoice, amount: u64, confirmations: u32) -> Allocation {
    let mut a = Allocation::fixed_address(new, SHARED, confirmations);
    a.strategy = MatchStrategy::UniqueAmount;
    a.target.reserved_amount = Some(Amount::from(amount));
    a.amount_due = Amount::from(amount);
    a
}

fn derived(new: &NewInvoice, address: &str, confirmations: u32) -> Allocation {
    let mut a = Allocation::fixed_address(new, address, confirmations);
    a.strategy = MatchStrategy::DerivedAddress;
    a
}

async fn read(store: &Store, id: &str) -> Invoice {
    store.invoice(id).await.unwrap().unwrap()
}

async fn event_kinds(store: &Store, id: &str) -> Vec<String> {
    let mut conn = store.pool().acquire().await.unwrap();
    outbox::invoice_events(&mut conn, id)
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d.kind)
        .collect()
}

// --- Lateness and tolerance -------------------------------------------------------------

async fn a_payment_mined_before_the_deadline_but_read_after_it_is_on_time(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 600_000;
    let deadline = t0 + 60_000;
    let mut chain = Chain::start(&store, "late-read", t0).await;
    let new = new_invoice(&m, "late-read", deadline);
    let invoice = service
        .create(&new, &unique(&new, 10_000_001, 1))
        .await
        .unwrap();

    // The listener was down: the host's clock passes the deadline and the invoice expires.
    let expired = service.expire_due(deadline + 1, 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(read(&store, &invoice.id).await.status, Expired);

    // Catching up, it reads a payment mined 10 s before the deadline, ten minutes later.
    let payment = chain.transfer(SHARED, 10_000_001);
    chain
        .mine(deadline - 10_000, vec![payment], &[], deadline + 600_000)
        .await;

    let paid = read(&store, &invoice.id).await;
    assert_eq!(paid.status, Paid);
    assert!(!paid.outcome.paid_late, "{paid:?}");
    assert_eq!(paid.first_paid_at, Some(deadline - 10_000));
}

async fn a_payment_mined_in_time_pays_even_after_the_monitoring_window_has_passed(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 10 * 3_600_000;
    let deadline = t0 + 60_000;
    let mut chain = Chain::start(&store, "long-outage", t0).await;
    let mut new = new_invoice(&m, "long-outage", deadline);
    new.monitor_until = deadline + 60_000;
    let invoice = service
        .create(&new, &unique(&new, 10_000_001, 1))
        .await
        .unwrap();
    service.expire_due(new.monitor_until + 1, 10).await.unwrap();
    // Nothing releases the reservation: the chain has not been read past the deadline.
    service.release_due_targets(now_ms()).await.unwrap();

    let payment = chain.transfer(SHARED, 10_000_001);
    chain
        .mine(deadline - 1_000, vec![payment], &[], now_ms())
        .await;

    let paid = read(&store, &invoice.id).await;
    assert_eq!(paid.status, Paid, "{paid:?}");
    assert!(!paid.outcome.paid_late);
}

async fn a_payment_mined_after_the_deadline_is_late(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 600_000;
    let deadline = t0 + 60_000;
    let mut chain = Chain::start(&store, "late", t0).await;
    let new = new_invoice(&m, "late", deadline);
    let invoice = service
        .create(&new, &derived(&new, "0xd1", 1))
        .await
        .unwrap();
    service.expire_due(deadline, 10).await.unwrap();

    // Read promptly by the host, but mined at the deadline instant: late.
    let payment = chain.transfer("0xd1", 10_000_000);
    chain
        .mine(deadline, vec![payment], &[], deadline + 100)
        .await;

    let paid = read(&store, &invoice.id).await;
    assert_eq!(paid.status, Paid);
    assert!(paid.outcome.paid_late, "{paid:?}");
    assert_eq!(
        event_kinds(&store, &invoice.id).await,
        ["invoice.created", "invoice.expired", "invoice.paid"]
    );
}

async fn a_payment_full_only_thanks_to_the_tolerance_is_dated_by_its_block(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 600_000;
    let deadline = t0 + 60_000;
    let mut chain = Chain::start(&store, "tolerance", t0).await;
    let new = new_invoice(&m, "tolerance", deadline);
    let mut allocation = derived(&new, "0xd2", 2);
    allocation.tolerance = Amount::from(10_000u64);
    let invoice = service.create(&new, &allocation).await.unwrap();

    // 5 000 base units short, within the tolerance, mined before the deadline; the
    // second confirmation comes after it.
    let payment = chain.transfer("0xd2", 9_995_000);
    chain
        .mine(deadline - 5_000, vec![payment], &[], deadline - 4_000)
        .await;
    let confirming = read(&store, &invoice.id).await;
    assert_eq!(confirming.status, Confirming);
    assert_eq!(confirming.first_paid_at, Some(deadline - 5_000));
    chain
        .mine(
            deadline + 20_000,
            vec![],
            std::slice::from_ref(&invoice.id),
            deadline + 21_000,
        )
        .await;

    let paid = read(&store, &invoice.id).await;
    assert_eq!(paid.status, Paid, "{paid:?}");
    assert!(
        !paid.outcome.paid_late && !paid.outcome.underpaid,
        "{paid:?}"
    );
    assert_eq!(paid.first_paid_at, Some(deadline - 5_000));
}

// --- Quarantine -------------------------------------------------------------------------

async fn a_damaged_invoice_is_set_aside_and_the_chain_moves_on(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 60_000;
    let mut chain = Chain::start(&store, "damaged", t0).await;
    let new = new_invoice(&m, "damaged", t0 + 3_600_000);
    let good = service
        .create(&new, &unique(&new, 10_000_001, 1))
        .await
        .unwrap();
    let bad = service
        .create(&new, &unique(&new, 10_000_002, 1))
        .await
        .unwrap();
    sqlx::query("UPDATE invoices SET amount_due = 'not a number' WHERE id = $1")
        .bind(&bad.id)
        .execute(store.pool())
        .await
        .unwrap();

    let payments = vec![
        chain.transfer(SHARED, 10_000_002),
        chain.transfer(SHARED, 10_000_001),
    ];
    let settled = chain.mine(t0 + 1_000, payments, &[], now_ms()).await;

    assert_eq!(settled.quarantined, std::slice::from_ref(&bad.id));
    assert_eq!(
        read(&store, &good.id).await.status,
        Paid,
        "the chain moved on"
    );
    let cursor = store.chain_cursor("damaged").await.unwrap().unwrap();
    assert_eq!(cursor.processed_block, Some(1));
    let transfers = store.observed_transfers("damaged").await.unwrap();
    let credited: BTreeSet<_> = transfers
        .iter()
        .filter_map(|t| t.invoice_id.clone())
        .collect();
    assert_eq!(
        credited,
        BTreeSet::from([good.id.clone(), bad.id.clone()]),
        "no transfer lost"
    );
    let mut conn = store.pool().acquire().await.unwrap();
    let listed = polypay_host::store::invoices::quarantined(&mut conn)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, bad.id);
    assert!(
        listed[0].reason.contains("amount"),
        "{:?}",
        listed[0].reason
    );
    drop(conn);

    // Later blocks leave it alone; the expiry job too.
    chain
        .mine(t0 + 2_000, vec![], std::slice::from_ref(&bad.id), now_ms())
        .await;
    assert!(
        service
            .expire_due(now_ms() + 7_200_000, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Repaired by the operator, a retry settles it from its stored credit.
    sqlx::query("UPDATE invoices SET amount_due = '10000002' WHERE id = $1")
        .bind(&bad.id)
        .execute(store.pool())
        .await
        .unwrap();
    let retried = service.retry_quarantined(&bad.id).await.unwrap();
    assert_eq!(retried.status, Paid);
    assert_eq!(retried.quarantined_at, None);
    assert!(matches!(
        service.retry_quarantined(&bad.id).await,
        Err(InvoiceError::NotFound(_))
    ));
}

// --- Matching ---------------------------------------------------------------------------

async fn an_unrelated_transfer_to_a_fixed_address_pays_nothing(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 60_000;
    let mut chain = Chain::start(&store, "fixed", t0).await;
    let new = new_invoice(&m, "fixed", t0 + 3_600_000);
    let invoice = service.create(&new, &fixed(&new, "0xf1", 1)).await.unwrap();

    let unrelated = vec![
        chain.transfer("0xf1", 7),
        chain.transfer("0xf1", 25_000_000),
    ];
    chain.mine(t0 + 1_000, unrelated, &[], now_ms()).await;
    let untouched = read(&store, &invoice.id).await;
    assert_eq!(
        (untouched.status, untouched.amount_paid),
        (Pending, Amount::ZERO)
    );
    let stored = store.observed_transfers("fixed").await.unwrap();
    assert_eq!(stored.len(), 2, "kept for the operator");
    assert!(stored.iter().all(|t| t.invoice_id.is_none()));

    let payment = vec![chain.transfer("0xf1", 10_000_000)];
    chain.mine(t0 + 2_000, payment, &[], now_ms()).await;
    assert_eq!(read(&store, &invoice.id).await.status, Paid);
}

async fn a_batch_counts_a_repeated_transfer_once_and_earlier_credits_against_a_fixed_address(
    db: TestDb,
) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 60_000;
    let mut chain = Chain::start(&store, "batch", t0).await;
    let new = new_invoice(&m, "batch", t0 + 3_600_000);
    let fixed_invoice = service.create(&new, &fixed(&new, "0xf1", 1)).await.unwrap();
    let derived_invoice = service
        .create(&new, &derived(&new, "0xd1", 1))
        .await
        .unwrap();

    // One block: a payment to the derived address seen twice (the same log), then two
    // transfers that each pay the fixed-address invoice in full.
    let to_derived = chain.transfer("0xd1", 4_000_000);
    let first = chain.transfer("0xf1", 10_000_000);
    let second = chain.transfer("0xf1", 10_000_000);
    let block = vec![
        to_derived.clone(),
        first.clone(),
        to_derived.clone(),
        second.clone(),
    ];
    chain.mine(t0 + 1_000, block, &[], now_ms()).await;

    let derived_now = read(&store, &derived_invoice.id).await;
    assert_eq!(
        derived_now.amount_paid,
        Amount::from(4_000_000u64),
        "counted once"
    );
    assert_eq!(read(&store, &fixed_invoice.id).await.status, Paid);
    let stored = store.observed_transfers("batch").await.unwrap();
    assert_eq!(stored.len(), 3, "the repeated transfer is stored once");
    let invoice_of = |tx: &str| {
        stored
            .iter()
            .find(|t| t.tx_hash == tx)
            .map(|t| t.invoice_id.clone())
            .unwrap()
    };
    assert_eq!(invoice_of(&first.tx_hash), Some(fixed_invoice.id.clone()));
    assert_eq!(
        invoice_of(&second.tx_hash),
        None,
        "the invoice was paid in full earlier in the same batch"
    );

    // The same block again (a listener re-reading it) changes nothing.
    rereading_changes_nothing(&store, "batch").await;
}

/// A block longer than any statement the store ever cut a batch into (its keys travel as
/// one JSON parameter), whose tx hashes, addresses and payment reference hold quotes,
/// backslashes and non-ASCII text, with repeats inside the batch: every transfer is
/// attributed as if matched one by one, each is stored once in the block's order, and
/// reading the block again changes nothing.
async fn a_long_batch_with_quotes_and_unicode_in_its_keys_is_matched_whole_and_stored_in_order(
    db: TestDb,
) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 60_000;
    let mut chain = Chain::start(&store, "long", t0).await;
    let new = new_invoice(&m, "long", t0 + 3_600_000);
    let odd_address = "0xd'\"\\é💸";
    let derived_invoice = service
        .create(&new, &derived(&new, odd_address, 1))
        .await
        .unwrap();
    let unique_invoice = service
        .create(&new, &unique(&new, 10_000_123, 1))
        .await
        .unwrap();
    let reference = "order \"7\" \\ 'ü' ✓";
    let mut by_reference = fixed(&new, "0xr1", 1);
    by_reference.strategy = MatchStrategy::ContractReference;
    by_reference.pay_reference = Some(reference.into());
    let reference_invoice = service.create(&new, &by_reference).await.unwrap();

    // 2 000 transfers of 0.005 USDT pay the derived address's 10 USDT exactly.
    let mut block: Vec<ObservedTransfer> = (0..2_000)
        .map(|k| {
            let mut t = chain.transfer(odd_address, 5_000);
            t.tx_hash = format!("0x'\"\\ü{k:05}");
            t
        })
        .collect();
    block.push(chain.transfer(SHARED, 10_000_123));
    let mut by_event = chain.transfer("0xr1", 10_000_000);
    by_event.reference = Some(reference.into());
    block.push(by_event);
    let nobody = chain.transfer("0x'nobody", 1);
    block.push(nobody.clone());
    let distinct = block.clone();
    // Repeats of earlier transfers in the same block count once.
    block.extend(distinct.iter().step_by(41).cloned());
    assert!(distinct.len() > 2_000 && block.len() > distinct.len());
    chain.mine(t0 + 1_000, block, &[], now_ms()).await;

    let paid = read(&store, &derived_invoice.id).await;
    assert_eq!(
        (paid.status, paid.amount_paid),
        (Paid, Amount::from(10_000_000u64))
    );
    assert_eq!(read(&store, &unique_invoice.id).await.status, Paid);
    assert_eq!(read(&store, &reference_invoice.id).await.status, Paid);
    let stored = store.observed_transfers("long").await.unwrap();
    let stored_keys: Vec<(&str, Option<&str>)> = stored
        .iter()
        .map(|t| (t.tx_hash.as_str(), t.invoice_id.as_deref()))
        .collect();
    let expected: Vec<(&str, Option<&str>)> = distinct
        .iter()
        .map(|t| {
            let invoice = if t.tx_hash == nobody.tx_hash {
                None
            } else if t.reference.is_some() {
                Some(reference_invoice.id.as_str())
            } else if t.to == SHARED {
                Some(unique_invoice.id.as_str())
            } else {
                Some(derived_invoice.id.as_str())
            };
            (t.tx_hash.as_str(), invoice)
        })
        .collect();
    assert_eq!(
        stored_keys, expected,
        "stored once each, in the block's order"
    );
    assert_eq!(stored[0].to_address, odd_address);
    assert_eq!(stored[2_001].reference.as_deref(), Some(reference));
    rereading_changes_nothing(&store, "long").await;
}

/// Feeds `chain`'s stored transfers to the matcher again, as a listener re-reading their
/// blocks would, and checks that nothing is credited or stored twice.
async fn rereading_changes_nothing(store: &Store, chain: &str) {
    let stored = store.observed_transfers(chain).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let credited =
        polypay_host::matcher::record_transfers(&mut tx, &stored_as_seen(&stored), now_ms())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert!(credited.is_empty(), "{credited:?}");
    assert_eq!(
        store.observed_transfers(chain).await.unwrap().len(),
        stored.len()
    );
}

/// Stored transfers as a listener would see them again.
fn stored_as_seen(stored: &[chain_queries::StoredTransfer]) -> Vec<ObservedTransfer> {
    stored
        .iter()
        .map(|t| ObservedTransfer {
            chain: t.chain.clone(),
            tx_hash: t.tx_hash.clone(),
            log_index: t.log_index,
            block_number: t.block_number as u64,
            block_hash: t.block_hash.clone(),
            block_time: t.block_time,
            from: t.from_address.clone(),
            to: t.to_address.clone(),
            asset: t.asset.clone(),
            amount: t.amount,
            reference: t.reference.clone(),
        })
        .collect()
}

async fn a_second_open_invoice_at_a_fixed_address_is_refused(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let (m, other) = (merchant(&store).await, merchant(&store).await);
    let new = new_invoice(&m, "fixed2", now_ms() + 3_600_000);
    let first = service.create(&new, &fixed(&new, "0xf2", 1)).await.unwrap();

    // Another merchant (or the same one) cannot open an earlier-looking invoice there.
    let intruder = new_invoice(&other, "fixed2", now_ms() + 60_000);
    let err = service
        .create(&intruder, &fixed(&intruder, "0xf2", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, InvoiceError::AddressBusy { .. }), "{err:?}");
    assert!(err.to_string().contains("0xf2"), "{err}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invoices")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1, "the refused invoice was not written");

    // Another asset at the address, or the address once the first is cancelled, is free.
    let mut eth = new_invoice(&other, "fixed2", now_ms() + 60_000);
    eth.asset = "ETH".into();
    service.create(&eth, &fixed(&eth, "0xf2", 1)).await.unwrap();
    service.cancel(&first.id).await.unwrap();
    service
        .create(&intruder, &fixed(&intruder, "0xf2", 1))
        .await
        .unwrap();
}

async fn a_payment_reference_names_one_invoice_per_chain(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let new = new_invoice(&m, "refs", now_ms() + 3_600_000);
    let mut allocation = fixed(&new, "0xr1", 1);
    allocation.strategy = MatchStrategy::ContractReference;
    allocation.pay_reference = Some("order-7".into());
    service.create(&new, &allocation).await.unwrap();
    let err = service.create(&new, &allocation).await.unwrap_err();
    assert!(
        matches!(err, InvoiceError::DuplicateReference(ref r) if r == "order-7"),
        "{err:?}"
    );
    // The same reference on another chain is another payment.
    let mut elsewhere = new.clone();
    elsewhere.chain = "refs-2".into();
    service.create(&elsewhere, &allocation).await.unwrap();
}

// --- Idempotent creation ------------------------------------------------------------------

async fn an_idempotent_create_happens_once_per_key(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let chain: polypay_host::chain::ChainConfig = serde_json::from_value(serde_json::json!({
        "name": "idem", "kind": "evm", "chain_id": 1, "rpc_url": "http://127.0.0.1:1",
        "assets": [{ "symbol": "USDT", "decimals": 6, "contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7" }],
    }))
    .unwrap();
    let spec = polypay_host::matcher::TargetSpec::UniqueAmount {
        address: "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af".into(),
    };
    let mut new = new_invoice(&m, "idem", now_ms() + 3_600_000);
    new.idempotency = Some(Idempotency {
        key: "order-1".into(),
        fingerprint: "request-a".into(),
    });

    // Retries racing each other: one invoice, every caller sees it.
    let attempts: Vec<_> = (0..6)
        .map(|_| {
            let (service, chain, new, spec) =
                (service.clone(), chain.clone(), new.clone(), spec.clone());
            tokio::spawn(async move { service.open(&chain, &new, &spec).await })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for attempt in attempts {
        ids.insert(attempt.await.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invoices")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);

    // The same key with another request is refused.
    let mut other = new.clone();
    other.idempotency = Some(Idempotency {
        key: "order-1".into(),
        fingerprint: "request-b".into(),
    });
    let err = service.open(&chain, &other, &spec).await.unwrap_err();
    assert!(
        matches!(err, InvoiceError::IdempotencyMismatch(ref k) if k == "order-1"),
        "{err:?}"
    );
}

// --- Reservations -------------------------------------------------------------------------

async fn reserved(store: &Store, invoice_id: &str) -> bool {
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_targets WHERE invoice_id = $1 AND active = 1",
    )
    .bind(invoice_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    active == 1
}

async fn an_unpaid_unique_amount_is_released_once_the_chain_is_read_past_the_deadline(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 600_000;
    let deadline = t0 + 60_000;
    let mut chain = Chain::start(&store, "release", t0).await;
    let new = new_invoice(&m, "release", deadline);
    let invoice = service
        .create(&new, &unique(&new, 10_000_001, 1))
        .await
        .unwrap();

    service.expire_due(deadline + 1, 10).await.unwrap();
    // The host's clock is past the deadline but the chain has been read only up to t0.
    service.release_due_targets(now_ms()).await.unwrap();
    assert!(
        reserved(&store, &invoice.id).await,
        "a payment mined in time may still come"
    );

    chain.mine(deadline + 1_000, vec![], &[], now_ms()).await;
    assert_eq!(service.release_due_targets(now_ms()).await.unwrap(), 1);
    assert!(
        !reserved(&store, &invoice.id).await,
        "released, though the window is open"
    );

    // A late payment of that amount now pays nobody.
    let late = chain.transfer(SHARED, 10_000_001);
    chain
        .mine(deadline + 2_000, vec![late], &[], now_ms())
        .await;
    assert_eq!(read(&store, &invoice.id).await.status, Expired);
}

async fn a_derived_address_is_watched_through_the_monitoring_window(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let t0 = now_ms() - 600_000;
    let deadline = t0 + 60_000;
    let mut chain = Chain::start(&store, "window", t0).await;
    let mut new = new_invoice(&m, "window", deadline);
    new.monitor_until = deadline + 120_000;
    let invoice = service
        .create(&new, &derived(&new, "0xd3", 1))
        .await
        .unwrap();
    service.expire_due(deadline + 1, 10).await.unwrap();
    chain.mine(deadline + 10_000, vec![], &[], now_ms()).await;
    service.release_due_targets(now_ms()).await.unwrap();
    assert!(
        reserved(&store, &invoice.id).await,
        "an address of its own: watched for late payment"
    );

    let late = chain.transfer("0xd3", 10_000_000);
    chain
        .mine(deadline + 20_000, vec![late], &[], now_ms())
        .await;
    let paid = read(&store, &invoice.id).await;
    assert_eq!(paid.status, Paid);
    assert!(paid.outcome.paid_late);

    // Unpaid, it is released once the chain is read past the end of the window.
    let other = service
        .create(&new, &derived(&new, "0xd4", 1))
        .await
        .unwrap();
    service.expire_due(deadline + 1, 10).await.unwrap();
    chain
        .mine(new.monitor_until - 1, vec![], &[], now_ms())
        .await;
    service.release_due_targets(now_ms()).await.unwrap();
    assert!(reserved(&store, &other.id).await);
    chain.mine(new.monitor_until, vec![], &[], now_ms()).await;
    service.release_due_targets(now_ms()).await.unwrap();
    assert!(!reserved(&store, &other.id).await);
}

async fn a_recently_released_unique_amount_is_not_handed_out_again(db: TestDb) {
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let chain_config: polypay_host::chain::ChainConfig = serde_json::from_value(serde_json::json!({
        "name": "cooldown", "kind": "evm", "chain_id": 1, "rpc_url": "http://127.0.0.1:1",
        "assets": [{ "symbol": "USDT", "decimals": 6, "contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
                     "unique_amount_slots": 2, "unique_amount_reuse_after_secs": 600 }],
    }))
    .unwrap();
    let spec = polypay_host::matcher::TargetSpec::UniqueAmount {
        address: "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af".into(),
    };
    let new = new_invoice(&m, "cooldown", now_ms() + 3_600_000);
    let first = service.open(&chain_config, &new, &spec).await.unwrap();
    assert_eq!(first.amount_due, Amount::from(10_000_000u64));
    service.cancel(&first.id).await.unwrap();

    let second = service.open(&chain_config, &new, &spec).await.unwrap();
    assert_eq!(
        second.amount_due,
        Amount::from(10_000_001u64),
        "the released amount rests"
    );
    // Both slots unavailable (one reserved, one resting): a clear error, never a reuse.
    let err = service.open(&chain_config, &new, &spec).await.unwrap_err();
    assert!(matches!(err, InvoiceError::NoFreeAmount { .. }), "{err:?}");
}

async fn a_requote_reserves_the_new_amount_and_holds_the_replaced_one_through_the_grace(
    db: TestDb,
) {
    use polypay_host::invoice::FiatQuote;
    let store = db.store().await;
    let service = InvoiceService::new(store.clone());
    let m = merchant(&store).await;
    let chain_config: polypay_host::chain::ChainConfig = serde_json::from_value(serde_json::json!({
        "name": "requote", "kind": "evm", "chain_id": 1, "rpc_url": "http://127.0.0.1:1",
        "assets": [{ "symbol": "USDT", "decimals": 6, "contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7" }],
    }))
    .unwrap();
    let spec = polypay_host::matcher::TargetSpec::UniqueAmount {
        address: "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af".into(),
    };
    let quote = |rate: &str| FiatQuote {
        amount: "10.00".into(),
        currency: "USD".into(),
        rate: rate.into(),
        source: "peg".into(),
        quoted_at: now_ms(),
        valid_until: now_ms() + 120_000,
    };
    let mut priced = new_invoice(&m, "requote", now_ms() + 3_600_000);
    priced.fiat = Some(quote("1"));
    let first = service.open(&chain_config, &priced, &spec).await.unwrap();
    assert_eq!(first.amount_due, Amount::from(10_000_000u64));

    let requoted = service
        .requote(
            &chain_config,
            &first.id,
            quote("0.8"),
            Amount::from(12_500_000u64),
            300_000,
        )
        .await
        .unwrap();
    assert_eq!(requoted.amount_due, Amount::from(12_500_000u64));
    let previous = requoted.previous_due.unwrap();
    assert_eq!(previous.amount, Amount::from(10_000_000u64));
    assert_eq!(store.invoice(&first.id).await.unwrap().unwrap(), requoted);

    // Both amounts are the invoice's: others asking for them get the next ones.
    let plain = new_invoice(&m, "requote", now_ms() + 3_600_000);
    let other = service.open(&chain_config, &plain, &spec).await.unwrap();
    assert_eq!(other.amount_due, Amount::from(10_000_001u64));
    let mut dearer = plain.clone();
    dearer.amount_due = Amount::from(12_500_000u64);
    let third = service.open(&chain_config, &dearer, &spec).await.unwrap();
    assert_eq!(third.amount_due, Amount::from(12_500_001u64));

    // The same rate again keeps the invoice's own reservation.
    let again = service
        .requote(
            &chain_config,
            &first.id,
            quote("0.8"),
            Amount::from(12_500_000u64),
            300_000,
        )
        .await
        .unwrap();
    assert_eq!(again.amount_due, Amount::from(12_500_000u64));
    assert_eq!(again.previous_due, Some(previous));
    let kinds: Vec<String> = {
        let mut conn = store.pool().acquire().await.unwrap();
        outbox::invoice_events(&mut conn, &first.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(e, _)| e.kind)
            .collect()
    };
    assert_eq!(
        kinds,
        ["invoice.created", "invoice.requoted", "invoice.requoted"]
    );

    // Not priced in fiat, or no longer pending: never re-quoted.
    let err = service
        .requote(
            &chain_config,
            &other.id,
            quote("0.8"),
            Amount::from(1u64),
            300_000,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, InvoiceError::NotRequotable { .. }), "{err:?}");
    service.cancel(&first.id).await.unwrap();
    let err = service
        .requote(
            &chain_config,
            &first.id,
            quote("0.5"),
            Amount::from(20_000_000u64),
            300_000,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, InvoiceError::NotRequotable { .. }), "{err:?}");
}

// --- Properties ---------------------------------------------------------------------------

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    /// A block `dt` ms after the previous one paying invoice `invoice` `amount`.
    Pay {
        invoice: usize,
        amount: PayAmount,
        dt: i64,
    },
    /// Empty blocks, `dt` ms apart.
    Mine { blocks: u64, dt: i64 },
    /// A reorg `depth` blocks deep.
    Reorg { depth: u64 },
    /// The expiry job and the reservation release run at the host's clock.
    Tick,
}

#[derive(Debug, Clone, Copy)]
enum PayAmount {
    Exact,
    Short(u64),
    Over(u64),
    Half,
}

fn step() -> impl Strategy<Value = Step> {
    let amount = prop_oneof![
        Just(PayAmount::Exact),
        (1u64..20_000).prop_map(PayAmount::Short),
        (1u64..20_000).prop_map(PayAmount::Over),
        Just(PayAmount::Half),
    ];
    prop_oneof![
        4 => (0usize..3, amount, 0i64..40_000).prop_map(|(invoice, amount, dt)| Step::Pay { invoice, amount, dt }),
        3 => (1u64..4, 0i64..30_000).prop_map(|(blocks, dt)| Step::Mine { blocks, dt }),
        1 => (1u64..4).prop_map(|depth| Step::Reorg { depth }),
        2 => Just(Step::Tick),
    ]
}

/// The case: tolerance, confirmations, the host clock's skew from block time, the steps.
fn history() -> impl Strategy<Value = (u64, u32, i64, Vec<Step>)> {
    (
        prop_oneof![Just(0u64), 1u64..15_000],
        1u32..4,
        -20_000i64..60_000,
        prop::collection::vec(step(), 1..24),
    )
}

async fn invoice_lifecycle_properties_hold_over_random_chain_events(db: TestDb) {
    let store = db.store().await;
    let m = merchant(&store).await;
    let cases = std::env::var("POLYPAY_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24);
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config {
            cases,
            failure_persistence: None,
            ..Default::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let handle = tokio::runtime::Handle::current();
    let case = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&history(), |(tolerance, confirmations, skew, steps)| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (store, m) = (store.clone(), m.clone());
        tokio::task::block_in_place(|| {
            handle.block_on(run_history(
                &store,
                &m,
                n,
                tolerance,
                confirmations,
                skew,
                &steps,
            ))
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Plays one history and checks the invariants after every step.
async fn run_history(
    store: &Store,
    merchant: &str,
    case: u64,
    tolerance: u64,
    confirmations: u32,
    skew: i64,
    steps: &[Step],
) {
    let service = InvoiceService::new(store.clone());
    let name = format!("prop-{case}");
    let t0 = 1_700_000_000_000i64;
    let deadline = t0 + 100_000;
    let mut chain = Chain::start(store, &name, t0).await;
    let mut invoices = Vec::new();
    let mut targets = Vec::new();
    for k in 0..3u64 {
        let mut new = NewInvoice::new(
            merchant,
            "test",
            &name,
            USDT,
            Amount::from(1_000_000u64),
            deadline,
        );
        new.monitor_until = deadline + 100_000;
        // Two unique amounts at one shared address, one derived address.
        let (mut allocation, to) = if k < 2 {
            (
                unique(&new, 1_000_000 + k, confirmations),
                SHARED.to_string(),
            )
        } else {
            let address = format!("0xd{case}");
            (derived(&new, &address, confirmations), address)
        };
        allocation.tolerance = Amount::from(tolerance);
        let invoice = service.create(&new, &allocation).await.unwrap();
        targets.push((to, invoice.amount_due));
        invoices.push(invoice.id);
    }
    let mut time = t0;
    for step in steps {
        match *step {
            Step::Pay {
                invoice,
                amount,
                dt,
            } => {
                time += dt;
                let (to, due) = &targets[invoice];
                let due = due.to_string().parse::<u64>().unwrap();
                let amount = match amount {
                    PayAmount::Exact => due,
                    PayAmount::Short(d) => due - d,
                    PayAmount::Over(d) => due + d,
                    PayAmount::Half => due / 2,
                };
                let transfer = chain.transfer(to, amount);
                chain
                    .mine(time, vec![transfer], &invoices, time + skew)
                    .await;
            }
            Step::Mine { blocks, dt } => {
                for _ in 0..blocks {
                    time += dt;
                    chain.mine(time, vec![], &invoices, time + skew).await;
                }
            }
            Step::Reorg { depth } => {
                let ancestor = chain.tip().saturating_sub(depth);
                chain.reorg(ancestor, &invoices, time + skew).await;
                time = chain.times[ancestor as usize].max(time);
            }
            Step::Tick => {
                service.expire_due(time + skew, 100).await.unwrap();
                service.release_due_targets(time + skew).await.unwrap();
            }
        }
        check_invariants(store, &name, &invoices, step).await;
    }
}

async fn check_invariants(store: &Store, chain: &str, ids: &[String], step: &Step) {
    let transfers = store.observed_transfers(chain).await.unwrap();
    let processed = store
        .chain_cursor(chain)
        .await
        .unwrap()
        .and_then(|c| c.processed_block)
        .unwrap();
    let mut credited_total = Amount::ZERO;
    let mut paid_total = Amount::ZERO;
    for id in ids {
        let invoice = store.invoice(id).await.unwrap().unwrap();
        assert_eq!(invoice.quarantined_at, None, "after {step:?}: {invoice:?}");
        // The invoice's credits, summed here independently of the service.
        let credits: Vec<_> = transfers
            .iter()
            .filter(|t| !t.removed && t.invoice_id.as_deref() == Some(id.as_str()))
            .collect();
        let paid = credits
            .iter()
            .fold(Amount::ZERO, |s, t| s.saturating_add(t.amount));
        let depth = i64::from(invoice.confirmations_required.max(1));
        let confirmed = credits
            .iter()
            .filter(|t| processed - t.block_number + 1 >= depth)
            .fold(Amount::ZERO, |s, t| s.saturating_add(t.amount));
        let mut running = Amount::ZERO;
        let completed_at = credits.iter().find_map(|t| {
            running = running.saturating_add(t.amount);
            covers_due(running, invoice.amount_due, invoice.tolerance).then_some(t.block_time)
        });
        credited_total = credited_total.saturating_add(paid);
        paid_total = paid_total.saturating_add(invoice.amount_paid);
        let ctx = format!("after {step:?}: {invoice:?}");
        assert_eq!(invoice.amount_paid, paid, "{ctx}");
        assert_eq!(invoice.amount_confirmed, confirmed, "{ctx}");
        assert_eq!(invoice.first_paid_at, completed_at, "{ctx}");
        let counts = completed_at.is_some_and(|at| at < invoice.monitor_until);
        // Paid ⇔ the confirmed sum covers the amount (within the tolerance), in time.
        assert_eq!(
            invoice.status == Paid,
            counts && covers_due(confirmed, invoice.amount_due, invoice.tolerance),
            "{ctx}"
        );
        if matches!(invoice.status, Paid | Confirming) {
            // Late ⇔ the completing block's time is at or after the deadline.
            assert_eq!(
                invoice.outcome.paid_late,
                completed_at.unwrap() >= invoice.expires_at,
                "{ctx}"
            );
        }
        // Paid at most once: never two `invoice.paid` without a reversal in between.
        let mut conn = store.pool().acquire().await.unwrap();
        let events = outbox::invoice_events(&mut conn, id).await.unwrap();
        let mut is_paid = false;
        for (_, payload) in events {
            if payload.kind == EventKind::Paid.as_str() {
                assert!(!is_paid, "paid twice without a reversal: {ctx}");
                is_paid = true;
            } else if payload.previous_status == Some(Paid) {
                is_paid = false;
            }
        }
        assert_eq!(is_paid, invoice.status == Paid, "{ctx}");
    }
    // A transfer credits at most one invoice, once.
    assert_eq!(paid_total, credited_total, "after {step:?}");
    let keys: BTreeSet<_> = transfers
        .iter()
        .map(|t| (&t.tx_hash, t.log_index))
        .collect();
    assert_eq!(
        keys.len(),
        transfers.len(),
        "a transfer stored twice after {step:?}"
    );
}

/// The release pass reads only the targets due (an index range), not the history of every
/// expired invoice: checked on SQLite's query plan.
#[tokio::test]
async fn the_release_scan_reads_the_due_targets_through_their_index() {
    use sqlx::Row;
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let sql = format!(
        "EXPLAIN QUERY PLAN {}",
        polypay_host::store::invoices::RELEASE_DUE_TARGETS.replace("$1", "1")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await
        .unwrap();
    let plan: Vec<String> = rows.iter().map(|r| r.try_get("detail").unwrap()).collect();
    assert!(
        plan.iter()
            .any(|step| step.contains("SEARCH payment_targets USING INDEX payment_targets_release")),
        "the release scan must be an index search: {plan:?}"
    );
}

/// `polypay invoice quarantined|retry`, run as an operator would against the data dir.
/// An invoice on a new chain `name`, paid in full, whose settlement fails because
/// `corrupt` (an UPDATE of its row, `$1` its id) broke the row first: the chain's step
/// quarantines it and moves on.
async fn quarantined_invoice(store: &Store, name: &str, corrupt: &'static str) -> Invoice {
    let service = InvoiceService::new(store.clone());
    let m = merchant(store).await;
    let t0 = now_ms() - 60_000;
    let mut chain = Chain::start(store, name, t0).await;
    let new = new_invoice(&m, name, t0 + 3_600_000);
    let invoice = service
        .create(&new, &unique(&new, 10_000_001, 1))
        .await
        .unwrap();
    sqlx::query(corrupt)
        .bind(&invoice.id)
        .execute(store.pool())
        .await
        .unwrap();
    let payment = chain.transfer(SHARED, 10_000_001);
    chain.mine(t0 + 1_000, vec![payment], &[], now_ms()).await;
    invoice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_and_retry_quarantined_invoices_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let url = format!("sqlite://{}", data_dir.join("polypay.db").display());
    let store = Store::open(&url, 4).await.unwrap();
    let invoice = quarantined_invoice(
        &store,
        "cli",
        "UPDATE invoices SET amount_paid = '-1' WHERE id = $1",
    )
    .await;
    store.close().await;

    let polypay = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_polypay"))
            .args(args)
            .env("POLYPAY_DATA_DIR", &data_dir)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (ok, out, err) = polypay(&["invoice", "quarantined", "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], invoice.id.as_str());
    assert!(
        listed[0]["reason"].as_str().unwrap().contains("amount"),
        "{listed}"
    );

    let (ok, _, err) = polypay(&["invoice", "retry", &invoice.id]);
    assert!(!ok && err.contains("stays quarantined"), "{err}");

    let store = Store::open(&url, 4).await.unwrap();
    sqlx::query("UPDATE invoices SET amount_paid = '0' WHERE id = $1")
        .bind(&invoice.id)
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let (ok, out, err) = polypay(&["invoice", "retry", &invoice.id]);
    assert!(ok, "{err}");
    assert!(out.contains("settled: paid"), "{out}");
    let (ok, out, _) = polypay(&["invoice", "quarantined"]);
    assert!(ok && out.contains("no invoice is quarantined"), "{out}");
    let (ok, _, err) = polypay(&["invoice", "retry", &invoice.id]);
    assert!(!ok && err.contains("is not quarantined"), "{err}");
}

/// The admin API's twin of the CLI: list, a failed retry (409, still quarantined), a
/// successful one, then 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_and_retry_quarantined_invoices_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = polypay_host::app::Server::start(common::polypay::server_config(dir.path()))
        .await
        .unwrap();
    let store = server.context.store.clone();
    let invoice = quarantined_invoice(
        &store,
        "admin",
        "UPDATE invoices SET status = 'bogus' WHERE id = $1",
    )
    .await;

    let admin = format!("http://{}", server.admin_addr);
    let http = common::polypay::admin_client();
    let listed: serde_json::Value = http
        .get(format!("{admin}/invoices/quarantined"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["invoices"][0]["id"], invoice.id.as_str());
    let retry = |id: String| {
        let http = http.clone();
        let url = format!("{admin}/invoices/{id}/retry");
        async move { http.post(url).send().await.unwrap() }
    };
    let again = retry(invoice.id.clone()).await;
    assert_eq!(again.status(), 409);
    let body: serde_json::Value = again.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("stays quarantined"),
        "{body}"
    );

    sqlx::query("UPDATE invoices SET status = 'pending' WHERE id = $1")
        .bind(&invoice.id)
        .execute(store.pool())
        .await
        .unwrap();
    let done = retry(invoice.id.clone()).await;
    assert_eq!(done.status(), 200);
    let body: serde_json::Value = done.json().await.unwrap();
    assert_eq!(body["status"], "paid");
    assert_eq!(retry(invoice.id.clone()).await.status(), 404);
    server.shutdown().await.unwrap();
}
