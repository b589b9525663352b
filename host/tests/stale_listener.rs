//! Two listeners on one chain and one database (what two instances would be if leader
//! election failed, or a leader lost its lock mid-step): the stale one's writes are
//! compare-and-set on the cursor, so it can neither revive a transfer that a reorg removed
//! nor move the cursor back.
//!
//! Both listeners are driven step by step through [`Follower::step`], which is below
//! the leader lock (the lock is taken by whoever runs the follower): the second listener
//! is forced past it. Its source is the real EVM source behind a gate that holds a scan's
//! result until the test releases it, so the other listener moves the cursor meanwhile.

mod common;

use std::sync::{Arc, Mutex};

use alloy::primitives::Address;
use common::anvil::{Harness, TestChain, usdt};
use common::db::TestDb;
use polypay_host::chain::evm::{self, EvmSource, ReadError};
use polypay_host::chain::follow::{
    ChainSource, Follower, Head, Progress, Scan, ScannedBlock, WatchSet,
};
use polypay_host::invoice::{Amount, InvoiceStatus};
use tokio::sync::oneshot;

use InvoiceStatus::*;

/// Holds the next scan's result until released: `arrived` fires when the scan is read.
type Gate = Arc<Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>>;

struct GatedSource {
    inner: EvmSource,
    gate: Gate,
}

impl ChainSource for GatedSource {
    type Address = Address;
    type Error = ReadError;

    async fn check(&mut self) -> Result<(), ReadError> {
        self.inner.check().await
    }

    async fn head(&mut self) -> Result<Head, ReadError> {
        self.inner.head().await
    }

    async fn block(&mut self, number: u64) -> Result<Option<ScannedBlock>, ReadError> {
        self.inner.block(number).await
    }

    async fn scan(
        &mut self,
        from: u64,
        to: u64,
        watch: &WatchSet<Address>,
    ) -> Result<Scan, ReadError> {
        let scan = self.inner.scan(from, to, watch).await;
        let gate = self.gate.lock().unwrap().take();
        if let Some((arrived, release)) = gate {
            let _ = arrived.send(());
            let _ = release.await;
        }
        scan
    }

    fn parse_address(&self, text: &str) -> Option<Address> {
        self.inner.parse_address(text)
    }

    fn native_symbol(&self) -> Option<&str> {
        self.inner.native_symbol()
    }
}

/// The leader (a plain listener) and a second, gated one on the same chain and store.
fn two_listeners(h: &Harness) -> (Follower<EvmSource>, Follower<GatedSource>, Gate) {
    let leader = evm::listener(&h.config, 0, h.store.clone()).expect("listener");
    let gate: Gate = Arc::default();
    let stale = Follower::new(
        GatedSource {
            inner: leader.source().clone(),
            gate: gate.clone(),
        },
        leader.settings().clone(),
        h.store.clone(),
    );
    (leader, stale, gate)
}

async fn catch_up<S: ChainSource>(listener: &mut Follower<S>) {
    for _ in 0..100 {
        match listener.step().await.expect("step") {
            Progress::CaughtUp => return,
            _ => continue,
        }
    }
    panic!("the listener never caught up");
}

/// Starts a step of `stale` in a task and returns once its scan was read (and is held).
async fn stale_step_held_after_scan(
    mut stale: Follower<GatedSource>,
    gate: &Gate,
) -> (
    tokio::task::JoinHandle<(Follower<GatedSource>, Progress)>,
    oneshot::Sender<()>,
) {
    let (arrived_tx, arrived) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    *gate.lock().unwrap() = Some((arrived_tx, release_rx));
    let task = tokio::spawn(async move {
        let progress = stale.step().await.expect("stale step");
        (stale, progress)
    });
    arrived.await.expect("the stale listener scanned");
    (task, release)
}

async fn a_stale_listener_cannot_revive_a_transfer_a_reorg_removed(db: TestDb) {
    let h = Harness::start_with(db, TestChain::start().await, |c| {
        c.confirmations = 5;
        c.reorg_window = 0;
    })
    .await;
    let (payer, merchant) = (h.chain.account(1), h.chain.account(2));
    h.mint_usdt(payer, "50").await;
    let invoice = h.open_fixed_usdt(merchant, "20").await;
    let (mut leader, mut stale, gate) = two_listeners(&h);
    catch_up(&mut leader).await;
    catch_up(&mut stale).await;
    let before_payment = h.chain.anvil.snapshot().await;
    let ancestor = h.chain.anvil.block_number().await;

    h.chain.transfer_token(payer, merchant, usdt("20")).await;
    h.chain.anvil.mine(1).await;
    // The stale listener reads the paying block, and is held before it commits.
    let (task, release) = stale_step_held_after_scan(stale, &gate).await;

    // Meanwhile the leader credits the payment, then the block is orphaned and the
    // leader rolls back to the common ancestor.
    catch_up(&mut leader).await;
    assert_eq!(h.invoice(&invoice.id).await.status, Confirming);
    h.chain.anvil.revert(before_payment).await;
    h.chain.anvil.mine(3).await;
    assert_eq!(
        leader.step().await.expect("leader step"),
        Progress::RolledBack {
            ancestor: ancestor as i64
        }
    );
    let removed = h.observed_transfers().await;
    assert!(removed.iter().all(|t| t.removed), "{removed:?}");
    let events = h.event_kinds(&invoice.id).await;

    // The stale listener's commit of the orphaned block is refused.
    release.send(()).unwrap();
    let (mut stale, progress) = task.await.unwrap();
    let transfers = h.observed_transfers().await;
    assert_eq!(transfers.len(), 1);
    assert!(transfers[0].removed, "the orphaned transfer stays removed");
    let cursor = h.store.chain_cursor("anvil").await.unwrap().unwrap();
    assert_eq!(cursor.processed_block, Some(ancestor as i64));
    let after = h.invoice(&invoice.id).await;
    assert_eq!(after.status, Pending);
    assert_eq!(after.amount_paid, Amount::ZERO);
    assert_eq!(h.event_kinds(&invoice.id).await, events);
    assert_eq!(progress, Progress::Superseded);

    // Both listeners then follow the canonical chain; nothing is credited.
    catch_up(&mut stale).await;
    catch_up(&mut leader).await;
    assert!(h.observed_transfers().await.iter().all(|t| t.removed));
    assert_eq!(h.invoice(&invoice.id).await.status, Pending);
}

async fn a_stale_listener_cannot_move_the_cursor_back(db: TestDb) {
    let h = Harness::start_with(db, TestChain::start().await, |c| {
        c.confirmations = 1;
        c.reorg_window = 0;
    })
    .await;
    let payer = h.chain.account(1);
    h.mint_usdt(payer, "50").await;
    let invoice = h.open_derived_usdt("10").await;
    let (mut leader, mut stale, gate) = two_listeners(&h);
    catch_up(&mut leader).await;
    catch_up(&mut stale).await;

    h.chain
        .transfer_token(payer, invoice.pay_address.parse().unwrap(), usdt("10"))
        .await;
    h.chain.anvil.mine(1).await;
    let (task, release) = stale_step_held_after_scan(stale, &gate).await;

    h.chain.anvil.mine(4).await;
    catch_up(&mut leader).await;
    let head = h.chain.anvil.block_number().await as i64;
    let paid = h.invoice(&invoice.id).await;
    assert_eq!(paid.status, Paid);
    let events = h.event_kinds(&invoice.id).await;

    release.send(()).unwrap();
    let (_, progress) = task.await.unwrap();
    let cursor = h.store.chain_cursor("anvil").await.unwrap().unwrap();
    assert_eq!(
        cursor.processed_block,
        Some(head),
        "the cursor did not move back"
    );
    assert_eq!(h.observed_transfers().await.len(), 1);
    let after = h.invoice(&invoice.id).await;
    assert_eq!(after.amount_paid, Amount::from(10_000_000));
    assert_eq!(h.event_kinds(&invoice.id).await, events);
    assert_eq!(progress, Progress::Superseded);
}

on_both_backends!(
    a_stale_listener_cannot_revive_a_transfer_a_reorg_removed,
    a_stale_listener_cannot_move_the_cursor_back,
);
