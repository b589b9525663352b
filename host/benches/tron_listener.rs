//! The TRON listener against the java-tron simulator on loopback HTTP, into SQLite (a
//! file in a temp dir): the whole path of a block, from the node's JSON to the committed
//! transfers and the settlement they cause.
//!
//! ```sh
//! cargo bench -p polypay-host --bench tron_listener
//! ```
//!
//! Every block holds 200 transactions: 99 TRX transfers and 99 TRC20 (USDT) transfers
//! between unwatched accounts, and 2 (1%) to watched addresses, one TRX and one USDT, each
//! crediting an open derived-address invoice. Blocks with TRC20 calls need their
//! transaction infos, so each block costs the node two requests.
//!
//! - `catch_up`: blocks per second while a listener catches up 400 blocks from its
//!   cursor, with the default ranges (`max_block_range` 1000, read 100 blocks per
//!   request; the newest 64 blocks, the reorg window, one at a time), 100 open invoices.
//! - `watched_set`: time per block for 100 blocks behind a 64-block window, as the
//!   watched set (invoices opened an hour ago, one address each) grows from 10 to
//!   100 000. The watch set is loaded before the timing starts, as a running listener has
//!   it; targets created in the last minute are re-read at every step (the listener's
//!   incremental refresh), so recent ones would cost more.
//!
//! Each sample starts from a fresh database (its setup is not timed).

#[path = "../tests/common/db.rs"]
#[allow(dead_code, unused_macros)]
mod db;
#[path = "../tests/common/merchant.rs"]
#[allow(dead_code)]
mod merchant;
#[path = "../tests/common/tron.rs"]
#[allow(dead_code, unused_imports)]
mod tron;
#[path = "../tests/common/tron_chain.rs"]
#[allow(dead_code)]
mod tron_chain;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use polypay_host::chain::ChainConfig;
use polypay_host::chain::follow::Progress;
use polypay_host::chain::tron::{TronAddress, TronListener};
use polypay_host::store::Store;
use tron::{Outcome, SimChain, SimNode};

const TXS_PER_BLOCK: usize = 200;
use tron_chain::{CHAIN, usdt};

/// The `k`-th watched address.
fn watched(k: u32) -> TronAddress {
    SimChain::account(1_000_000 + k)
}

/// Mines `blocks` blocks of `TXS_PER_BLOCK` transactions, 1% of them to watched
/// addresses among the first ten.
fn mine(chain: &SimChain, blocks: u64) {
    let mut n: u32 = 0;
    for b in 0..blocks {
        for i in 0..(TXS_PER_BLOCK - 2) as u32 {
            n = n.wrapping_add(1);
            let (from, to) = (
                SimChain::account(n % 5_000),
                SimChain::account(5_000 + n % 5_000),
            );
            if i % 2 == 0 {
                chain.transfer_trx(from, to, 1_000_000 + i64::from(i));
            } else {
                chain.transfer_trc20(
                    usdt(),
                    from,
                    to,
                    alloy::primitives::U256::from(i),
                    Outcome::Success,
                );
            }
        }
        let payer = SimChain::account(1);
        chain.transfer_trx(payer, watched((b * 2 % 10) as u32), 1_000_000);
        chain.transfer_trc20(
            usdt(),
            payer,
            watched((b * 2 % 10 + 1) as u32),
            alloy::primitives::U256::from(1_000_000u64),
            Outcome::Success,
        );
        chain.mine();
    }
}

/// The test suite's TRON chain entry, with the default ranges and a patient timeout.
fn config(url: &str) -> ChainConfig {
    let mut config = tron_chain::config(&[url.to_string()], 1);
    config.poll_interval_ms = 1_000;
    config.rpc_timeout_ms = 30_000;
    config.max_block_range = 1_000;
    config.reorg_window = 64;
    config
}

/// A fresh database with `n` open derived-address invoices, one watched address each
/// (even ones in TRX, odd ones in USDT), never fully paid.
async fn database(n: u32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url, 8).await.expect("open store");
    // Opened an hour ago: the listener's incremental watch refresh looks only at targets
    // created in the last minute, so these are the steady-state watched set.
    let now = polypay_host::store::now_ms() - 3_600_000;
    let far = now + 86_400_000;
    let mut tx = store.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO merchants (id, name, profile, disabled, created_at, updated_at) VALUES ('m', 'bench', '{}', 0, 0, 0)",
    )
    .execute(&mut *tx)
    .await
    .expect("merchant");
    let ids: Vec<u32> = (0..n).collect();
    for chunk in ids.chunks(2_000) {
        let rows = |f: &dyn Fn(u32, &str, String) -> String| {
            chunk
                .iter()
                .map(|&k| {
                    let asset = if k % 2 == 0 { "TRX" } else { "USDT" };
                    f(k, asset, watched(k).to_string())
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let invoices = rows(&|k, asset, address| {
            format!(
                "('inv-{k}', 'm', 'bench', 'pending', '{CHAIN}', '{asset}', 6, '1000000000000', 1, \
                 'derived-address', '{address}', {far}, {far}, {now}, {now})"
            )
        });
        let targets = rows(&|k, asset, address| {
            format!(
                "('pt-{k}', 'inv-{k}', '{CHAIN}', '{asset}', '{address}', 'derived-address', NULL, {k}, {now})"
            )
        });
        for sql in [
            format!(
                "INSERT INTO invoices (id, merchant_id, plugin, status, chain, asset, decimals, amount_due, \
                 confirmations_required, strategy, pay_address, expires_at, monitor_until, created_at, updated_at) \
                 VALUES {invoices}"
            ),
            format!(
                "INSERT INTO payment_targets (id, invoice_id, chain, asset, address, strategy, amount, \
                 derivation_index, created_at) VALUES {targets}"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .expect("populate");
        }
    }
    tx.commit().await.expect("commit");
    (dir, store)
}

/// A listener of `node` into a fresh database with `invoices` open invoices, its watch
/// set loaded.
async fn listener(node: &SimNode, invoices: u32) -> (tempfile::TempDir, TronListener) {
    let (dir, store) = database(invoices).await;
    let mut listener =
        polypay_host::chain::tron::listener(&config(&node.url()), 0, store).expect("listener");
    listener.refresh_watch().await.expect("watch set");
    (dir, listener)
}

/// Steps until the listener is at the head; returns the time it took.
async fn catch_up(listener: &mut TronListener) -> Duration {
    let started = Instant::now();
    loop {
        match listener.step().await.expect("step") {
            Progress::CaughtUp => return started.elapsed(),
            Progress::Advanced { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let blocks = 400;
    let node = runtime.block_on(SimNode::start());
    node.chain.set_solidified_lag(0);
    mine(&node.chain, blocks);
    let mut group = c.benchmark_group("tron_catch_up");
    group.sample_size(10);
    group.throughput(Throughput::Elements(blocks));
    group.bench_function(BenchmarkId::new("blocks", blocks), |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let (_dir, mut listener) = listener(&node, 100).await;
                    total += catch_up(&mut listener).await;
                }
                total
            })
        })
    });
    group.finish();

    let blocks = 164;
    let node = runtime.block_on(SimNode::start());
    node.chain.set_solidified_lag(0);
    mine(&node.chain, blocks);
    let timed_blocks = blocks - 64;
    let mut group = c.benchmark_group("tron_watched_set");
    group.sample_size(10);
    group.throughput(Throughput::Elements(timed_blocks));
    for watched in [10u32, 1_000, 100_000] {
        group.bench_function(BenchmarkId::new("addresses", watched), |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let (_dir, mut listener) = listener(&node, watched).await;
                        // The window's single blocks are not timed: only the ranges.
                        let started = Instant::now();
                        loop {
                            match listener.step().await.expect("step") {
                                Progress::Advanced { to } if to >= timed_blocks => break,
                                Progress::Advanced { .. } => {}
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                        total += started.elapsed();
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
